"""COPY (and, through `copy_files`, ADD): files from the context, a stage or an image into the root.

The instruction's fields are expanded first (`Instruction.expand`: sources, destination, --chown, --chmod,
--exclude, --from, --checksum, heredoc bodies as BuildKit's ExpandRaw); heredoc sources (`COPY <<EOF /dst`)
become files in a scratch directory first. What was written is snapshotted directly, without a walk.
"""
from __future__ import annotations

import os
import shutil
import tempfile

from executor.commands.base import CommandContext, Outcome
from executor.commands.copying import CopyError, CopyRequest, copy_into_root
from executor.commands.copying.chmod import ChmodError, parse_chmod
from executor.commands.copying.chown import ChownError, resolve_chown
from executor.dockerfile import DockerfileError, history
from executor.dockerfile.instructions import AddInstruction, CopyInstruction


def copy_files(inst: CopyInstruction | AddInstruction, ctx: CommandContext, is_add: bool) -> Outcome:
    inst = ctx.expanded(inst)
    sources, dest, chown_text, chmod_text = inst.sources, inst.dest, inst.chown, inst.chmod
    from_ = getattr(inst, "from_", "")
    try:
        chown = resolve_chown(ctx.root, chown_text) if chown_text else None
        if chmod_text:
            parse_chmod(chmod_text)   # refuse a bad --chmod before anything is written
    except (ChownError, ChmodError) as e:
        raise inst.error(str(e)) from None
    if from_:
        if ctx.source_root is None:
            raise inst.error(f"COPY --from={from_}: no such stage or image")
        try:
            source_root = ctx.source_root(from_)
        except DockerfileError:
            raise
        except Exception as e:   # an image that cannot be pulled, a stage not kept: at this line
            raise inst.error(f"COPY --from={from_}: {e}") from None
        from_context, excluded = False, None
    else:
        if ctx.context_dir is None and sources:
            raise inst.error(f"{inst.keyword} needs a build context")
        source_root, from_context, excluded = ctx.context_dir or "/", True, ctx.excluded
    written: list[str] = []
    scratch = None
    try:
        if sources:
            written += copy_into_root(CopyRequest(
                sources=sources, dest=dest, source_root=source_root, root=ctx.root,
                workdir=ctx.image.config.working_dir or "/", chown=chown, chmod=chmod_text or None, is_add=is_add,
                excluded=excluded, from_context=from_context,
                excludes=inst.excludes, parents=getattr(inst, "parents", False),
                unpack=getattr(inst, "unpack", None),
                checksum=(inst.checksum or None) if isinstance(inst, AddInstruction) else None,
                session=ctx.http_session_factory() if ctx.http_session_factory else None,
                work_dir=ctx.work_dir))
        if inst.contents:
            scratch = tempfile.mkdtemp(prefix="heredoc-", dir=ctx.work_dir)
            names = []
            for content in inst.contents:
                data = content.data
                path = os.path.join(scratch, content.path.lstrip("/"))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write(data)
                os.chmod(path, 0o644)
                names.append(content.path.lstrip("/"))
            written += copy_into_root(CopyRequest(
                sources=names, dest=dest, source_root=scratch, root=ctx.root,
                workdir=ctx.image.config.working_dir or "/", chown=chown, chmod=chmod_text or None, is_add=False,
                excluded=None, from_context=True))
    except CopyError as e:
        raise inst.error(str(e)) from None
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    created_by = history.copy(inst.keyword, sources, dest, chown=chown_text, chmod=chmod_text,
                              parents=getattr(inst, "parents", False),
                              heredoc_names=[c.path for c in inst.contents])
    return Outcome(snapshot="paths", paths=sorted(set(written)), created_by=created_by)


def execute(inst: CopyInstruction, ctx: CommandContext) -> Outcome:
    return copy_files(inst, ctx, is_add=False)

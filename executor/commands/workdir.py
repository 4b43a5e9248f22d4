"""WORKDIR: set the working directory and create it, owned by the current USER as BuildKit does (its
file-operation owner rule, executor.run.users.file_owner: `USER 4242` makes 4242:4242, an unknown name root)."""
from __future__ import annotations

import os
import posixpath

from executor.commands.base import CommandContext, Outcome
from executor.dockerfile.instructions import WorkdirInstruction
from executor.run.users import file_owner
from snapshot.paths import resolve_in_root


def normalize(current: str, path: str) -> str:
    """BuildKit's NormalizeWorkdir: an absolute path is kept as written (`/a//b` stays), a relative one is
    joined to the current directory and cleaned (Go's filepath.Join)."""
    if path.startswith("/"):
        return path
    joined = posixpath.normpath(posixpath.join("/", current or "/", path))
    return "/" + joined.lstrip("/")


def make_dirs(root: str, path: str, uid: int, gid: int) -> list[str]:
    """Create `path` inside `root` with its missing parents (0755, uid:gid); the image paths created,
    symlinks on the way resolved."""
    created: list[str] = []
    current = "/"
    for part in [p for p in path.split("/") if p]:
        current = posixpath.join(current, part)
        host = resolve_in_root(root, current)
        if os.path.lexists(host):
            if not os.path.isdir(host):
                raise NotADirectoryError(f"WORKDIR {path}: {current} exists and is not a directory")
            continue
        os.mkdir(host, 0o755)
        os.chmod(host, 0o755)
        os.chown(host, uid, gid)
        # the path the directory really has: an earlier component may be a symlink (/work -> /opt/real)
        created.append("/" + os.path.relpath(host, os.path.abspath(root)).replace(os.sep, "/"))
    return created


def execute(inst: WorkdirInstruction, ctx: CommandContext) -> Outcome:
    path = normalize(ctx.image.config.working_dir, ctx.expanded(inst).path)
    ctx.image.config.working_dir = path
    if path == "/":
        return Outcome(created_by=f"WORKDIR {path}")
    uid = gid = 0
    if ctx.image.config.user:      # BuildKit's mkdir owner rule, not RUN's: `USER root` needs no passwd
        uid, gid = file_owner(ctx.root, ctx.image.config.user, what=f"WORKDIR {path} under USER")
    try:
        created = make_dirs(ctx.root, path, uid, gid)
    except OSError as e:
        raise inst.error(str(e)) from None
    return Outcome(snapshot="paths" if created else "none", paths=created, created_by=f"WORKDIR {path}")

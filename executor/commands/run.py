"""RUN: run a command against the root, as the stage's USER, in its WORKDIR, with ENV and ARGs in scope.

Shell form goes through SHELL (default `/bin/sh -c`); heredocs follow BuildKit: a lone heredoc with a
shebang is written to a file and executed, a lone heredoc without one is the shell's command, anything
else is handed to the shell whole. `--mount` options are expanded; cache, secret and bind mounts are
prepared here as bind mounts of directories and files kiln owns, so nothing of them reaches a layer.
Where kiln cannot mount (on `/` without CAP_SYS_ADMIN) executor.run places their content in the root for
the command and takes it out again (executor/run/placing.py); `owned` tells it which sources are kiln's.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile

from executor import floor, logs
from executor.dockerfile import DockerfileError, history
from executor.commands.base import CommandContext, Outcome
from executor.commands.metadata import with_shell
from executor.dockerfile.instructions import RunInstruction
from executor.run import Mount as RunMount
from executor.run import RunError, RunSpec
from executor.run import run as run_process
from executor.run.placing import copy_tree

_LONE_HEREDOC = re.compile(r"^<<-?(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1$")
_PIPES = "/dev/pipes"


def command_argv(inst: RunInstruction, shell: list[str] | None, scripts_dir: str) -> tuple[list[str], list[RunMount]]:
    """The argv RUN executes, and the mounts a heredoc script needs."""
    args = list(inst.command)
    mounts: list[RunMount] = []
    if inst.heredocs:
        first = inst.heredocs[0]
        if len(inst.heredocs) == 1 and len(args) == 1 and _LONE_HEREDOC.match(args[0].strip()):
            data = first.text
            if data.startswith("#!"):
                os.makedirs(scripts_dir, exist_ok=True)
                path = os.path.join(scripts_dir, first.name)
                with open(path, "w") as f:
                    f.write(data)
                os.chmod(path, 0o755)
                mounts.append(RunMount(target=_PIPES, type="bind", source=scripts_dir, readonly=True, owned=True))
                # BuildKit's dispatchRun: the script's path, then the SHELL prepended as for any
                # shell-form RUN (`/bin/sh -c /dev/pipes/EOF`, which runs it by its shebang)
                args = [f"{_PIPES}/{first.name}"]
            else:
                args = [data]
        else:
            full = args[0] if args else ""
            for doc in inst.heredocs:
                full += "\n" + doc.data + doc.name
            args = [full]
    if inst.prepend_shell:
        args = with_shell(shell, args)
    return args, mounts


def _cache_dir(ctx: CommandContext, cache_id: str) -> str:
    name = hashlib.sha256(cache_id.encode()).hexdigest()[:32]
    return os.path.join(ctx.cache_mount_dir, name)


def prepare_mounts(inst: RunInstruction, ctx: CommandContext, scratch: str) -> tuple[list[RunMount], dict[str, str]]:
    """The RUN's --mount list as bind/tmpfs mounts, and the environment secrets exposed as variables."""
    mounts: list[RunMount] = []
    secret_env: dict[str, str] = {}
    workdir = ctx.image.config.working_dir or "/"
    for m in ctx.expanded(inst).mounts:
        target = m.target
        if m.type in ("bind", "cache", "tmpfs") or target:
            # BuildKit (dockerfile2llb/convert_runmount.go, dispatchRunMounts): a relative target, the empty one
            # included, is below the WORKDIR, and a target that comes out as "/" is refused (a secret has its
            # default /run/secrets/ID instead).
            if not target.startswith("/"):
                target = os.path.normpath(os.path.join("/", workdir, target))
            if os.path.normpath(target) in ("/", "//"):
                raise inst.error(f'RUN --mount=type={m.type}: invalid mount target "/" (name a directory with '
                                 "target=, a mount cannot replace the root)")
        if m.type == "cache":
            seed = _mount_source(inst, ctx, m) if m.from_ else None
            # BuildKit keys a cache by its id and the ref it starts from (from=, source=)
            directory = _cache_dir(ctx, (m.id or target) + (f"\0{m.from_}\0{m.source or ''}" if seed else ""))
            if not os.path.isdir(directory):
                if seed is not None:
                    if not os.path.isdir(seed):
                        raise inst.error(f"RUN --mount=type=cache from={m.from_}: source {m.source or '/'} "
                                         "is not a directory")
                    # a new cache starts as a copy of the source tree (owners, modes, times, links kept);
                    # in Python: kiln's own image has no cp, and on / PATH finds the image's tools, if any
                    staging = directory + ".new"
                    shutil.rmtree(staging, ignore_errors=True)
                    copy_tree(seed, staging)
                    os.rename(staging, directory)
                else:
                    os.makedirs(directory, exist_ok=True)
                    os.chmod(directory, m.mode if m.mode is not None else 0o755)
                    os.chown(directory, m.uid or 0, m.gid or 0)
            mounts.append(RunMount(target=target, type="bind", source=directory, readonly=m.readonly, owned=True))
        elif m.type == "tmpfs":
            mounts.append(RunMount(target=target, type="tmpfs", size=m.size or None))
        elif m.type == "secret":
            secret_id = m.id or os.path.basename(target)
            secret = ctx.secrets.get(secret_id)
            if secret is None:
                if m.required:
                    raise inst.error(f"secret {secret_id} is required but was not given (--secret id={secret_id},src=PATH)")
                continue
            value = _secret_value(secret, inst)
            logs.register_secret(value.decode(errors="replace"))
            if m.env:
                secret_env[m.env] = value.decode(errors="replace")
                if not m.target:
                    continue
            path = os.path.join(scratch, "secret-" + hashlib.sha256(secret_id.encode()).hexdigest()[:16])
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
                f.write(value)
            os.chmod(path, m.mode if m.mode is not None else 0o400)
            os.chown(path, m.uid or 0, m.gid or 0)
            mounts.append(RunMount(target=target or f"/run/secrets/{secret_id}", type="bind", source=path,
                                   readonly=True, owned=True))
        elif m.type == "bind":
            source = _mount_source(inst, ctx, m)
            if not m.from_ and ctx.excluded is not None and ctx.context_dir is not None:
                source = _visible_context(source, ctx.context_dir, ctx.excluded, scratch)
            owned = False
            if not m.readonly:
                # rw bind mounts see their writes discarded after the command, as BuildKit does: a copy
                # (owners, modes, times kept), which is kiln's to move onto the target where it cannot mount
                copy = os.path.join(scratch, f"bind-{len(mounts)}-" + hashlib.sha256(source.encode()).hexdigest()[:16])
                copy_tree(source, copy)
                source, owned = copy, True
            mounts.append(RunMount(target=target, type="bind", source=source, readonly=m.readonly, owned=owned))
        else:
            raise inst.error(f"RUN --mount=type={m.type} is not supported by kiln")
    return mounts, secret_env


def _mount_source(inst: RunInstruction, ctx: CommandContext, m) -> str:
    """The host path a bind mount (or a cache mount's from=) takes: source= below the stage or image named
    by from=, or below the build context."""
    if m.from_:
        if ctx.source_root is None:
            raise inst.error(f"RUN --mount from={m.from_}: no such stage or image")
        try:
            base = ctx.source_root(m.from_)
        except DockerfileError:
            raise
        except Exception as e:   # an image that cannot be pulled, a stage not kept: at this line
            raise inst.error(f"RUN --mount from={m.from_}: {e}") from None
    else:
        if ctx.context_dir is None:
            raise inst.error("RUN --mount=type=bind needs a build context")
        base = ctx.context_dir
    source = os.path.realpath(os.path.join(base, (m.source or "").lstrip("/")))
    if source != base and not source.startswith(base.rstrip("/") + "/"):
        raise inst.error(f"RUN --mount source {m.source} leaves its root")
    if not os.path.exists(source):
        raise inst.error(f"RUN --mount source {m.source}: not found")
    return source


def _visible_context(source: str, context_dir: str, excluded, scratch: str) -> str:
    """A bind mount of the context shows what .dockerignore leaves of it, as BuildKit's context does:
    ``source`` itself when nothing below it is excluded, else a copy without the excluded paths (a
    re-included path keeps its parents)."""
    root = os.path.realpath(context_dir)

    def rel(path: str) -> str:
        return os.path.relpath(path, root).replace(os.sep, "/")

    if not os.path.isdir(source):
        return source
    hidden = [p for d, dirs, files in os.walk(source) for p in (os.path.join(d, n) for n in dirs + files)
              if excluded(rel(p))]
    if not hidden:
        return source
    copy = os.path.join(scratch, "context-" + hashlib.sha256(source.encode()).hexdigest()[:16])
    os.makedirs(copy)
    shutil.copystat(source, copy)
    for d, dirs, files in os.walk(source):
        for name in sorted(dirs) + sorted(files):
            path = os.path.join(d, name)
            if excluded(rel(path)):
                continue
            target = os.path.join(copy, os.path.relpath(path, source))
            parent = os.path.dirname(target)
            if not os.path.isdir(parent):       # a re-included path below an excluded directory
                os.makedirs(parent)
            if os.path.isdir(path) and not os.path.islink(path):
                os.makedirs(target, exist_ok=True)
                shutil.copystat(path, target)
            else:
                shutil.copy2(path, target, follow_symlinks=False)
            st = os.lstat(path)
            os.lchown(target, st.st_uid, st.st_gid)
    return copy


def _secret_value(secret, inst: RunInstruction) -> bytes:
    if secret.type == "env":
        value = os.environ.get(secret.source)
        if value is None:
            raise inst.error(f"secret {secret.id}: environment variable {secret.source} is not set")
        return value.encode()
    try:
        with open(secret.source, "rb") as f:
            return f.read()
    except OSError as e:
        raise inst.error(f"secret {secret.id}: cannot read {secret.source}: {e.strerror}") from None


def execute(inst: RunInstruction, ctx: CommandContext) -> Outcome:
    held = floor.current()
    if held is not None:
        held.before_run()     # kiln's files held before the command can touch them (executor.floor)
    scratch = tempfile.mkdtemp(prefix="run-", dir=ctx.work_dir)
    try:
        argv, script_mounts = command_argv(inst, ctx.image.config.shell, os.path.join(scratch, "pipes"))
        mounts, secret_env = prepare_mounts(inst, ctx, scratch)
        image_env = ctx.env()
        env = ctx.args.run_env(image_env)
        env.update(secret_env)
        spec = RunSpec(root=ctx.root, argv=argv, env=env, workdir=ctx.image.config.working_dir or "/",
                       user=ctx.image.config.user, mounts=script_mounts + mounts,
                       network="none" if inst.network == "none" else "default", output=ctx.output,
                       scratch_dir=scratch)
        runner = ctx.run or run_process
        try:
            runner(spec)
        except RunError as e:
            # `Dockerfile:N: The command '...' returned a non-zero code: 7`: docker's words, after the line
            # (BuildKit names the failed step; every other instruction's error starts with its line)
            raise type(e)(str(inst.error(str(e))), exit_code=e.exit_code, signal=e.signal) from e
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if held is not None:
        try:
            held.after_run(f"step `{inst.original.splitlines()[0] if inst.original else 'RUN'}`")
        except floor.FloorError as e:
            raise inst.error(str(e)) from None
    return Outcome(snapshot="walk", created_by=history.run(argv, ctx.args.history_args(image_env)))

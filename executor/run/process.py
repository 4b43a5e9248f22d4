"""Running one RUN command: ``run(RunSpec) -> RunResult``.

Two ways, chosen by the root:

* ``root != "/"`` (development, tests): the command runs through ``_nsinit.py`` (ctypes ``unshare(2)``
  + fork, no util-linux needed) in fresh mount, PID, UTS and IPC namespaces (and network with
  ``network="none"``), chrooted into the root, with a fresh ``/proc``, a tmpfs ``/dev`` holding null,
  zero, full, random, urandom, tty, ``pts`` and ``shm``, a read-only ``/sys``, and private copies of the
  host's ``/etc/resolv.conf`` and ``/etc/hosts`` bound in (a copy, so a command editing them changes
  neither the host nor the image). The command is PID 1 of its namespace: when it exits, the kernel
  kills whatever it left running. Mount points that had to be created in the root are removed again.
* ``root == "/"`` (production, kiln is PID 1 of its container): the command is started directly with
  its groups, gid and uid, in its own process group; when it exits, that group and any processes that
  were re-parented to us meanwhile are killed. A hostname or ``network="none"`` needs a private UTS or
  network namespace: then ``_nsinit.py`` is used without a PID namespace or chroot. Mounts are mounted
  in a private mount namespace the same way when this process can make one with bind and tmpfs mounts
  in it (decided by trying, once per process: ``mounts_available``; it takes CAP_SYS_ADMIN, and an
  AppArmor profile may still refuse ``mount``); otherwise (a Kubernetes pod without CAP_SYS_ADMIN) their
  content is put in place in the root for the command and taken out again afterwards
  (``executor.run.placing``, kaniko's way).

stdout and stderr are merged (as ``docker build`` shows them) and passed line by line to
``spec.output`` (default: logging at info level). A non-zero exit raises ``RunError`` worded as
docker's; a command that cannot start (unknown executable, bad user) raises ``RunError`` as well.
"""

from __future__ import annotations

import errno
import marshal
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from executor.run import pid1, placing, tree
from executor.run.errors import RunError, UserError, describe_command, failed, not_started
from snapshot.paths import resolve_in_root
from executor.run.targets import CreatedPaths
from executor.run.users import ExecUser, lookup_user
from snapshot import privilege

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_nsinit.py")
# read once, when kiln loads (before any RUN): the helper runs as `python -c SOURCE`, so a RUN that deleted kiln's
# files (executor/floor.py) does not take the helper's code away
with open(HELPER, encoding="utf-8") as _source:
    HELPER_SOURCE = _source.read()
NETWORK_MODES = ("default", "host", "none")
MOUNT_WAYS = ("auto", "mount", "place")
SYSTEM_MOUNTS = ("/proc", "/dev", "/sys")  # mounted over the scratch root by the helper itself
DRAIN_SECONDS = 2.0
HOST_FILES = ("/etc/resolv.conf", "/etc/hosts")


@dataclass
class Mount:
    """A mount for one command. ``type`` is "bind" (``source`` on the host -> ``target`` in the root)
    or "tmpfs". Cache and secret mounts arrive as binds the caller prepared.

    ``owned``: the source is kiln's own (a cache directory, a scratch copy, a secret file): where the
    command's mounts are placed rather than mounted (``executor.run.placing``), a writable owned source is
    renamed onto the target and back (what the command wrote stays in it); any other source is copied."""

    target: str
    type: str = "bind"
    source: str = ""
    readonly: bool = False
    size: int | None = None  # tmpfs: bytes
    mode: int | None = None  # tmpfs: permission bits of its root
    owned: bool = False


@dataclass
class RunSpec:
    """One command for `run` to start: argv, environment, user, working directory and mounts, in the root given,
    with the RUN's network mode."""
    root: str
    argv: list[str]
    env: dict[str, str]
    workdir: str = "/"
    user: str = ""
    mounts: list[Mount] = field(default_factory=list)
    hostname: str | None = None
    network: str = "default"
    output: Callable[[str], None] | None = None  # one call per line, without the newline
    # kiln's own scratch space for this command, outside the snapshot (on the root's filesystem where
    # possible): targets the mounts hide are moved here while the command runs. Default: a temporary
    # directory, which on "/" would lie in the root: the build passes its work directory.
    scratch_dir: str | None = None
    # "auto": mount when a mount namespace can be had, else place; "mount" or "place" to choose
    mounts_by: str = "auto"


@dataclass
class RunResult:
    """How a RUN command ended: its exit code, how long it took, and the user it ran as."""
    exit_code: int
    duration: float  # seconds
    user: ExecUser


@dataclass
class _Running:
    """What teardown needs to know about a started command."""

    proc: subprocess.Popen
    namespaced: bool  # in its own PID namespace (helper forked)
    known_children: set[int]  # our children before the start: never stragglers
    ns_init: int | None = None
    stopping: bool = False    # the cancel hook sent SIGTERM (and said so)


def command_env(env: dict[str, str], user: ExecUser) -> dict[str, str]:
    """The environment as docker gives it: PATH and HOME defaulted when absent."""
    result = dict(env)
    result.setdefault("PATH", DEFAULT_PATH)
    result.setdefault("HOME", user.home or "/")
    return result


def _in_root(path: str, base: str = "/") -> str:
    joined = path if path.startswith("/") else os.path.join(base, path)
    return os.path.normpath(joined) if joined != "/" else "/"


def _validate(spec: RunSpec) -> None:
    if not spec.argv:
        raise RunError("RUN has no command to execute")
    if not os.path.isdir(spec.root):
        raise RunError(f"the build root {spec.root} is not a directory")
    if spec.network not in NETWORK_MODES:
        raise RunError(f"unsupported network mode {spec.network!r}: use one of {', '.join(NETWORK_MODES)}")
    if spec.mounts_by not in MOUNT_WAYS:
        raise RunError(f"unsupported way of mounting {spec.mounts_by!r}: use one of {', '.join(MOUNT_WAYS)}")
    for m in spec.mounts:
        if m.type not in ("bind", "tmpfs"):
            raise RunError(f"unsupported mount type {m.type!r} for {m.target}: use bind or tmpfs")
        if m.type == "bind" and not os.path.exists(m.source):
            raise RunError(f"mount source {m.source} for {m.target} does not exist")


def _make_workdir(root: str, workdir: str) -> None:
    """Create the working directory (kept, as docker keeps it)."""
    host = resolve_in_root(root, workdir)
    try:
        os.makedirs(host, mode=0o755, exist_ok=True)
    except OSError as err:
        raise RunError(f"cannot create working directory {workdir}: {err}") from None


def _mount_plan(mounts: list[Mount], workdir: str, created: CreatedPaths, scratch: str, chroot: bool) -> list[dict]:
    """The helper's mount list, targets as host paths; targets created (and recorded) when missing."""
    plan: list[dict] = []
    if chroot:
        plan.append({"kind": "proc", "target": created.ensure("/proc", True)})
        plan.append({"kind": "dev", "target": created.ensure("/dev", True)})
        plan.append({"kind": "sysfs", "target": created.ensure("/sys", True)})
        for host_file in HOST_FILES:
            copy = os.path.join(scratch, os.path.basename(host_file))
            try:
                shutil.copyfile(host_file, copy)
            except OSError:
                open(copy, "wb").close()
            target = created.ensure(host_file, False)
            plan.append({"kind": "bind", "source": copy, "target": target, "readonly": False})
    user_mounts = sorted(mounts, key=lambda m: _in_root(m.target, workdir).count("/"))
    for m in user_mounts:
        target_in_root = _in_root(m.target, workdir)
        if m.type == "bind":
            is_dir = os.path.isdir(m.source)
            target = created.ensure(target_in_root, is_dir)
            plan.append({"kind": "bind", "source": os.path.abspath(m.source), "target": target,
                         "readonly": m.readonly})
        else:
            options = []
            if m.size is not None:
                options.append(f"size={m.size}")
            if m.mode is not None:
                options.append(f"mode={m.mode:o}")
            target = created.ensure(target_in_root, True)
            plan.append({"kind": "tmpfs", "target": target, "readonly": m.readonly, "data": ",".join(options)})
    return plan


@dataclass
class _Output:
    """The command's merged stdout/stderr pipe, forwarded line by line."""

    fd: int
    emit: Callable[[str], None]
    buffer: bytearray = field(default_factory=bytearray)
    eof: bool = False

    def read(self, timeout: float) -> None:
        """Forward what arrives within ``timeout`` seconds (one read)."""
        if self.eof:
            time.sleep(timeout)
            return
        readable, _, _ = select.select([self.fd], [], [], timeout)
        if not readable:
            return
        data = os.read(self.fd, 65536)
        if not data:
            self.eof = True
        self.buffer += data
        self._emit(final=self.eof)

    def _emit(self, final: bool) -> None:
        while True:
            nl = self.buffer.find(b"\n")
            if nl < 0:
                break
            line = bytes(self.buffer[:nl])
            del self.buffer[: nl + 1]
            self.emit(line.decode("utf-8", "replace").rstrip("\r"))
        if final and self.buffer:
            self.emit(bytes(self.buffer).decode("utf-8", "replace").rstrip("\r"))
            self.buffer.clear()

    def flush(self) -> None:
        self._emit(final=True)


def _default_output(line: str) -> None:
    log.info("%s", line)


def _read_to_eof(fd: int) -> bytes:
    chunks = []
    while True:
        data = os.read(fd, 65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _signal_tree(running: _Running, sig: int) -> None:
    """Send ``sig`` to every process of the command."""
    proc = running.proc
    if running.namespaced:
        init = running.ns_init or _helper_child(proc.pid)
        if init is None:
            if sig == signal.SIGKILL:
                tree.kill(proc.pid, sig)  # the namespace's init dies with it (PDEATHSIG)
            return
        if sig == signal.SIGKILL:
            tree.kill(init, sig)  # PID 1 of the namespace: the kernel kills the rest
            tree.kill(proc.pid, sig)
            return
        for pid in tree.pids_in_namespace_of(init):
            tree.kill(pid, sig)
        return
    tree.killpg(proc.pid, sig)
    for pid in tree.stragglers(running.known_children | {proc.pid}):
        tree.kill(pid, sig)


def _helper_child(helper: int) -> int | None:
    try:
        with open(f"/proc/{helper}/task/{helper}/children") as f:
            pids = f.read().split()
    except OSError:
        return None
    return int(pids[0]) if pids else None


def _end_leftovers(running: _Running) -> None:
    """After the command exited: kill its process group and adopted stragglers, and reap them."""
    if running.namespaced:
        return  # the kernel ended the namespace with its PID 1
    for _ in range(100):
        alive_group = tree.group_members(running.proc.pid)
        extra = tree.stragglers(running.known_children | {running.proc.pid})
        if not alive_group and not extra:
            return
        log.debug("ending processes left by the command: group %s, adopted %s", alive_group, extra)
        tree.killpg(running.proc.pid, signal.SIGKILL)
        for pid in extra:
            tree.kill(pid, signal.SIGKILL)
        for pid in extra:
            tree.reap(pid)
        time.sleep(0.01)
    log.warning("processes of the command survived SIGKILL")


def _terminate(running: _Running, grace: float, output: _Output) -> None:
    """Cancellation: SIGTERM the whole tree, SIGKILL what is left after ``grace`` seconds; output
    still arriving meanwhile is forwarded."""
    proc = running.proc
    if proc.poll() is None:
        if not running.stopping:
            running.stopping = True
            log.info("stopping the running command (SIGTERM, SIGKILL after %.0fs)", grace)
        _signal_tree(running, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline and not pid1.escalated():
            output.read(0.02)
        if proc.poll() is None:
            if not pid1.escalated():    # (a second signal says so itself)
                log.info("the running command did not end within %.0fs of SIGTERM: SIGKILL", grace)
            _signal_tree(running, signal.SIGKILL)
        proc.wait()
    _end_leftovers(running)
    deadline = time.monotonic() + 0.2
    while not output.eof and time.monotonic() < deadline:
        output.read(0.02)
    output.flush()


def _pump(output: _Output, running: _Running) -> None:
    """Forward output until the command has exited and its output pipe is drained."""
    drain_deadline: float | None = None
    while not output.eof:
        output.read(0.1)
        if drain_deadline is None:
            if running.proc.poll() is not None:
                _end_leftovers(running)
                drain_deadline = time.monotonic() + DRAIN_SECONDS
        elif time.monotonic() >= drain_deadline:
            log.warning("output of the command still open %.0fs after it exited; not waiting", DRAIN_SECONDS)
            break
    output.flush()


def _parse_status(running: _Running, status_r: int) -> tuple[int | None, int | None]:
    """(exit code, signal) of the command in namespaced mode, from the helper's status pipe."""
    text = _read_to_eof(status_r).decode()
    code: int | None = None
    sig: int | None = None
    for line in text.splitlines():
        word, _, value = line.partition(" ")
        if word == "pid":
            running.ns_init = int(value)
        elif word == "exit":
            code = int(value)
        elif word == "signal":
            sig = int(value)
    if code is None and sig is None:
        rc = running.proc.returncode
        if rc is not None and rc < 0:
            sig = -rc
        else:
            code = rc
    return code, sig


def _spawn_helper(cfg: dict, out_w: int) -> tuple[subprocess.Popen, int, int]:
    err_r, err_w = os.pipe()
    status_r, status_w = os.pipe()
    cfg = dict(cfg, err_fd=err_w, status_fd=status_w)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", HELPER_SOURCE],
            stdin=subprocess.PIPE,
            stdout=out_w,
            stderr=out_w,
            pass_fds=(err_w, status_w),
            process_group=0,
        )
        pid1.protect(proc.pid)
    except OSError as err:
        os.close(err_r)
        os.close(status_r)
        gone = "" if os.access(sys.executable, os.X_OK) else (
            " (kiln's own interpreter is gone or not executable: an earlier RUN removed or changed kiln's files "
            "under its directory, and a RUN that needs namespaces of its own cannot start any more)")
        raise RunError(f"cannot start kiln's RUN helper {HELPER} with {sys.executable}: {err}{gone}") from None
    finally:
        os.close(err_w)
        os.close(status_w)
    assert proc.stdin is not None
    try:
        proc.stdin.write(marshal.dumps(cfg))    # the helper reads it with marshal: see _nsinit.py
        proc.stdin.close()
    except BrokenPipeError:
        pass
    return proc, err_r, status_r


def _spawn_direct(argv: list[str], env: dict[str, str], workdir: str, user: ExecUser, out_w: int) -> subprocess.Popen:
    try:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=out_w,
            user=user.uid,
            group=user.gid,
            extra_groups=list(user.groups),
            process_group=0,
            umask=0o022,  # as runc/docker, whatever kiln's own umask is
        )
        pid1.protect(proc.pid)
    except FileNotFoundError:
        if not os.path.isdir(workdir):  # e.g. below a placed mount's target, which hides it (as a mount would)
            raise not_started(argv, f"chdir to the working directory {workdir}: no such file or directory") from None
        if "/" in argv[0]:
            reason = f'exec: "{argv[0]}": no such file or directory'
        else:
            reason = f'exec: "{argv[0]}": executable file not found in $PATH'
        raise not_started(argv, reason) from None
    except OSError as err:
        if err.errno == errno.EPERM:
            # setgroups takes CAP_SETGID whatever the ids (as runc, the RUN gets the USER's groups even as root)
            why = privilege.explain("setgid", err)
            if why:   # the child failed in setgroups/setgid/setuid, before exec
                raise not_started(argv, f"switching to user {user.uid}:{user.gid}: {err.strerror}{why}") from None
        raise not_started(argv, f'exec: "{argv[0]}": {err.strerror or err}') from None
    return proc


_mounts_work: tuple[bool, str] | None = None  # this process's answer of mounts_available


def mounts_available(scratch: str | None = None) -> tuple[bool, str]:
    """Whether a command on ``/`` can get a mount namespace of its own with bind and tmpfs mounts in it,
    and why not. Decided by trying, once per process: the helper unshares a mount namespace, makes it
    private, mounts a tmpfs and binds it (on directories under ``scratch``, in that namespace only) and
    exits. Trying rather than reading CAP_SYS_ADMIN from /proc/self/status: the capability is not enough
    where an AppArmor profile (docker's default) or a seccomp filter refuses ``mount``/``unshare``."""
    global _mounts_work
    if _mounts_work is not None:
        return _mounts_work
    try:
        if scratch:
            os.makedirs(scratch, exist_ok=True)
        base = tempfile.mkdtemp(prefix="mount-probe-", dir=scratch or None)
    except OSError as err:
        raise RunError(f"cannot prepare the RUN --mount probe in {scratch or tempfile.gettempdir()}: {err}") from None
    try:
        with pid1.uninterrupted():  # a SIGTERM meanwhile cancels once the probe is reaped
            error = _probe(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if error:
        reason = error.split(" (", 1)[0]  # without the helper's hint about RUN on /
        log.info("RUN --mount on /: kiln cannot mount here (%s), so each RUN's mounts are put in place in the "
                 "root and taken out again afterwards (as kaniko does): read-only mounts and tmpfs sizes are "
                 "not enforced", reason)
        _mounts_work = (False, reason)
    else:
        log.debug("RUN --mount on /: mount namespaces with bind and tmpfs mounts work here")
        _mounts_work = (True, "")
    return _mounts_work


def _probe(base: str) -> str:
    """Run the helper in probe mode on directories under ``base``; what went wrong, or ""."""
    first, second = os.path.join(base, "tmpfs"), os.path.join(base, "bind")
    os.mkdir(first)
    os.mkdir(second)
    cfg = {"root": "/", "chroot": False, "namespaces": ["mount"], "probe": True, "hostname": None,
           "mounts": [{"kind": "tmpfs", "target": first, "readonly": False, "data": "size=16k"},
                      {"kind": "bind", "source": first, "target": second, "readonly": True}],
           "workdir": "/", "argv": ["mount-probe"], "env": {}, "uid": 0, "gid": 0, "groups": []}
    devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    try:
        proc, err_r, status_r = _spawn_helper(cfg, devnull)
    except RunError as err:
        return str(err)
    finally:
        os.close(devnull)
    try:
        error = _read_to_eof(err_r).decode("utf-8", "replace").strip()
        proc.wait()
    finally:
        os.close(err_r)
        os.close(status_r)
        pid1.release(proc.pid)
    if not error and proc.returncode != 0:
        error = f"the mount probe exited with {proc.returncode}"
    return error


def _ways(spec: RunSpec, chroot: bool, workdir: str) -> tuple[list[Mount], list[Mount]]:
    """The command's mounts split into (mounted, placed)."""
    if not spec.mounts:
        return [], []
    way = spec.mounts_by
    if way == "auto":
        # a scratch root runs in namespaces of its own anyway; on / it depends on this container
        way = "mount" if chroot or mounts_available(spec.scratch_dir)[0] else "place"
    if way == "mount":
        return list(spec.mounts), []
    mounted: list[Mount] = []
    placed: list[Mount] = []
    for m in spec.mounts:
        target = _in_root(m.target, workdir)
        # in a scratch root the helper mounts /proc, /dev and /sys over whatever was placed there
        system = chroot and any(target == p or target.startswith(p + "/") for p in SYSTEM_MOUNTS + HOST_FILES)
        (mounted if system else placed).append(m)
    return mounted, placed


def run(spec: RunSpec) -> RunResult:
    """Run one command in the root; raise ``RunError`` unless it exits 0."""
    _validate(spec)
    started = time.monotonic()
    root = os.path.abspath(spec.root)
    chroot = os.path.realpath(root) != "/"
    try:
        user = lookup_user(root, spec.user or "")
    except UserError as err:    # name the command, as docker does ("executor failed running [...]: unable to ...")
        raise UserError(f"The command '{describe_command(list(spec.argv))}' could not be started: {err}") from None
    env = command_env(spec.env or {}, user)
    workdir = _in_root(spec.workdir or "/")
    emit = spec.output or _default_output
    mounted, placed = _ways(spec, chroot, workdir)
    namespaces: list[str] = []
    if chroot:
        namespaces = ["mount", "pid", "uts", "ipc"]
    else:
        if mounted:
            namespaces.append("mount")
        if spec.hostname:
            namespaces.append("uts")
    if spec.network == "none":
        namespaces.append("net")
    if spec.hostname and "uts" not in namespaces:
        namespaces.append("uts")
    log.debug("RUN %s as %s in %s (namespaces: %s; mounts placed: %s)", spec.argv, user, workdir,
              namespaces or "none", [m.target for m in placed] or "none")

    _make_workdir(root, workdir)
    created = CreatedPaths(root)
    # private copies of the host's resolv.conf/hosts (development mode only: in production the
    # container's own files are already in place, and /tmp would be inside the build root)
    scratch = tempfile.mkdtemp(prefix="kiln-run-") if chroot else ""
    placement: placing.Placement | None = None
    out_r, out_w = os.pipe()
    output = _Output(out_r, emit)
    running: _Running | None = None
    status_r: int | None = None
    succeeded = False

    def on_cancel(force: bool) -> None:
        if running is not None and running.proc.returncode is None:
            if not force and not running.stopping:
                # said here, when it happens: a command that exits at once on SIGTERM is gone before the
                # teardown below could say it
                running.stopping = True
                log.info("stopping the running command (SIGTERM, SIGKILL after %.0fs)", pid1.GRACE_SECONDS)
            _signal_tree(running, signal.SIGKILL if force else signal.SIGTERM)

    pid1.add_cancel_hook(on_cancel)
    try:
        if placed:
            placement = placing.Placement(root, placing.new_save_dir(spec.scratch_dir))
            ordered = sorted(((_in_root(m.target, workdir), m) for m in placed), key=lambda p: p[0].count("/"))
            with pid1.uninterrupted():  # never half placed: a SIGTERM meanwhile cancels once it is done
                placement.place(ordered)
        known = set(pid1.child_pids())
        cfg: dict = {}
        if namespaces:
            plan = _mount_plan(mounted, workdir, created, scratch, chroot)
            cfg = {
                "root": root, "chroot": chroot, "namespaces": namespaces, "mounts": plan,
                "hostname": spec.hostname, "workdir": workdir, "argv": list(spec.argv), "env": env,
                "uid": user.uid, "gid": user.gid, "groups": list(user.groups),
            }
        err_r: int | None = None
        with pid1.spawn_guard():  # no reaping or BuildCancelled until `running` knows the child
            if namespaces:
                proc, err_r, status_r = _spawn_helper(cfg, out_w)
                running = _Running(proc, namespaced="pid" in namespaces, known_children=known)
            else:
                proc = _spawn_direct(list(spec.argv), env, workdir, user, out_w)
                running = _Running(proc, namespaced=False, known_children=known)
        setup_error = ""
        if err_r is not None:
            try:
                setup_error = _read_to_eof(err_r).decode("utf-8", "replace").strip()
            finally:
                os.close(err_r)
        os.close(out_w)
        out_w = -1
        _pump(output, running)
        proc.wait()
        if status_r is not None and running.namespaced:
            code, sig = _parse_status(running, status_r)
        else:
            rc = proc.returncode
            code, sig = (None, -rc) if rc < 0 else (rc, None)
        if setup_error:
            raise not_started(spec.argv, setup_error)
        if sig is not None:
            raise failed(spec.argv, signum=sig)
        if code:
            raise failed(spec.argv, exit_code=code)
        duration = time.monotonic() - started
        log.debug("RUN %s finished in %.2fs", spec.argv, duration)
        succeeded = True
        return RunResult(exit_code=0, duration=duration, user=user)
    finally:
        pid1.remove_cancel_hook(on_cancel)
        try:
            if running is not None:
                _terminate(running, pid1.GRACE_SECONDS, output)
                pid1.release(running.proc.pid)
        finally:
            for fd in (out_r, out_w, status_r):
                if fd is not None and fd >= 0:
                    os.close(fd)
            # the whole process tree has ended: nothing writes to the placed content any more
            with pid1.uninterrupted():
                problems = _take_out(placement)
                created.remove()
                if scratch:
                    shutil.rmtree(scratch, ignore_errors=True)
                message = ""
                if problems:
                    message = ("could not take the RUN's --mount content out of the root again ("
                               + "; ".join(problems) + "): the root is not what the image holds, so the build stops")
                    if not succeeded:
                        log.error("%s", message)  # the command's own failure is what propagates
            if message and succeeded:
                raise RunError(message)


def _take_out(placement: placing.Placement | None) -> list[str]:
    """Undo a placement; the problems met (every step is tried). Its save directory goes too, unless
    something is still saved in it."""
    if placement is None:
        return []
    problems = placement.restore()
    if not problems:
        shutil.rmtree(placement.save_dir, ignore_errors=True)
    return problems

"""The helper process that sets up and execs one RUN command.

Started by ``executor.run.process`` as ``python -I -S _nsinit.py`` (a fresh, single-threaded interpreter,
so forking here is safe), it reads its configuration from stdin (``marshal``, built into the interpreter: the
helper's start-up is paid by every RUN, and ``json`` with the ``re`` and ``enum`` it imports cost more than
the rest of its imports together; for the same reason it takes ``_signal``, the C module ``signal`` wraps in
enums, and imports ``socket`` only for a network namespace), then:

1. ``unshare(2)`` the requested namespaces (mount, PID, UTS, IPC, network) and makes every mount private,
   so nothing mounted below is visible outside;
2. with a new PID namespace, forks: the child becomes PID 1 of the namespace (and execs the command, so
   the command is PID 1 as in a container); this process stays outside, waits for it and reports how it
   ended on the status pipe. When PID 1 exits the kernel kills everything else in the namespace;
3. in the process that will exec: brings ``lo`` up in a new network namespace, sets the hostname, does
   the mounts (``/proc``, ``/dev``, ``/sys``, binds, tmpfs), chroots, changes directory, drops to the
   user's groups/gid/uid, restores default signal dispositions and execs.

With ``"probe": true`` it stops after the mounts and exits 0 (``process.mounts_available``).

Any failure before exec is written as one line to the error pipe (closed on exec), so the parent can
tell "could not start" from "ran and failed". This file uses the standard library only and must not
import kiln: it runs in a bare interpreter.
"""

from __future__ import annotations

import _signal as signal   # the constants and functions of `signal`, without its enum wrappers
import ctypes
import marshal
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "net": CLONE_NEWNET,
    "pid": CLONE_NEWPID,
}

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "ptmx": "pts/ptmx",
}

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    pass


def _prctl(option: int, value: int) -> None:
    zero = ctypes.c_ulong(0)
    _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(value), zero, zero, zero), f"prctl({option})")


def _enc(text: str | None) -> bytes | None:
    return None if text is None else os.fsencode(text)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    ret = _libc.mount(_enc(source), _enc(target), _enc(fstype), ctypes.c_ulong(flags), _enc(data))
    kind = fstype or ("bind of " + str(source))
    _check(ret, f"mounting {kind} on {target}")


def _ensure(path: str, directory: bool) -> None:
    if os.path.lexists(path):
        return
    if directory:
        os.makedirs(path, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def _source_flags(path: str) -> int:
    """nosuid/nodev/noexec of the mount holding path: a read-only remount must keep them."""
    flags = 0
    vfs = os.statvfs(path)
    for st_flag, ms_flag in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC)):
        if vfs.f_flag & st_flag:
            flags |= ms_flag
    return flags


def _bind(source: str, target: str, readonly: bool) -> None:
    _ensure(target, os.path.isdir(source))
    _mount(source, target, None, MS_BIND | MS_REC)
    if readonly:
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY | _source_flags(target)
        _mount(None, target, None, flags)


def _setup_dev(target: str) -> None:
    _ensure(target, True)
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k")
    for name in DEV_NODES:
        host = "/dev/" + name
        if not os.path.exists(host):
            continue
        node = os.path.join(target, name)
        os.close(os.open(node, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666))
        _mount(host, node, None, MS_BIND)
    pts = os.path.join(target, "pts")
    os.mkdir(pts, 0o755)
    _mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
    shm = os.path.join(target, "shm")
    os.mkdir(shm, 0o1777)
    _mount("shm", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")
    for name, link in DEV_LINKS.items():
        os.symlink(link, os.path.join(target, name))


def _do_mount(m: dict) -> None:
    kind, target = m["kind"], m["target"]
    if kind == "proc":
        _ensure(target, True)
        _mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    elif kind == "sysfs":
        _ensure(target, True)
        try:
            _mount("sysfs", target, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
        except SetupError:
            _bind("/sys", target, readonly=True)
    elif kind == "dev":
        _setup_dev(target)
    elif kind == "bind":
        _bind(m["source"], target, bool(m.get("readonly")))
    elif kind == "tmpfs":
        _ensure(target, True)
        flags = MS_NOSUID | MS_NODEV | (MS_RDONLY if m.get("readonly") else 0)
        _mount("tmpfs", target, "tmpfs", flags, m.get("data") or None)
    else:
        raise SetupError(f"unknown mount kind {kind!r}")


def _make_private() -> None:
    """Stop mounts made here from propagating anywhere. ``/`` is a mount point in any container and
    on a host; inside a plain chroot it may not be (EINVAL), then every visible mount is made private
    one by one."""
    try:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        return
    except SetupError:
        if ctypes.get_errno() != 22:  # EINVAL
            raise
    with open("/proc/self/mountinfo", "rb") as f:
        points = [line.split()[4] for line in f if len(line.split()) > 4]
    for point in points:
        path = point.decode().replace("\\040", " ")
        _libc.mount(None, _enc(path), None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None)


def _loopback_up() -> None:
    import fcntl
    import socket
    import struct
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _exec_error(argv0: str, err: OSError) -> str:
    if "/" not in argv0 and isinstance(err, FileNotFoundError):
        return f'exec: "{argv0}": executable file not found in $PATH'
    return f'exec: "{argv0}": {os.strerror(err.errno) if err.errno else err}'


def _exec(argv: list[str], env: dict[str, str]) -> None:
    """execve with a PATH search in the command's own PATH, as execvpe does; after chroot nothing
    may be imported, so this avoids os.execvpe (which imports lazily)."""
    name = argv[0]
    if "/" in name:
        candidates = [name]
    else:
        path = env.get("PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        candidates = [os.path.join(d or ".", name) for d in path.split(":")]
    first_error: OSError | None = None
    for candidate in candidates:
        try:
            os.execve(candidate, argv, env)
        except OSError as err:
            # like execvpe: remember the first error that is not "not there", keep searching
            if first_error is None and not isinstance(err, (FileNotFoundError, NotADirectoryError)):
                first_error = err
            last_error = err
    raise SetupError(_exec_error(name, first_error or last_error))


def _prepare_and_exec(cfg: dict, err_fd: int) -> None:
    """Runs in the process that becomes the command. Never returns."""
    step = "preparing"
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if "net" in cfg["namespaces"]:
            step = "bringing up lo"
            _loopback_up()
        if cfg.get("hostname"):
            step = "setting the hostname"
            name = os.fsencode(cfg["hostname"])
            _check(_libc.sethostname(name, ctypes.c_size_t(len(name))), "sethostname")
        for m in cfg["mounts"]:
            step = f"mounting {m['kind']} on {m['target']}"
            _do_mount(m)
        if cfg.get("probe"):
            os._exit(0)  # process.mounts_available: the mounts work here
        if cfg["chroot"]:
            step = f"chroot into {cfg['root']}"
            os.chroot(cfg["root"])
            os.chdir("/")
        step = f"changing to working directory {cfg['workdir']}"
        os.chdir(cfg["workdir"])
        step = "switching user"
        os.setgroups(cfg["groups"])
        os.setgid(cfg["gid"])
        os.setuid(cfg["uid"])
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # a credential change cleared it: die with our parent
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.umask(0o022)  # as runc/docker, whatever kiln's own umask is
        argv = cfg["argv"]
        step = "exec"
        _exec(argv, cfg["env"])
    except BaseException as err:  # noqa: BLE001 - report anything, then die
        msg = str(err) if step == "exec" or isinstance(err, SetupError) else f"{step}: {err}"
        try:
            os.write(err_fd, (msg.replace("\n", " ") + "\n").encode("utf-8", "replace"))
        finally:
            os._exit(127)


def _write_status(fd: int, line: str) -> None:
    try:
        os.write(fd, (line + "\n").encode())
    except OSError:
        pass


def main() -> None:
    cfg = marshal.loads(sys.stdin.buffer.read())
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    err_fd, status_fd = cfg["err_fd"], cfg["status_fd"]
    os.set_inheritable(err_fd, False)
    os.set_inheritable(status_fd, False)
    try:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        flags = 0
        for ns in cfg["namespaces"]:
            flags |= NAMESPACE_FLAGS[ns]
        if flags:
            _check(_libc.unshare(ctypes.c_int(flags)), "unshare(" + ",".join(cfg["namespaces"]) + ")")
        if flags & CLONE_NEWNS:
            _make_private()
    except BaseException as err:  # noqa: BLE001
        hint = ""
        if ctypes.get_errno() == 1 and cfg["chroot"]:  # EPERM
            hint = " (RUN in a root other than / needs root with CAP_SYS_ADMIN, as in kiln's container)"
        elif ctypes.get_errno() == 1:
            # On / (kiln as PID 1 of its container) only these need namespaces; a Kubernetes pod's
            # container has no CAP_SYS_ADMIN by default.
            needs = ", ".join(w for ns, w in (("mount", "RUN --mount"), ("net", "RUN --network=none"),
                                              ("uts", "a RUN hostname")) if ns in cfg["namespaces"])
            hint = (f" ({needs} on / needs namespaces of its own, and creating them needs CAP_SYS_ADMIN in kiln's "
                    "container, which a Kubernetes pod lacks by default: add SYS_ADMIN to the container's "
                    "securityContext capabilities)")
        os.write(err_fd, f"setting up namespaces: {err}{hint}\n".encode())
        os._exit(127)

    if "pid" not in cfg["namespaces"]:
        _prepare_and_exec(cfg, err_fd)

    pid = os.fork()
    if pid == 0:
        os.close(status_fd)
        _prepare_and_exec(cfg, err_fd)
    os.close(err_fd)
    _write_status(status_fd, f"pid {pid}")
    # Stay out of the way: terminal signals are handled by the parent, which signals the namespace.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            status = 0
            break
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        _write_status(status_fd, f"signal {sig}")
        os._exit(128 + sig)
    code = os.waitstatus_to_exitcode(status)
    _write_status(status_fd, f"exit {code}")
    os._exit(code)


if __name__ == "__main__":
    main()

"""Run a command where the machine is read-only except for the paths a test names.

``run_sandboxed`` starts ``unshare --mount --propagation private`` and, inside that private mount
namespace, this module's ``__main__`` bind-mounts each writable path (and /tmp) onto itself, then
remounts every other mount read-only (``/``, ``/sys``, ``/dev``...; ``/proc``, ``/dev/pts`` and ``/dev/shm``
stay as they are: device nodes on a read-only mount still work, but cannot be changed), checks that ``/`` and
``/dev`` really refuse changes, and execs the command. Nothing leaks to the host's
mount table, so a bug in the command under test cannot damage the machine outside ``writable``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

ALWAYS_WRITABLE = ("/tmp",)
# left as the host has them: procfs, and the writable kinds below /dev (/dev itself is remounted read-only
# like the rest: its device nodes still read and write, but nothing can chmod, chown or replace them; a digest
# file written to /dev/null once made the machine's /dev/null 0644)
UNTOUCHED = ("/proc", "/dev/pts", "/dev/shm", "/dev/mqueue")

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC = 32, 4096, 16384
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 1024, 2048, 1 << 21, 1 << 24
_OPTION_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
                 "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}


class SandboxError(RuntimeError):
    pass


def run_sandboxed(argv: Sequence[str], writable: list[str], env: Mapping[str, str] | None = None,
                  cwd: str | None = None, timeout: float = 300, input: str | bytes | None = None,
                  text: bool | None = None, pid_namespace: bool = False,
                  hosts: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` with / read-only except ``writable`` (+ /tmp, /dev, /proc); output is captured.

    ``text`` defaults to True unless ``input`` is bytes. ``pid_namespace=True`` also gives the
    command a fresh PID namespace (it runs as PID 1, with its own /proc), as the executor does in a
    container. ``hosts`` (name -> loopback address) are added to the command's own /etc/hosts (a copy bind-mounted
    over it in the private namespace): the cloud tests reach registries by their real names. Raises SandboxError if a writable path is missing or is ``/`` itself;
    subprocess.TimeoutExpired after ``timeout`` seconds.
    """
    hosts_path = _hosts_file(dict(hosts)) if hosts else None
    try:
        cmd = sandbox_argv(argv, writable, cwd, pid_namespace, hosts_path)
        if text is None:
            text = not isinstance(input, bytes)
        return subprocess.run(cmd, env=dict(env) if env is not None else None, timeout=timeout, input=input,
                              capture_output=True, text=text, **({"errors": "replace"} if text else {}))
    finally:
        if hosts_path:
            os.unlink(hosts_path)


def sandbox_argv(argv: Sequence[str], writable: list[str], cwd: str | None = None,
                 pid_namespace: bool = False, hosts_path: str | None = None) -> list[str]:
    """The command line that runs ``argv`` sandboxed as ``run_sandboxed`` does (for a test that starts it
    itself, in a terminal say); ``hosts_path`` is a hosts file to bind-mount over /etc/hosts."""
    paths = []
    for path in writable:
        real = os.path.realpath(path)
        if real == "/":
            raise SandboxError("run_sandboxed: '/' cannot be writable; name the directories the command needs")
        if not os.path.exists(real):
            raise SandboxError(f"run_sandboxed: writable path {path} does not exist; create it first")
        paths.append(real)
    config = json.dumps({"writable": paths, "cwd": cwd, "hosts": hosts_path})
    pid = ["--pid", "--fork", "--mount-proc"] if pid_namespace else []
    return ["unshare", "--mount", "--propagation", "private", *pid, "--",
            sys.executable, os.path.abspath(__file__), config, "--", *argv]


# --- inside the namespace ------------------------------------------------------------------------
def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _mounts() -> list[tuple[str, set[str]]]:
    with open("/proc/self/mountinfo") as f:
        rows = [line.split() for line in f]
    return [(_unescape(r[4]), set(r[5].split(","))) for r in rows]


def _under(path: str, prefixes: Sequence[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def _mount(libc: ctypes.CDLL, source: str | None, target: str, flags: int) -> None:
    rc = libc.mount(source.encode() if source else None, target.encode(), None, ctypes.c_ulong(flags), None)
    if rc != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"sandbox: mount of {target} (flags {flags:#x}) failed: {os.strerror(err)}")


def _hosts_file(hosts: dict[str, str]) -> str:
    """A copy of /etc/hosts with `hosts` (loopback addresses only) added, for the namespace to bind-mount."""
    import tempfile

    for ip in hosts.values():
        if not ip.startswith("127."):
            raise SandboxError(f"sandbox: hosts may only point at loopback addresses, not {ip}")
    with open("/etc/hosts") as f:
        text = f.read()
    fd, path = tempfile.mkstemp(prefix="kiln-sandbox-hosts-", dir="/tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text.rstrip("\n") + "\n" + "".join(f"{ip} {name}\n" for name, ip in hosts.items()))
    os.chmod(path, 0o644)
    return path


def _enter(writable: list[str], hosts_path: str | None = None) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if hosts_path:
        _mount(libc, hosts_path, "/etc/hosts", MS_BIND)
    keep = sorted(set(writable) | set(ALWAYS_WRITABLE))
    for path in keep:   # each writable path becomes its own (rw) mount, immune to the remounts below
        _mount(libc, path, path, MS_BIND | MS_REC)
    for target, options in _mounts():
        if "ro" in options or _under(target, keep) or _under(target, UNTOUCHED):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for name, flag in _OPTION_FLAGS.items():
            if name in options:
                flags |= flag
        _mount(libc, None, target, flags)
    if os.access("/", os.W_OK) or os.access("/usr", os.W_OK) or os.access("/dev", os.W_OK):
        raise SandboxError("sandbox: / or /dev is still writable after the read-only remount; refusing to run")


def _main(args: list[str]) -> int:
    if len(args) < 3 or args[1] != "--":
        sys.stderr.write("usage: sandbox.py CONFIG_JSON -- COMMAND...\n")
        return 2
    config = json.loads(args[0])
    _enter(config["writable"], config.get("hosts"))
    if config.get("cwd"):
        os.chdir(config["cwd"])
    argv = args[2:]
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        sys.stderr.write(f"sandbox: cannot run {argv[0]}: {e}\n")
        return 127


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

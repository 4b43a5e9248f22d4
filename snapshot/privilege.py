"""What kiln's own container lets it do, and the words for when it does not.

kiln builds as root in an unprivileged container: with a handful of capabilities (deploy/), possibly in a user
namespace (Kubernetes `hostUsers: false`), under the runtime's seccomp profile. When a file operation is
refused, the message names the capability the container lacks (read once from /proc/self/status) or the user
namespace's limit, so the fix is one line of a securityContext, not a guess:

* ``chown``: CAP_CHOWN; in a user namespace an id outside its map cannot be given at all (EINVAL);
* ``chmod``/``utime`` of a file kiln does not own: CAP_FOWNER;
* a setuid/setgid bit the kernel clears on chmod (setgid of a group kiln is not in): CAP_FSETID;
* ``setxattr security.capability`` (file capabilities): CAP_SETFCAP;
* ``mknod`` of a device: CAP_MKNOD, and never in a user namespace (the kernel checks the capability in the
  initial namespace), where kiln skips device nodes with a warning as docker's rootless mode does (moby
  pkg/archive ``createTarFile``: "cannot create devices in a userns");
* reading or listing what others own without read permission: CAP_DAC_OVERRIDE;
* switching a RUN to the Dockerfile's USER: CAP_SETUID and CAP_SETGID.

Everything here is read-only and cached: capabilities and id maps do not change while kiln runs.
"""
from __future__ import annotations

import errno
import functools
import os
from dataclasses import dataclass

# linux/capability.h
CAPABILITY_NUMBERS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
    "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21, "CAP_MKNOD": 27,
    "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31,
}

# what kiln does with each capability it may be refused (the end of "kiln needs CAP_X to ...")
PURPOSE = {
    "CAP_CHOWN": "give files the owners the image says",
    "CAP_FOWNER": "set the mode, times and attributes of files it does not own",
    "CAP_FSETID": "keep the setgid bit of a file whose group it is not in",
    "CAP_SETFCAP": "write file capabilities (security.capability)",
    "CAP_MKNOD": "create device nodes",
    "CAP_DAC_OVERRIDE": "read and list files and directories whatever their modes",
    "CAP_SETUID": "run a RUN as the Dockerfile's USER",
    "CAP_SETGID": "run a RUN with the USER's group and supplementary groups",
}


@dataclass(frozen=True)
class IdMap:
    """A user namespace's map of ids (from /proc/self/uid_map or gid_map): (inside, outside, count) lines."""

    ranges: tuple[tuple[int, int, int], ...]

    @property
    def identity(self) -> bool:
        return self.ranges == ((0, 0, 4294967295),)

    def maps(self, inside: int) -> bool:
        return any(first <= inside < first + count for first, _, count in self.ranges)

    def describe(self) -> str:
        return ", ".join(f"{first}-{first + count - 1}" for first, _, count in self.ranges) or "none"


def _read_map(path: str) -> IdMap:
    try:
        with open(path, encoding="ascii") as f:
            ranges = tuple(tuple(int(x) for x in line.split()) for line in f if line.strip())
    except (OSError, ValueError):
        return IdMap(((0, 0, 4294967295),))
    return IdMap(ranges)  # type: ignore[arg-type]


@functools.cache
def uid_map() -> IdMap:
    return _read_map("/proc/self/uid_map")


@functools.cache
def gid_map() -> IdMap:
    return _read_map("/proc/self/gid_map")


def in_user_namespace() -> bool:
    """True in a user namespace that does not map every id (a pod with `hostUsers: false`, rootless docker)."""
    return not uid_map().identity


@functools.cache
def effective_capabilities() -> frozenset[str] | None:
    """The capabilities this process has (CapEff), by name; None where /proc cannot say."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    mask = int(line.split()[1], 16)
                    return frozenset(name for name, bit in CAPABILITY_NUMBERS.items() if mask >> bit & 1)
    except (OSError, ValueError):
        pass
    return None


def lacks(capability: str) -> bool:
    caps = effective_capabilities()
    return caps is not None and capability not in caps


def missing(capability: str) -> str:
    """' (kiln needs CAP_X to ...; this container lacks it: add X to the securityContext's capabilities)'"""
    name = capability[len("CAP_"):]
    return (f" (kiln needs {capability} to {PURPOSE[capability]}, and this container lacks it: add {name} to the "
            "container's securityContext capabilities)")


def explain(op: str, err: OSError, uid: int | None = None, gid: int | None = None) -> str:
    """Why ``op`` ("chown", "chmod", "utime", "mknod", "setfcap", "read", "setuid", "setgid") failed with
    ``err``, when kiln's container is the reason; "" otherwise (the caller's own message stands)."""
    code = err.errno
    if op == "chown":
        if code == errno.EINVAL and in_user_namespace():
            unmapped = []
            if uid is not None and not uid_map().maps(uid):
                unmapped.append(f"uid {uid}")
            if gid is not None and not gid_map().maps(gid):
                unmapped.append(f"gid {gid}")
            if unmapped:
                return (f" ({' and '.join(unmapped)} cannot be given in this container's user namespace, which maps "
                        f"uids {uid_map().describe()} and gids {gid_map().describe()})")
        if code == errno.EPERM and lacks("CAP_CHOWN"):
            return missing("CAP_CHOWN")
    elif op in ("chmod", "utime", "setxattr") and code == errno.EPERM and lacks("CAP_FOWNER"):
        return missing("CAP_FOWNER")
    elif op == "setfcap" and code == errno.EPERM:
        if lacks("CAP_SETFCAP"):
            return missing("CAP_SETFCAP")
        if lacks("CAP_FOWNER"):
            return missing("CAP_FOWNER")
    elif op == "mknod" and code == errno.EPERM:
        if in_user_namespace():
            return " (device nodes cannot be created in a user namespace)"
        if lacks("CAP_MKNOD"):
            return missing("CAP_MKNOD")
    elif op == "read" and code == errno.EACCES:
        if lacks("CAP_DAC_OVERRIDE") and lacks("CAP_DAC_READ_SEARCH"):
            return missing("CAP_DAC_OVERRIDE")
    elif op in ("setuid", "setgid") and code == errno.EPERM:
        for cap in ("CAP_SETGID", "CAP_SETUID") if op == "setgid" else ("CAP_SETUID", "CAP_SETGID"):
            if lacks(cap):
                return missing(cap)
    return ""


def lost_special_bits(path: str, wanted: int, st: os.stat_result, gid: int) -> str | None:
    """The message when the kernel cleared a setuid/setgid bit kiln asked for (chmod by a process outside the
    file's group and without CAP_FSETID keeps the mode but drops S_ISGID), else None."""
    lost = wanted & 0o6000 & ~st.st_mode
    if not lost:
        return None
    bits = " and ".join(name for bit, name in ((0o4000, "setuid"), (0o2000, "setgid")) if lost & bit)
    why = missing("CAP_FSETID") if lacks("CAP_FSETID") else ""
    return f"the kernel cleared the {bits} bit of {path} (group {gid}) when kiln set its mode {wanted & 0o7777:04o}{why}"

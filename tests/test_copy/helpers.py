"""Building source trees and reading result trees entry by entry."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass

T0 = 1_600_000_000_123_456_789  # a fixed mtime in ns (2020-09-13)


def write(base: str, rel: str, data: str = "", mode: int = 0o644, mtime_ns: int | None = T0,
          uid: int = 0, gid: int = 0) -> str:
    path = os.path.join(base, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(data)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def mkdir(base: str, rel: str, mode: int = 0o755, mtime_ns: int | None = T0, uid: int = 0,
          gid: int = 0) -> str:
    path = os.path.join(base, rel)
    os.makedirs(path, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def symlink(base: str, rel: str, target: str, mtime_ns: int | None = None) -> str:
    path = os.path.join(base, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(target, path)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
    return path


@dataclass(frozen=True)
class Entry:
    kind: str        # "file", "dir", "link", "chr", "blk", "fifo", "sock"
    mode: int        # S_IMODE
    uid: int
    gid: int
    mtime_ns: int
    ino: int
    target: str | None = None   # link target
    data: bytes | None = None   # file content


def entry(path: str) -> Entry:
    st = os.lstat(path)
    m = st.st_mode
    kind = ("dir" if stat.S_ISDIR(m) else "file" if stat.S_ISREG(m) else "link" if stat.S_ISLNK(m)
            else "chr" if stat.S_ISCHR(m) else "blk" if stat.S_ISBLK(m) else "fifo" if stat.S_ISFIFO(m)
            else "sock")
    data = open(path, "rb").read() if kind == "file" else None
    target = os.readlink(path) if kind == "link" else None
    return Entry(kind, stat.S_IMODE(m), st.st_uid, st.st_gid, st.st_mtime_ns, st.st_ino, target, data)


def tree(root: str) -> dict[str, Entry]:
    """Every entry below root keyed by image path ("/a/b")."""
    out: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            out["/" + os.path.relpath(p, root)] = entry(p)
    return out


def names(root: str) -> set[str]:
    return set(tree(root))

"""Helpers for the snapshot tests: tars built with Python's tarfile (an independent writer),
tree listings for comparison, blobs read back with tarfile."""
from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from dataclasses import dataclass, field

import zstandard


@dataclass
class E:
    """One tar entry to build: kind in file, dir, symlink, link, fifo, chr, blk."""
    name: str
    kind: str = "file"
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 1_600_000_000
    link: str = ""
    major: int = 0
    minor: int = 0
    pax: dict[str, str] = field(default_factory=dict)


_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
          "link": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE,
          "blk": tarfile.BLKTYPE}


def make_tar(entries: list[E], compression: str = "none", fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for e in entries:
            ti = tarfile.TarInfo(e.name)
            ti.type = _TYPES[e.kind]
            ti.mode = e.mode
            ti.uid, ti.gid = e.uid, e.gid
            ti.mtime = e.mtime
            ti.linkname = e.link
            ti.devmajor, ti.devminor = e.major, e.minor
            ti.pax_headers = dict(e.pax)
            if e.kind == "file":
                ti.size = len(e.data)
                tf.addfile(ti, io.BytesIO(e.data))
            else:
                tf.addfile(ti)
    raw = buf.getvalue()
    if compression == "gzip":
        return gzip.compress(raw, 6)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(raw)
    return raw


def write_blob(tmp, name: str, data: bytes) -> str:
    path = os.path.join(str(tmp), name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def tree(root: str, with_mtime: bool = True, dir_mtime: bool = True) -> dict[str, tuple]:
    """Path -> (type, mode, uid, gid, size, mtime, link or content) for every entry under root."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            host = os.path.join(dirpath, name)
            rel = os.path.relpath(host, root)
            st = os.lstat(host)
            kind = stat.S_IFMT(st.st_mode)
            if stat.S_ISREG(st.st_mode):
                with open(host, "rb") as f:
                    payload = f.read()
            elif stat.S_ISLNK(st.st_mode):
                payload = os.readlink(host)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                payload = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                payload = None
            mtime = st.st_mtime_ns // 10**9 if with_mtime and (dir_mtime or not stat.S_ISDIR(st.st_mode)) else 0
            out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, mtime, payload)
    return out


class Member:
    """A TarInfo with its data (for regular files) attached."""

    def __init__(self, ti: tarfile.TarInfo, data: bytes | None) -> None:
        self.ti = ti
        self.data = data

    def __getattr__(self, name):
        return getattr(self.ti, name)


def read_layer(path: str) -> list[Member]:
    """Members of a layer blob (any compression), read with tarfile."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    elif raw[:4] == b"\x28\xb5\x2f\xfd":
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
        return [Member(m, tf.extractfile(m).read() if m.isfile() else None) for m in tf.getmembers()]


def names(path: str) -> list[str]:
    return [m.name for m in read_layer(path)]


def outside_snapshot(base: str) -> set[str]:
    """Everything under `base` (the directory holding the root): used to prove nothing escaped."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(base):
        for n in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, n), base))
    return found

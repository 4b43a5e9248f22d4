"""The layer writer: paths under the root (plus whiteouts) -> PAX tar -> compressor -> blob file.

One pass: the tar stream is hashed (diff_id), compressed in a second thread (ISA-L and zstd release
the GIL) and the compressed bytes hashed (digest) as they are written to a temporary file in
`work_dir`. Buffers are bounded, so memory stays flat whatever the layer size. Regular files get
their xxh3-128 digest on the way through, for the index.
"""
from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from typing import Mapping

import xxhash

from . import tarwrite as W
from .compression import check_compression, open_compressing
from .errors import SnapshotError
from .index import Entry, entry_of, read_xattrs

log = logging.getLogger(__name__)

_FLUSH = 1 << 20
_READ = 1 << 20


@dataclass(frozen=True)
class LayerFile:
    """A layer blob `write_layer` wrote: its path, both digests (compressed, uncompressed tar), size and
    compression."""
    path: str         # the compressed blob, a file under work_dir
    digest: str       # "sha256:<hex>" of the compressed bytes
    diff_id: str      # "sha256:<hex>" of the uncompressed tar
    size: int         # bytes of the compressed blob
    compression: str  # "gzip" | "zstd" | "none"


@dataclass(frozen=True)
class Whiteout:
    """`rel` deleted: its `.wh.` entry."""
    rel: str

    @property
    def name(self) -> str:
        parent, _, base = self.rel.rpartition("/")
        return f"{parent}/.wh.{base}" if parent else f".wh.{base}"


class _HashingFile:
    """The blob file: hashes (sha256) and counts what the compressor writes to it."""

    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "wb", buffering=0)
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:  # called from the compressor's thread
        self.sha.update(data)
        view = memoryview(data)
        while view:
            n = self._file.write(view)
            view = view[n:]
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._file.close()


class _BlobSink:
    """tar bytes in; sha256 of them (diff_id) on the caller's thread, compression in a worker
    thread that releases the GIL (ISA-L's parallel deflate, zstd's own worker), sha256 of the
    compressed bytes (digest) as they reach the file."""

    def __init__(self, work_dir: str, compression: str, level: int | None) -> None:
        check_compression(compression)
        self.compression = compression
        fd, self.path = tempfile.mkstemp(prefix="layer-", suffix=".blob", dir=work_dir)
        self._out = _HashingFile(fd)
        self._tar_sha = hashlib.sha256()
        self.tar_size = 0
        self._parts: list[bytes] = []
        self._pending = 0
        self._stream = open_compressing(self._out, compression, level)

    def write(self, data: bytes) -> None:
        self._parts.append(data)
        self._pending += len(data)
        if self._pending >= _FLUSH:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts = []
        self._pending = 0
        self._tar_sha.update(data)
        self.tar_size += len(data)
        self._stream.write(data)

    def close(self) -> LayerFile:
        self._flush()
        if self._stream is not self._out:
            self._stream.close()
        self._out.close()
        return LayerFile(path=self.path, digest="sha256:" + self._out.sha.hexdigest(),
                         diff_id="sha256:" + self._tar_sha.hexdigest(), size=self._out.size,
                         compression=self.compression)

    def abort(self) -> None:
        try:
            if self._stream is not self._out:
                try:
                    self._stream.close()
                except Exception:  # already failing; the first error is the one to report
                    pass
            self._out.close()
        finally:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


@dataclass
class WrittenLayer:
    """What `write_layer` gives: the blob, and the archived paths as index entries (with digests) so the index takes
    them in without another walk."""
    layer: LayerFile
    entries: dict[str, Entry]  # what was archived, as index entries (digests of regular files)
    count: int


def _mtime(st: os.stat_result, epoch: int | None) -> int:
    return epoch if epoch is not None else st.st_mtime_ns // 1_000_000_000


def write_layer(root: str, paths: list[str], whiteouts: list[Whiteout], work_dir: str,
                compression: str = "gzip", level: int | None = None,
                epoch: int | None = None) -> WrittenLayer:
    """Archive relative paths `paths` (each one entry, not recursive) and `whiteouts` from `root`
    into a new blob in `work_dir`, in sorted order (parents before children). Regular files with
    several names among `paths` become one file and tar hard links to its first name."""
    root = root.rstrip("/")
    items: list[tuple[str, str | Whiteout]] = [(p, p) for p in paths]
    items += [(w.name, w) for w in whiteouts]
    items.sort(key=lambda x: x[0])
    sink = _BlobSink(work_dir, compression, level)
    entries: dict[str, Entry] = {}
    first_name: dict[tuple[int, int], str] = {}
    try:
        for name, item in items:
            if isinstance(item, Whiteout):
                sink.write(W.header(name.encode("utf-8", "surrogateescape"), 0o644, 0, 0, 0,
                                    epoch or 0, W.REG))
                continue
            _archive_one(root, item, sink, entries, first_name, epoch)
        sink.write(W.END_OF_ARCHIVE)
        layer = sink.close()
    except BaseException:
        sink.abort()
        raise
    log.debug("layer %s: %d entries, tar %d bytes, blob %d bytes", layer.digest, len(items),
              sink.tar_size, layer.size)
    return WrittenLayer(layer, entries, len(items))


def _archive_one(root: str, rel: str, sink: _BlobSink, entries: dict[str, Entry],
                 first_name: dict[tuple[int, int], str], epoch: int | None) -> None:
    host = f"{root}/{rel}"
    bname = rel.encode("utf-8", "surrogateescape")
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        raise SnapshotError(f"/{rel} vanished while the layer was being written") from None
    mode = st.st_mode
    xattrs = read_xattrs(host)
    perm = stat.S_IMODE(mode)
    mtime = _mtime(st, epoch)
    if stat.S_ISREG(mode):
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = first_name.get(key)
            if first is not None:
                sink.write(W.header(bname, perm, st.st_uid, st.st_gid, 0, mtime, W.LINK,
                                    first.encode("utf-8", "surrogateescape")))
                src = entries[first]
                entries[rel] = entry_of(st, None, xattrs, src.digest)
                return
            first_name[key] = rel
        digest, st = _archive_file(host, rel, bname, sink, xattrs, epoch)
        entries[rel] = entry_of(st, None, xattrs, digest)
    elif stat.S_ISDIR(mode):
        sink.write(W.header(bname + b"/", perm, st.st_uid, st.st_gid, 0, mtime, W.DIR, xattrs=xattrs))
        entries[rel] = entry_of(st, None, xattrs)
    elif stat.S_ISLNK(mode):
        target = os.readlink(host)
        sink.write(W.header(bname, perm, st.st_uid, st.st_gid, 0, mtime, W.SYMLINK,
                            target.encode("utf-8", "surrogateescape"), xattrs=xattrs))
        entries[rel] = entry_of(st, target, xattrs)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
        typ = W.CHR if stat.S_ISCHR(mode) else W.BLK if stat.S_ISBLK(mode) else W.FIFO
        major = os.major(st.st_rdev) if typ != W.FIFO else 0
        minor = os.minor(st.st_rdev) if typ != W.FIFO else 0
        sink.write(W.header(bname, perm, st.st_uid, st.st_gid, 0, mtime, typ, b"", major, minor, xattrs))
        entries[rel] = entry_of(st, None, xattrs)
    else:
        log.warning("/%s is a socket or of unknown type; not archived", rel)
        entries[rel] = entry_of(st)  # known to the index all the same, so it is not new next time


def _archive_file(host: str, rel: str, bname: bytes, sink: _BlobSink, xattrs: Mapping[str, bytes],
                  epoch: int | None) -> tuple[bytes, os.stat_result]:
    fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        size = st.st_size
        sink.write(W.header(bname, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size,
                            _mtime(st, epoch), W.REG, xattrs=xattrs))
        left = size
        hasher = None
        digest = b""
        while left:
            chunk = os.read(fd, min(left, _READ))
            if not chunk:  # shrank while we read: keep the header's promise
                log.warning("/%s shrank while being archived; padded with zeros", rel)
                chunk = bytes(min(left, _READ))
            if hasher is None and len(chunk) == size:
                digest = xxhash.xxh3_128_digest(chunk)
            else:
                if hasher is None:
                    hasher = xxhash.xxh3_128()
                hasher.update(chunk)
            sink.write(chunk)
            left -= len(chunk)
        if size == 0:
            digest = xxhash.xxh3_128_digest(b"")
        elif hasher is not None:
            digest = hasher.digest()
        pad = -size % W.BLOCK
        if pad:
            sink.write(bytes(pad))
        return digest, st
    finally:
        os.close(fd)

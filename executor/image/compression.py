"""Layer compression for the image model: gzip via ISA-L (isal.igzip), zstd via zstandard, or none.
Detection by magic bytes and the level scale are the filesystem engine's (`snapshot.compression`)."""
from __future__ import annotations

import hashlib
import io
import shutil
from dataclasses import dataclass
from typing import BinaryIO

from isal import igzip

from snapshot.compression import COMPRESSIONS, detect, isal_level

GZIP = "gzip"
ZSTD = "zstd"
NONE = "none"
CHUNK = 1 << 20

__all__ = ["COMPRESSIONS", "GZIP", "ZSTD", "NONE", "CompressedResult", "compress_file", "compress_stream",
           "decompress_file", "detect", "detect_file", "open_compressor", "open_decompressed"]


def detect_file(path: str) -> str:
    with open(path, "rb") as f:
        return detect(f.read(6))


def _check(compression: str) -> None:
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r} (want gzip, zstd or none)")


def open_decompressed(stream: BinaryIO, compression: str) -> BinaryIO:
    """A readable stream of the uncompressed bytes of `stream`. Closing it closes `stream`."""
    _check(compression)
    if compression == GZIP:
        return _Closing(igzip.IGzipFile(fileobj=stream, mode="rb"), stream)
    if compression == ZSTD:
        import zstandard   # here: most builds never meet a zstd blob, and start-up should not load it

        reader = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True, closefd=True)
        return _Closing(io.BufferedReader(reader, CHUNK), stream)
    return stream


def open_compressor(stream: BinaryIO, compression: str, level: int | None = None) -> BinaryIO:
    """A writable stream that compresses into `stream`. Closing it finishes the frame but leaves `stream` open."""
    _check(compression)
    if compression == GZIP:
        # zlib-style levels (0-9) onto ISA-L's 0-3 as layers are written (snapshot.compression.isal_level)
        lvl = isal_level(None if level is None or level < 0 else level)
        return igzip.IGzipFile(fileobj=stream, mode="wb", compresslevel=lvl, mtime=0)
    if compression == ZSTD:
        lvl = 3 if level is None or level < 0 else level
        import zstandard

        return zstandard.ZstdCompressor(level=lvl).stream_writer(stream, closefd=False)
    return _NoClose(stream)


@dataclass(frozen=True)
class CompressedResult:
    """What compressing a layer tar gives: both digests (blob and diff_id) and both sizes, hashed in the same pass
    as the compression."""
    digest: str     # of the compressed bytes
    diff_id: str    # of the uncompressed bytes
    size: int       # compressed size
    uncompressed_size: int


def compress_file(src_path: str, dst_path: str, compression: str, level: int | None = None) -> CompressedResult:
    """Compress a tar file into a blob, hashing both sides in one pass."""
    with open(src_path, "rb") as src:
        return compress_stream(src, dst_path, compression, level)


def compress_stream(src: BinaryIO, dst_path: str, compression: str, level: int | None = None) -> CompressedResult:
    diff_h = hashlib.sha256()
    raw = 0
    with open(dst_path, "wb") as dst:
        hashing = _HashingWriter(dst)
        comp = open_compressor(hashing, compression, level)
        while True:
            chunk = src.read(CHUNK)
            if not chunk:
                break
            diff_h.update(chunk)
            raw += len(chunk)
            comp.write(chunk)
        comp.close()
    return CompressedResult("sha256:" + hashing.hash.hexdigest(), "sha256:" + diff_h.hexdigest(), hashing.size, raw)


def decompress_file(src_path: str, dst_path: str, compression: str | None = None) -> None:
    comp = compression or detect_file(src_path)
    with open(src_path, "rb") as f, open_decompressed(f, comp) as r, open(dst_path, "wb") as out:
        shutil.copyfileobj(r, out, CHUNK)


class _HashingWriter(io.RawIOBase):
    def __init__(self, dst: BinaryIO):
        self.dst = dst
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        b = bytes(b)
        self.hash.update(b)
        self.size += len(b)
        self.dst.write(b)
        return len(b)

    def close(self) -> None:  # never closes dst
        super().close()


class _NoClose(io.RawIOBase):
    def __init__(self, dst: BinaryIO):
        self.dst = dst

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        return self.dst.write(b)


class _Closing(io.RawIOBase):
    """Wraps a decompressing reader so closing it also closes the source stream."""

    def __init__(self, inner, source: BinaryIO):
        self.inner = inner
        self.source = source

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self.inner.read(n)

    def readinto(self, b) -> int:
        data = self.inner.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self.inner.close()
            finally:
                self.source.close()
        super().close()

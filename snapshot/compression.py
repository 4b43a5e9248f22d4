"""Compression detected from a blob's first bytes, and the compressors used for new layers.

gzip goes through ISA-L (`isal`), zstd through `zstandard`. ISA-L has four levels (0-3); kiln's
`level` keeps gzip's familiar 1-9 scale (kaniko's --compression-level) and maps it: 0 -> 0,
1-2 -> 1, 3-6 -> 2, 7-9 -> 3. The default is ISA-L level 1: ~400 MB/s on one core here with a ratio
close to zlib level 3-4, where zlib level 6 manages ~25 MB/s; a build's time goes to compression far
more than its registry bytes do.
"""
from __future__ import annotations

import io
import queue
import threading
from typing import BinaryIO

from isal import igzip, igzip_threaded

# zstandard (and the platform module it loads) is imported where a zstd blob is read or written: most builds
# never meet one, and start-up should not pay for it (issue 21)

from .errors import LayerFormatError


COMPRESSIONS = ("gzip", "zstd", "none")          # what a layer may be written with
DEFAULT_GZIP_LEVEL = 1  # ISA-L level
DEFAULT_ZSTD_LEVEL = 3
#: magic bytes; layers are gzip, zstd or plain; ADD also unpacks bzip2 and xz archives
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)


def detect(head: bytes) -> str:
    """'gzip', 'zstd', 'bzip2', 'xz' or 'none' from the first bytes (6 suffice) of a blob.
    The one place kiln tells compressions apart: layers, images and ADD archives all ask here."""
    for magic, name in MAGIC:
        if head.startswith(magic):
            return name
    return "none"


def open_decompressed(raw: BinaryIO, where: str, hasher=None) -> tuple[BinaryIO, str]:
    """Wrap `raw` (positioned at the blob's start, seekable or buffered) in a decompressing reader.

    With a `hasher` (hashlib's), every uncompressed byte is hashed in the decompressing thread as it
    is read ahead: the diff_id of a layer streamed from a registry costs the caller nothing (ISA-L's
    inflate and hashlib's sha256 both run without the GIL)."""
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, 1 << 20)  # type: ignore[arg-type]
    head = buffered.peek(6)[:6]
    kind = detect(head)
    if kind not in COMPRESSIONS:
        raise LayerFormatError(f"{where}: {kind} is not a layer compression (gzip, zstd or none)")
    if kind == "gzip":
        if hasher is not None:
            return ThreadedReader(igzip.IGzipFile(fileobj=buffered, mode="rb"), hasher=hasher), kind  # type: ignore[return-value]
        # inflate in a background thread (ISA-L releases the GIL), overlapping the caller's work
        return igzip_threaded.open(buffered, "rb", threads=1), kind  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True,
                                                            read_size=1 << 20)
        return ThreadedReader(reader, hasher=hasher), kind  # type: ignore[return-value]
    if hasher is not None:
        return ThreadedReader(buffered, hasher=hasher), kind  # type: ignore[return-value]
    return buffered, kind


class ThreadedReader(io.RawIOBase):
    """Reads ahead from `inner` in a background thread (a few MiB at most), so decompression
    overlaps the consumer."""

    def __init__(self, inner: BinaryIO, chunk: int = 1 << 20, depth: int = 4, hasher=None) -> None:
        super().__init__()
        self._inner = inner
        self._hasher = hasher
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(depth)
        self._pending = b""
        self._eof = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(chunk,), daemon=True,
                                        name="kiln-decompress")
        self._thread.start()

    def _run(self, chunk: int) -> None:
        try:
            hasher = self._hasher
            while not self._stop.is_set():
                data = self._inner.read(chunk)
                if hasher is not None:
                    hasher.update(data)
                self._queue.put(data)
                if not data:
                    return
        except BaseException as e:  # handed to the reader thread
            self._queue.put(e)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while not self._pending and not self._eof:
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            if not item:
                self._eof = True
            self._pending = item
        if n < 0 or n >= len(self._pending):
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(0.01)
        super().close()


def isal_level(level: int | None) -> int:
    if level is None:
        return DEFAULT_GZIP_LEVEL
    if not 0 <= level <= 9:
        raise ValueError(f"gzip compression level {level} is outside 0-9")
    if level == 0:
        return 0
    if level <= 2:
        return 1
    if level <= 6:
        return 2
    return 3


def open_compressing(raw: BinaryIO, compression: str, level: int | None) -> BinaryIO:
    """A writable stream compressing into `raw` from a worker thread that runs without the GIL
    (ISA-L's parallel deflate in 1 MiB blocks; zstd's own worker), so the caller's tar building
    and hashing overlap compression. Output is deterministic (gzip header mtime 0)."""
    if compression == "gzip":
        return igzip_threaded.open(raw, "wb", compresslevel=isal_level(level), threads=1)  # type: ignore[return-value]
    if compression == "zstd":
        if level is not None and not 1 <= level <= 22:
            raise ValueError(f"zstd compression level {level} is outside 1-22")
        import zstandard

        cctx = zstandard.ZstdCompressor(level=DEFAULT_ZSTD_LEVEL if level is None else level, threads=1)
        return cctx.stream_writer(raw, closefd=False)  # type: ignore[return-value]
    check_compression(compression)
    return raw


def zstd_errors() -> tuple[type[BaseException], ...]:
    """zstandard's error class for an `except` clause, when zstandard was loaded (nothing else raises it)."""
    import sys

    module = sys.modules.get("zstandard")
    return (module.ZstdError,) if module is not None else ()


def check_compression(compression: str) -> None:
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r}: expected one of {', '.join(COMPRESSIONS)}")


__all__ = ["detect", "open_decompressed", "open_compressing", "isal_level", "check_compression", "zstd_errors"]

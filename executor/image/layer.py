"""Layers: a descriptor, a diff_id and a way to open the compressed blob and the uncompressed tar."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from typing import Any, BinaryIO, Callable

from . import compression as comp
from . import digest as _digest
from . import mediatypes as mt
from .descriptor import Descriptor


class LayerError(ValueError):
    """A layer blob does not match its descriptor or diff_id."""


@dataclass(frozen=True)
class Layer:
    """One layer of an image: its descriptor (the compressed blob), its diff_id (the uncompressed tar's digest, as
    the config's rootfs lists it) and how to read the blob."""
    descriptor: Descriptor
    diff_id: str
    #: opens the compressed blob for reading (from disk, a cache, or a registry)
    opener: Callable[[], BinaryIO]
    #: the blob as a file on disk, when there is one (lets sinks hard-link or stream it)
    path: str | None = None
    #: "registry/repository" that already holds this blob, for a cross-repository mount on push
    source: str | None = None

    def __post_init__(self) -> None:
        _digest.validate(self.diff_id, f"diff_id of layer {self.descriptor.digest}")
        if not mt.is_layer(self.descriptor.media_type):
            raise LayerError(f"layer {self.descriptor.digest}: {self.descriptor.media_type!r} is not a layer media type")

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str, media_type: str | None = None, diff_id: str | None = None,
                  digest: str | None = None, size: int | None = None, fmt: str = mt.OCI,
                  source: str | None = None) -> "Layer":
        """A layer whose compressed blob is the file at `path`. Missing digest/size/diff_id are computed."""
        if not os.path.isfile(path):
            raise LayerError(f"layer blob {path} does not exist or is not a file")
        if media_type is None:
            media_type = mt.layer_media_type(comp.detect_file(path), fmt)
        if digest is None or size is None:
            digest, size = _digest.of_file(path)
        if diff_id is None:
            diff_id = _diff_id_of(path, mt.layer_compression(media_type))
        desc = Descriptor(media_type, digest, size)
        return cls(desc, diff_id, lambda: open(path, "rb"), path=path, source=source)

    @classmethod
    def from_layer_file(cls, layer_file: Any, fmt: str = mt.OCI) -> "Layer":
        """From a `snapshot.LayerFile` (path, digest, diff_id, size, compression): trusted, nothing re-hashed."""
        media_type = mt.layer_media_type(layer_file.compression, fmt)
        path = layer_file.path
        desc = Descriptor(media_type, layer_file.digest, layer_file.size)
        return cls(desc, layer_file.diff_id, lambda: open(path, "rb"), path=path)

    # ---- reading -----------------------------------------------------------------------------
    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def size(self) -> int:
        return self.descriptor.size

    @property
    def media_type(self) -> str:
        return self.descriptor.media_type

    @property
    def compression(self) -> str:
        return mt.layer_compression(self.media_type)

    @property
    def foreign(self) -> bool:
        return mt.is_foreign(self.media_type)

    def open_blob(self) -> BinaryIO:
        return self.opener()

    def open_tar(self) -> BinaryIO:
        """The uncompressed tar stream (compression detected from the blob's magic bytes)."""
        with self.open_blob() as probe:
            head = probe.read(4)
        return comp.open_decompressed(self.open_blob(), comp.detect(head))

    def with_media_type(self, media_type: str) -> "Layer":
        return replace(self, descriptor=self.descriptor.with_media_type(media_type))

    def verify(self) -> None:
        """Read the whole blob: check digest, size, compression against the media type, and diff_id."""
        with self.open_blob() as f:
            verify_blob(f, self.descriptor, self.diff_id)


def _diff_id_of(path: str, compression: str) -> str:
    with open(path, "rb") as f, comp.open_decompressed(f, compression) as r:
        return _digest.of_stream(r)[0]


def verify_blob(stream: BinaryIO, desc: Descriptor, diff_id: str | None, where: str = "") -> None:
    """Hash a layer blob and its uncompressed tar in one pass; raise LayerError naming the blob on mismatch."""
    name = f"layer blob {desc.digest}" + (f" of {where}" if where else "")
    counter = _HashingReader(stream, _digest.hasher(desc.digest))
    head = counter.peek4()
    actual_compression = comp.detect(head)
    declared = mt.layer_compression(desc.media_type)
    if actual_compression != declared:
        raise LayerError(f"{name}: media type {desc.media_type} says {declared} but the bytes are {actual_compression}")
    diff_h = hashlib.sha256()
    try:
        with comp.open_decompressed(counter, declared) as r:
            while True:
                chunk = r.read(comp.CHUNK)
                if not chunk:
                    break
                diff_h.update(chunk)
    except LayerError:
        raise
    except Exception as e:  # zlib/zstd errors, EOFError on truncation
        raise LayerError(f"{name}: cannot be decompressed as {declared}: {e}") from None
    counter.drain()
    if counter.size != desc.size:
        raise LayerError(f"{name}: size is {counter.size} bytes, the manifest says {desc.size}")
    got = f"{_digest.algorithm_of(desc.digest)}:{counter.hash.hexdigest()}"
    if got != desc.digest:
        raise LayerError(f"{name}: content hashes to {got}")
    if diff_id is not None:
        got_diff = "sha256:" + diff_h.hexdigest()
        if got_diff != diff_id:
            raise LayerError(f"{name}: uncompressed content hashes to {got_diff}, the config's diff_id is {diff_id}")


class _HashingReader:
    """Reads from a stream while hashing and counting; hides `close` so the caller owns the stream."""

    def __init__(self, stream: BinaryIO, h):
        self.stream = stream
        self.hash = h
        self.size = 0
        self._pending = b""

    def peek4(self) -> bytes:
        while len(self._pending) < 4:
            chunk = self.stream.read(4 - len(self._pending))
            if not chunk:
                break
            self._pending += chunk
        return self._pending

    def read(self, n: int = -1) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            if n is None or n < 0:
                data += self.stream.read()
            elif len(data) > n:
                data, self._pending = data[:n], data[n:]
                self.hash.update(data)
                self.size += len(data)
                return data
        else:
            data = self.stream.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(comp.CHUNK):
            pass

    @property
    def closed(self) -> bool:
        return False

    def __enter__(self) -> "_HashingReader":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def close(self) -> None:
        pass

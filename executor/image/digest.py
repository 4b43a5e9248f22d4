"""sha256 digests: validation and hashing of files and streams."""
from __future__ import annotations

import hashlib
import re
from typing import BinaryIO

_DIGEST_RE = re.compile(r"^(?P<alg>[a-z0-9]+(?:[.+_-][a-z0-9]+)*):(?P<hex>[a-zA-Z0-9=_-]+)$")
_HEX_LEN = {"sha256": 64, "sha512": 128}
CHUNK = 1 << 20


class DigestError(ValueError):
    pass


def validate(digest: str, what: str = "digest") -> str:
    """Return `digest` if it is well formed ("sha256:<64 lowercase hex>"), else raise DigestError."""
    m = _DIGEST_RE.match(digest or "")
    if not m:
        raise DigestError(f"{what} {digest!r} is not of the form 'algorithm:hex'")
    alg, hexpart = m.group("alg"), m.group("hex")
    want = _HEX_LEN.get(alg)
    if want is None:
        raise DigestError(f"{what} {digest!r} uses unsupported algorithm {alg!r} (want sha256 or sha512)")
    if len(hexpart) != want or not re.fullmatch(r"[0-9a-f]+", hexpart):
        raise DigestError(f"{what} {digest!r} must have {want} lowercase hex digits after '{alg}:'")
    return digest


def hex_of(digest: str) -> str:
    return validate(digest).split(":", 1)[1]


def algorithm_of(digest: str) -> str:
    return validate(digest).split(":", 1)[0]


def of_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def of_stream(stream: BinaryIO) -> tuple[str, int]:
    """(digest, size) of everything left in `stream`."""
    h = hashlib.sha256()
    size = 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        h.update(chunk)
        size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def of_file(path: str) -> tuple[str, int]:
    """(digest, size) of a file."""
    with open(path, "rb") as f:
        return of_stream(f)


def hasher(digest: str):
    """A fresh hashlib object for the algorithm of `digest`."""
    return hashlib.new(algorithm_of(digest))


class DigestMismatch(ValueError):
    """Bytes on disk that do not hash to the digest they are stored under."""


def read_verified(path: str, digest: str) -> bytes:
    """The bytes of a small blob file (a manifest, a config), checked against `digest`."""
    with open(path, "rb") as f:
        data = f.read()
    if of_bytes(data) != digest:
        raise DigestMismatch(f"blob {digest} is corrupt: its bytes hash to {of_bytes(data)}")
    return data

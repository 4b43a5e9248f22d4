"""What manifests and indexes share: JSON documents written back with exactly the bytes they were read
from while their content is unchanged, and addressed by the digest of those bytes."""
from __future__ import annotations

from . import digest as _digest
from . import jsonbytes
from .descriptor import Descriptor


class Document:
    """Mixin for a frozen dataclass with `media_type`, `raw`, `to_dict()` and `from_bytes(data, media_type)`."""

    media_type: str
    raw: bytes | None

    def to_dict(self) -> dict:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        if self.raw is not None and type(self).from_bytes(self.raw, self.media_type) == self:  # type: ignore[attr-defined]
            return self.raw
        return jsonbytes.dumps(self.to_dict())

    @property
    def digest(self) -> str:
        return _digest.of_bytes(self.to_bytes())

    def descriptor(self) -> Descriptor:
        data = self.to_bytes()
        return Descriptor(self.media_type, _digest.of_bytes(data), len(data))


def optional_fields(d: dict, subject: Descriptor | None, annotations: dict[str, str]) -> None:
    """The optional members both documents end with, in the order the specs list them."""
    if subject is not None:
        d["subject"] = subject.to_dict()
    if annotations:
        d["annotations"] = dict(annotations)

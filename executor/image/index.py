"""Image indexes (OCI image index, Docker manifest list) and platform resolution."""
from __future__ import annotations

from dataclasses import dataclass, field

from . import jsonbytes
from . import mediatypes as mt
from .descriptor import Descriptor
from .document import Document, optional_fields
from .platform import Platform


class NoMatchingPlatform(LookupError):
    pass


@dataclass(frozen=True)
class Index(Document):
    """An image index or Docker manifest list (image-spec image-index.md): descriptors of manifests, as a registry
    or layout holds it; what a build outputs is an `ImageIndex`, written as one of these."""
    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    artifact_type: str = ""
    raw: bytes | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_bytes(cls, data: bytes, media_type: str = "", where: str = "index") -> "Index":
        d = jsonbytes.loads(data, where)
        if d.get("schemaVersion") != 2:
            raise ValueError(f"{where}: schemaVersion {d.get('schemaVersion')!r} is not supported (want 2)")
        mtype = d.get("mediaType", "") or media_type or mt.OCI_INDEX
        if mtype not in mt.INDEX_TYPES:
            raise ValueError(f"{where}: media type {mtype!r} is not an index or manifest list")
        manifests = tuple(Descriptor.from_dict(m, f"{where} entry {i}") for i, m in enumerate(d.get("manifests") or []))
        subject = Descriptor.from_dict(d["subject"], f"{where} subject") if d.get("subject") else None
        return cls(mtype, manifests, dict(d.get("annotations") or {}), subject,
                   d.get("artifactType", "") or "", raw=bytes(data))

    def to_dict(self) -> dict:
        d: dict = {"schemaVersion": 2, "mediaType": self.media_type}
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        d["manifests"] = [m.to_dict() for m in self.manifests]
        optional_fields(d, self.subject, self.annotations)
        return d

    def platforms(self) -> list[Platform]:
        return [m.platform for m in self.manifests if m.platform is not None]

    def select(self, want: Platform, where: str = "index") -> Descriptor:
        """The first entry whose platform satisfies `want` (see Platform.matches)."""
        for m in self.manifests:
            if m.platform is not None and want.matches(m.platform):
                return m
        have = ", ".join(str(p) for p in self.platforms()) or "none"
        raise NoMatchingPlatform(f"{where} has no image for platform {want} (it has: {have})")

    def with_manifest(self, desc: Descriptor) -> "Index":
        return Index(self.media_type, self.manifests + (desc,), dict(self.annotations),
                     self.subject, self.artifact_type)

"""Image manifests (Docker schema 2 and OCI image manifest)."""
from __future__ import annotations

from dataclasses import dataclass, field

from . import jsonbytes
from . import mediatypes as mt
from .descriptor import Descriptor
from .document import Document, optional_fields


@dataclass(frozen=True)
class Manifest(Document):
    """An image manifest, Docker schema 2 or OCI (image-spec manifest.md): the config and layer descriptors, read
    from a registry or layout, or written by a sink."""
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    artifact_type: str = ""
    #: the bytes this manifest was read from; to_bytes() returns them while the content is unchanged
    raw: bytes | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_bytes(cls, data: bytes, media_type: str = "", where: str = "manifest") -> "Manifest":
        """Parse a manifest; `media_type` is the Content-Type it came with (used when the body has none)."""
        d = jsonbytes.loads(data, where)
        if d.get("schemaVersion") != 2:
            raise ValueError(f"{where}: schemaVersion {d.get('schemaVersion')!r} is not supported (want 2; "
                             "schema 1 manifests are deprecated and not read)")
        body_type = d.get("mediaType", "")
        mtype = body_type or media_type or mt.OCI_MANIFEST
        if mtype in mt.INDEX_TYPES or "manifests" in d:
            raise ValueError(f"{where}: is an index ({mtype}), not an image manifest")
        if mtype not in mt.MANIFEST_TYPES:
            raise ValueError(f"{where}: unsupported manifest media type {mtype!r}")
        if "config" not in d:
            raise ValueError(f"{where}: has no config descriptor")
        config = Descriptor.from_dict(d["config"], f"{where} config")
        layers = tuple(Descriptor.from_dict(ld, f"{where} layer {i}") for i, ld in enumerate(d.get("layers") or []))
        subject = Descriptor.from_dict(d["subject"], f"{where} subject") if d.get("subject") else None
        return cls(mtype, config, layers, dict(d.get("annotations") or {}), subject,
                   d.get("artifactType", "") or "", raw=bytes(data))

    def to_dict(self) -> dict:
        d: dict = {"schemaVersion": 2, "mediaType": self.media_type}
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        d["config"] = self.config.to_dict()
        d["layers"] = [ld.to_dict() for ld in self.layers]
        optional_fields(d, self.subject, self.annotations)
        return d

    @property
    def format(self) -> str:
        return mt.format_of(self.media_type)

    def converted(self, fmt: str) -> "Manifest":
        """The same manifest in another format ('docker' or 'oci'), media types mapped."""
        if fmt == self.format:
            return self
        if fmt == mt.DOCKER and (self.subject or self.artifact_type):
            raise ValueError("a Docker schema 2 manifest cannot carry an OCI subject or artifactType")
        return Manifest(
            mt.to_format(self.media_type, fmt),
            self.config.with_media_type(mt.to_format(self.config.media_type, fmt)),
            tuple(ld.with_media_type(mt.to_format(ld.media_type, fmt)) for ld in self.layers),
            dict(self.annotations) if fmt == mt.OCI else {},
            self.subject,
            self.artifact_type,
        )

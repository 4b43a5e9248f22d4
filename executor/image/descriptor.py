"""OCI content descriptors."""
from __future__ import annotations

from dataclasses import dataclass, field

from . import digest as _digest
from .platform import Platform


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor (OCI image-spec descriptor.md): how a manifest or index points to a blob or another
    manifest (media type, digest, size; URLs, annotations, platform where given)."""
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict, compare=True, hash=False)
    platform: Platform | None = None
    artifact_type: str = ""

    def __post_init__(self) -> None:
        _digest.validate(self.digest, "descriptor digest")
        if not isinstance(self.size, int) or self.size < 0:
            raise ValueError(f"descriptor {self.digest}: size {self.size!r} is not a non-negative integer")

    @classmethod
    def from_dict(cls, d: dict, where: str = "descriptor") -> "Descriptor":
        try:
            media_type = d["mediaType"]
            dg = d["digest"]
            size = d["size"]
        except (KeyError, TypeError) as e:
            raise ValueError(f"{where}: missing field {e} in {d!r}") from None
        if not isinstance(size, int) or isinstance(size, bool):
            raise ValueError(f"{where}: size {size!r} of {dg} is not an integer")
        try:
            return cls(
                media_type=media_type,
                digest=dg,
                size=size,
                urls=tuple(d.get("urls") or ()),
                annotations=dict(d.get("annotations") or {}),
                platform=Platform.from_dict(d["platform"]) if d.get("platform") else None,
                artifact_type=d.get("artifactType", "") or "",
            )
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    def to_dict(self) -> dict:
        d: dict = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            d["urls"] = list(self.urls)
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform is not None:
            d["platform"] = self.platform.to_dict()
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        return d

    def with_media_type(self, media_type: str) -> "Descriptor":
        return Descriptor(media_type, self.digest, self.size, self.urls, dict(self.annotations),
                          self.platform, self.artifact_type)

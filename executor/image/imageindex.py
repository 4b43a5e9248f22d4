"""An image index as a build gives it (go-containerregistry's v1.ImageIndex): images, one per platform, and
the manifests that describe them (attestation manifests), under one index document.

A multi-platform build gives one image per `--custom-platform`; `--sbom`/`--provenance` add an attestation
manifest per image. The index lists the images first, in the order built, then the attestation manifests, as
BuildKit's image exporter writes them (exporter/containerimage/writer.go). Its media type is the Docker
manifest list when every image is Docker-format and nothing else is in it, else the OCI image index (as
BuildKit's `oci-mediatypes` rule). Every sink (registry, OCI layout, tarball) takes this one model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from . import digest as _digest
from . import mediatypes as mt
from .descriptor import Descriptor
from .image import Image
from .index import Index


@dataclass(frozen=True)
class Artifact:
    """A manifest of the index that is not one of its images: its descriptor as the index lists it (platform,
    annotations), its bytes, and its blobs (small byte strings: a config and in-toto statements)."""
    descriptor: Descriptor
    manifest_bytes: bytes
    blobs: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageIndex:
    """What a build outputs: its images, one per platform, and the attestation manifests beside them; every sink
    takes one (a single image is an index of one)."""
    images: tuple[Image, ...]
    artifacts: tuple[Artifact, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    #: the index bytes as read (an index read back from a layout is pushed as it was written)
    raw: bytes | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError("an image index needs at least one image")
        platforms = [str(i.config.platform) for i in self.images]
        if len(set(platforms)) != len(platforms):
            raise ValueError(f"an image index holds one image per platform, not {platforms}")

    @property
    def media_type(self) -> str:
        if self.raw is not None:
            return self.index.media_type
        if not self.artifacts and all(i.format == mt.DOCKER for i in self.images):
            return mt.DOCKER_MANIFEST_LIST
        return mt.OCI_INDEX

    @cached_property
    def index(self) -> Index:
        if self.raw is not None:
            return Index.from_bytes(self.raw, where="image index")
        entries = [i.descriptor(platform=True) for i in self.images] + [a.descriptor for a in self.artifacts]
        return Index(self.media_type, tuple(entries), dict(self.annotations))

    @cached_property
    def index_bytes(self) -> bytes:
        return self.raw if self.raw is not None else self.index.to_bytes()

    @property
    def digest(self) -> str:
        """What the destinations' tags name."""
        return _digest.of_bytes(self.index_bytes)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.index_bytes))

    def image_for(self, platform) -> Image | None:
        """The image built for `platform` (an executor.image.Platform), if any."""
        for image in self.images:
            if image.config.platform.matches(platform):
                return image
        return None

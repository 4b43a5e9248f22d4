"""An image: its config, its layers, and the manifest computed from them."""
from __future__ import annotations

from dataclasses import dataclass, field

from . import digest as _digest
from . import mediatypes as mt
from .config import HistoryEntry, ImageConfig
from .descriptor import Descriptor
from .layer import Layer
from .manifest import Manifest
from .platform import Platform


class ImageError(ValueError):
    pass


@dataclass
class Image:
    """An image as kiln builds it: its config and its layers in order; the manifest and config bytes are computed
    from them (the raw bytes read are kept while nothing changed)."""
    config: ImageConfig
    layers: list[Layer] = field(default_factory=list)
    #: the manifest media type, which fixes the format (Docker schema 2 or OCI)
    media_type: str = mt.OCI_MANIFEST
    annotations: dict[str, str] = field(default_factory=dict)
    #: the config descriptor's media type; None means the format's default
    config_media_type: str | None = None
    #: the manifest bytes as read; reused while the image computes to the same manifest
    raw_manifest: bytes | None = field(default=None, repr=False)

    @classmethod
    def empty(cls, platform: Platform, fmt: str = mt.OCI, created: str = "1970-01-01T00:00:00Z") -> "Image":
        """`FROM scratch`."""
        return cls(ImageConfig.new(platform, created), [], mt.to_format(mt.OCI_MANIFEST, fmt))

    @classmethod
    def from_parts(cls, manifest: Manifest, config: ImageConfig, layers: list[Layer]) -> "Image":
        if config.digest != manifest.config.digest:
            raise ImageError(f"config {manifest.config.digest}: content hashes to {config.digest}")
        return cls(config, list(layers), manifest.media_type, dict(manifest.annotations),
                   manifest.config.media_type, manifest.raw)

    # ---- derived -----------------------------------------------------------------------------
    @property
    def format(self) -> str:
        return mt.format_of(self.media_type)

    def config_bytes(self) -> bytes:
        return self.config.to_bytes()

    def config_descriptor(self) -> Descriptor:
        data = self.config_bytes()
        media_type = self.config_media_type or mt.to_format(mt.OCI_CONFIG, self.format)
        return Descriptor(media_type, _digest.of_bytes(data), len(data))

    def manifest(self) -> Manifest:
        # annotations go into the manifest whatever its media type, as go-containerregistry's
        # mutate.Annotations (kaniko's --annotation) writes them
        return Manifest(self.media_type, self.config_descriptor(), tuple(l.descriptor for l in self.layers),
                        dict(self.annotations), raw=self.raw_manifest)

    def manifest_bytes(self) -> bytes:
        """Exactly the bytes whose sha256 is the image digest: what every sink writes."""
        return self.manifest().to_bytes()

    @property
    def digest(self) -> str:
        return _digest.of_bytes(self.manifest_bytes())

    def descriptor(self, platform: bool = False) -> Descriptor:
        data = self.manifest_bytes()
        return Descriptor(self.media_type, _digest.of_bytes(data), len(data),
                          platform=self.config.platform if platform else None)

    # ---- changing ----------------------------------------------------------------------------
    def append_layer(self, layer: Layer, history: HistoryEntry | None = None) -> None:
        """Add a layer on top: the manifest gets its descriptor, the config its diff_id and history."""
        if not mt.is_foreign(layer.media_type) and layer.media_type != mt.to_format(layer.media_type, self.format):
            layer = layer.with_media_type(mt.to_format(layer.media_type, self.format))
        self.layers.append(layer)
        self.config.append_layer(layer.diff_id, history)

    def append_history(self, entry: HistoryEntry) -> None:
        """A history entry for an instruction that made no layer (entry.empty_layer should be True)."""
        self.config.append_history(entry)

    def converted(self, fmt: str) -> "Image":
        """The same image in another format; layer and config bytes unchanged, media types mapped."""
        if fmt == self.format:
            return self
        return Image(
            self.config.copy(),
            [l.with_media_type(mt.to_format(l.media_type, fmt)) for l in self.layers],
            mt.to_format(self.media_type, fmt),
            dict(self.annotations),
            mt.to_format(self.config_media_type, fmt) if self.config_media_type else None,
        )

    def copy(self) -> "Image":
        return Image(self.config.copy(), list(self.layers), self.media_type, dict(self.annotations),
                     self.config_media_type, self.raw_manifest)

    def validate(self) -> None:
        """Check the config names one diff_id per layer, in order; history counts non-empty entries."""
        diff_ids = self.config.diff_ids
        if len(diff_ids) != len(self.layers):
            raise ImageError(f"image {self.digest}: config lists {len(diff_ids)} diff_ids but the manifest "
                             f"has {len(self.layers)} layers")
        for i, (layer, diff_id) in enumerate(zip(self.layers, diff_ids)):
            if layer.diff_id != diff_id:
                raise ImageError(f"image {self.digest}: layer {i} ({layer.digest}) has diff_id {layer.diff_id} "
                                 f"but the config says {diff_id}")
        history = self.config.history
        if history:
            non_empty = sum(1 for h in history if not h.empty_layer)
            if non_empty != len(self.layers):
                raise ImageError(f"image {self.digest}: history has {non_empty} non-empty entries for "
                                 f"{len(self.layers)} layers")

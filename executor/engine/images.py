"""Base images for the build loop: the base-image cache (`--cache-dir`) first, then the registry."""
from __future__ import annotations

import logging
import os
import shutil
from typing import TYPE_CHECKING, Any, Callable, Iterable

from executor.image import Image, Layer, Platform
from executor.registry import RegistryClient
from snapshot.errors import LayerFormatError

if TYPE_CHECKING:
    from executor.cache import BaseImageCache       # only with --cache-dir: loaded by executor.cache then

log = logging.getLogger(__name__)


class RegistryImages:
    """`executor.engine.protocols.ImageSource` over a registry client and an optional base-image cache.
    Layers that are not already files on disk are written to `blob_dir`."""

    def __init__(self, client: RegistryClient, blob_dir: str, base_cache: BaseImageCache | None = None):
        self.client = client
        self.blob_dir = blob_dir
        self.base_cache = base_cache

    def pull(self, name: str, platform: Platform) -> Image:
        cached = self.base_cache.pull(name, platform) if self.base_cache is not None else None
        return cached or self.client.pull(name, platform)

    def prefetch(self, layers: Iterable[Layer]) -> None:
        """Start downloading these layers now (a few at a time, in order): the extractions that follow
        read each one as its bytes arrive."""
        self.client.prefetch(layers)

    def extract(self, layer: Layer, apply: Callable[..., Any]) -> None:
        """Put one layer onto the root with `apply(blob, name=..., diff_id=...)` (the snapshotter's
        `extract`). A layer still in the registry is extracted while it downloads; its digest, size,
        compression and diff_id are checked when its last byte is in, and a mismatch raises the
        RegistryError naming the layer and the image (rather than whatever the extraction of wrong bytes
        ran into first)."""
        download = self.client.stream_layer(layer)
        if download is None:
            apply(self.blob_file(layer), name=layer.digest)
            return
        with download.open() as stream:
            try:
                stats = apply(stream, name=layer.digest, diff_id=True)
            except LayerFormatError as e:
                download.result()   # the bytes were wrong (or never came): that is the error to report
                # else they are the manifest's, and no layer (a gzip stream cut short): the image is broken
                detail = str(e)
                detail = detail[len(f"layer {layer.digest}: "):] if detail.startswith(f"layer {layer.digest}: ") \
                    else detail
                raise download.refuse(detail) from None
            except Exception:
                download.result()
                raise
        download.finish(stats.compression, stats.diff_id)

    def blob_file(self, layer: Layer) -> str:
        with layer.open_blob() as blob:
            path = getattr(blob, "name", None)
        if isinstance(path, str) and os.path.isfile(path):
            return path
        path = os.path.join(self.blob_dir, layer.digest.replace(":", "-"))
        os.makedirs(self.blob_dir, exist_ok=True)
        with layer.open_blob() as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        return path

"""Base images for the build loop: the base-image cache (`--cache-dir`) first, then the registry."""
from __future__ import annotations

import logging
import os
import shutil
from typing import TYPE_CHECKING

from executor.image import Image, Layer, Platform
from executor.registry import RegistryClient

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

"""The image model: descriptors, manifests, indexes, configs, layers, images. Knows nothing of HTTP."""
from . import compression, digest, mediatypes
from .config import Healthcheck, HistoryEntry, ImageConfig, timestamp
from .descriptor import Descriptor
from .image import Image, ImageError
from .index import Index, NoMatchingPlatform
from .layer import Layer, LayerError, verify_blob
from .manifest import Manifest
from .platform import Platform, host as host_platform

__all__ = [
    "compression", "digest", "mediatypes",
    "Descriptor", "Platform", "host_platform", "Manifest", "Index", "NoMatchingPlatform",
    "ImageConfig", "HistoryEntry", "timestamp", "Healthcheck", "Layer", "LayerError", "verify_blob", "Image", "ImageError",
]

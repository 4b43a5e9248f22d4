"""kiln's filesystem engine: extraction onto a root, the ignore list, the index, change detection,
layer writing and wiping. Knows nothing of Dockerfiles or of the image model.

The names below load their modules on first use, so `snapshot.paths` and `snapshot.compression` (which
RUN, the image model and COPY use too) do not pull in the whole engine and its native dependencies.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import LayerFormatError, SnapshotError, UnsafeEntryError
    from .extract import ExtractStats
    from .ignore import IgnoreList
    from .layer import LayerFile
    from .snapshotter import Snapshotter

_HOME = {"Snapshotter": "snapshotter", "IgnoreList": "ignore", "LayerFile": "layer", "ExtractStats": "extract",
         "SnapshotError": "errors", "LayerFormatError": "errors", "UnsafeEntryError": "errors"}

__all__ = ["Snapshotter", "IgnoreList", "LayerFile", "ExtractStats", "SnapshotError",
           "LayerFormatError", "UnsafeEntryError"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'snapshot' has no attribute {name!r}")
    value = getattr(import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value
    return value

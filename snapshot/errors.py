"""Errors raised by the filesystem engine. Messages name the layer, entry or path at fault."""
from __future__ import annotations


class SnapshotError(Exception):
    """Base class for every error of the snapshot package."""


class LayerFormatError(SnapshotError):
    """A layer blob is not a readable (optionally compressed) tar archive."""


class UnsafeEntryError(SnapshotError):
    """A layer entry would write outside the root or through something it must not follow."""


def entry_error(cls: type[SnapshotError], layer: str, entry: str, why: str) -> SnapshotError:
    return cls(f"layer {layer}: entry {entry!r}: {why}")

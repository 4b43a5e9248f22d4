"""kiln's filesystem engine: extraction onto a root, the ignore list, the index, change detection,
layer writing and wiping. Knows nothing of Dockerfiles or of the image model."""
from .errors import LayerFormatError, SnapshotError, UnsafeEntryError
from .extract import ExtractStats
from .ignore import IgnoreList
from .layer import LayerFile
from .snapshotter import Snapshotter

__all__ = ["Snapshotter", "IgnoreList", "LayerFile", "ExtractStats", "SnapshotError",
           "LayerFormatError", "UnsafeEntryError"]

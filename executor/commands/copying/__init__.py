"""The COPY/ADD machinery: what `COPY` and `ADD` copy, and how (see README.md)."""
from .errors import CopyError
from .files import CopyRequest, copy_into_root, select_sources

__all__ = ["CopyError", "CopyRequest", "copy_into_root", "select_sources"]

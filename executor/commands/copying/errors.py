"""The one error type of COPY/ADD file semantics; messages name the source or destination at fault."""

from __future__ import annotations


class CopyError(Exception):
    """A COPY/ADD that cannot be carried out (missing source, bad destination, download failure...)."""

"""Wiping the root between stages: everything goes except ignored paths and their parents."""
from __future__ import annotations

import logging
import os

from .ignore import IgnoreList
from .paths import remove_tree

log = logging.getLogger(__name__)


def wipe(root: str, ignore: IgnoreList) -> int:
    """Remove every entry under `root` that is not ignored and holds nothing ignored. Returns the
    number of paths removed. Symlinks are removed, never followed."""
    root = root.rstrip("/")
    if os.path.realpath(root or "/") == "/" and not ignore.paths:
        raise ValueError("refusing to wipe / with an empty ignore list (kiln's own files and "
                         "the mounts would go)")

    def keep(rel: str) -> bool:
        return ignore.covers(rel)

    removed = 0
    for name in os.listdir(root or "/"):
        rel = name
        if keep(rel):
            continue
        removed += len(remove_tree(root, rel, keep))
    log.debug("wiped %s: %d paths removed", root or "/", removed)
    return removed

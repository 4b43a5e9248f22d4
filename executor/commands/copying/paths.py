"""Paths inside a root (the image being built, or a source root) with symlinks followed WITHIN it.

Like containerd's ``fs.RootPath`` (which BuildKit uses for both ends of a copy): ``/`` and ``..`` never
leave the root, absolute link targets restart at the root, missing components are kept lexically so the
result can be created. The returned host path always lies under the root.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from executor.commands.copying.errors import CopyError
from snapshot.paths import RootPathError
from snapshot.paths import resolve_in_root as _resolve


def clean_image_path(path: str) -> str:
    """``path`` made absolute and clean, ``..`` clamped at ``/`` (Go ``filepath.Join("/", path)``)."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def resolve_in_root(root: str, path: str, follow_final: bool = True) -> str:
    """Host path of image path ``path`` in ``root``; symlinks resolved inside the root.

    With ``follow_final`` False the last component is left as it is (it may be a symlink).
    """
    try:
        return _resolve(root, path, follow_final)
    except RootPathError as e:
        raise CopyError(f"cannot use {clean_image_path(path)}: {e}") from None


def image_path(root: str, host_path: str) -> str:
    """The image path (``/a/b``) of a host path under ``root``."""
    rel = os.path.relpath(host_path, os.path.abspath(root))
    if rel == ".":
        return "/"
    if rel.startswith("../") or rel == "..":
        raise CopyError(f"internal error: {host_path} is outside the root {root}")
    return "/" + rel


def lstat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            return None
        raise


def dirname(path: str) -> str:
    return posixpath.dirname(path.rstrip("/")) or "/"

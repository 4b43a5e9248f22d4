"""Paths inside an image root: symlinks are followed as the command inside the root would see them.

An image's ``/etc/resolv.conf`` may be an absolute symlink (``/run/systemd/resolve/stub-resolv.conf``);
joined naively with the root it would point at the host. Every component is resolved here with ``/``
meaning the root and ``..`` never climbing above it.
"""

from __future__ import annotations

import os
import stat

MAX_SYMLINKS = 40


class RootPathError(Exception):
    """A path inside the root that cannot be resolved (symlink loop, non-directory parent)."""


def resolve_in_root(root: str, path: str, follow_final: bool = True) -> str:
    """The host path of ``path`` as seen from inside ``root`` (the final component need not exist).

    Missing intermediate components are kept as they are (joined lexically), so the result can be
    created with ``os.makedirs``. With ``follow_final`` False the last component is left as it is (it may
    be a symlink). Raises RootPathError for a symlink loop or a component that is not a directory.
    """
    root = os.path.abspath(root)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []  # components below root, all existing non-symlinks (or missing)
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        if not parts and not follow_final:
            resolved.append(part)
            break
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        except NotADirectoryError:
            raise RootPathError(f'"/{"/".join(resolved)}" is not a directory') from None
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise RootPathError(f"too many levels of symbolic links resolving {path} in {root}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved) if resolved else root

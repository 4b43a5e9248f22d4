"""The ignore list: paths inside the root that extraction, wiping and snapshots never touch.

Built from kiln's own directory, every mount point below the root (from /proc/self/mountinfo: in
production /proc, /sys, /dev, /etc/hosts, /etc/resolv.conf, secrets...) and `--ignore-path` entries.
/var/run is *not* ignored as a whole (kaniko #506); only what is mounted there is.
"""
from __future__ import annotations

import logging
import os
from typing import Iterable

from .paths import clean

log = logging.getLogger(__name__)


def _unescape_mountinfo(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    if "\\" not in field:
        return field
    out = []
    i = 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points (host paths) listed in a mountinfo file."""
    points = []
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ")
            if len(fields) > 4:
                points.append(_unescape_mountinfo(fields[4]))
    return points


class IgnoreList:
    """A set of relative image paths; a path is ignored when it or one of its parents is listed."""

    __slots__ = ("root", "paths", "_ancestors", "_dir_cache")

    def __init__(self, root: str, paths: Iterable[str] = ()) -> None:
        self.root = root
        self.paths: frozenset[str] = frozenset(p for p in (clean(x) for x in paths) if p)
        anc: set[str] = set()
        for p in self.paths:
            parent = p.rpartition("/")[0]
            while parent:
                anc.add(parent)
                parent = parent.rpartition("/")[0]
        anc.add("")
        self._ancestors: frozenset[str] = frozenset(anc)
        self._dir_cache: dict[str, bool] = {}

    @classmethod
    def from_system(cls, root: str, kiln_dir: str | None = "/kaniko", extra: Iterable[str] = (),
                    mountinfo: str = "/proc/self/mountinfo") -> "IgnoreList":
        """Mount points under `root`, `kiln_dir` (a host path; ignored when it lies under the root)
        and `extra` image paths."""
        real_root = os.path.realpath(root)
        paths: list[str] = []
        for point in mount_points(mountinfo):
            rel = _under(real_root, point)
            if rel:  # the root itself being a mount point is normal and ignores nothing
                paths.append(rel)
        if kiln_dir:
            rel = _under(real_root, os.path.realpath(kiln_dir))
            if rel:
                paths.append(rel)
        paths.extend(extra)
        ignore = cls(root, paths)
        log.debug("ignore list for %s: %s", root, sorted(ignore.paths))
        return ignore

    def __contains__(self, rel: str) -> bool:
        """True when exactly `rel` is listed (callers that walk top-down need nothing more)."""
        return rel in self.paths

    def covers(self, rel: str) -> bool:
        """True when `rel` or one of its parents is listed."""
        if not self.paths:
            return False
        if rel in self.paths:
            return True
        parent = rel.rpartition("/")[0]
        hit = self._dir_cache.get(parent)
        if hit is not None:
            return hit
        # climb to the first listed or already-known ancestor, then remember the answer
        climbed: list[str] = []
        p = parent
        hit = False
        while p:
            if p in self.paths:
                hit = True
                break
            known = self._dir_cache.get(p)
            if known is not None:
                hit = known
                break
            climbed.append(p)
            p = p.rpartition("/")[0]
        for c in climbed:
            self._dir_cache[c] = hit
        return hit

    def holds_ignored(self, rel: str) -> bool:
        """True when an ignored path lies strictly below `rel` (wiping keeps such directories)."""
        return rel in self._ancestors

    @property
    def ancestors(self) -> frozenset[str]:
        """The paths `holds_ignored` is true of (for loops that test many paths)."""
        return self._ancestors

    def image_paths(self) -> list[str]:
        return sorted("/" + p for p in self.paths)


def _under(root: str, path: str) -> str | None:
    if root == "/":
        return path.strip("/") or None
    if path == root:
        return ""
    if path.startswith(root + "/"):
        return path[len(root) + 1:]
    return None

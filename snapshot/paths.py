"""Path arithmetic inside a root: cleaning tar names, scoped symlink resolution, safe removal.

Paths handed around inside the engine are *relative image paths*: no leading slash, no `.` or `..`
components, "" for the root itself ("usr/bin/env" is /usr/bin/env in the image). Nothing here ever
follows a symlink out of the root: parent components are resolved one at a time with lstat, a
symlink met on the way is followed *inside* the root (an absolute target restarts at the root, `..`
stops at the root), the way containerd and docker's chrooted unpacking treat them.
"""
from __future__ import annotations

import os
import stat
from typing import Callable

from .errors import SnapshotError

MAX_SYMLINK_HOPS = 40


class PathEscapeError(SnapshotError):
    """A name that leaves the root (`..` above it)."""


def clean(name: str) -> str:
    """Relative image path of a tar name or image path; raises PathEscapeError for `..` above the root.

    Leading slashes and `./` are dropped (absolute names are taken relative to the root, as docker
    and GNU tar do); `a/../b` becomes `b`.
    """
    rest = name[2:] if name.startswith("./") else name     # how `tar -C dir .` names its members
    if rest and rest[0] not in "/." and "//" not in rest and "/." not in rest:
        return rest[:-1] if rest[-1] == "/" else rest
    out: list[str] = []
    for comp in name.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not out:
                raise PathEscapeError(f"{name!r} leaves the root through '..'")
            out.pop()
        else:
            out.append(comp)
    return "/".join(out)


def join(root: str, rel: str) -> str:
    """Host path of relative image path `rel` under `root` (root given without trailing slash)."""
    return f"{root}/{rel}" if rel else (root or "/")


def split(rel: str) -> tuple[str, str]:
    parent, _, base = rel.rpartition("/")
    return parent, base


class RootPathError(SnapshotError):
    """A path inside the root that cannot be resolved (symlink loop, non-directory parent)."""


def resolve_components(root: str, path: str, follow_final: bool = True,
                       known: Callable[[str], bool] | None = None) -> list[str]:
    """The real components of image path `path` under `root`, as a process chrooted there would see them:
    every symlink on the way is followed inside the root (an absolute target restarts at the root, `..`
    stops at the root). Missing components are kept as they are (joined lexically), so the result can be
    created in order. With `follow_final` False the last component is left as it is (it may be a symlink).
    `known(prefix)` may say a relative prefix is a real directory already (no lstat then).
    Raises RootPathError for a symlink loop or a component that is not a directory."""
    root = root.rstrip("/")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    parts.reverse()                 # pop() yields the next component
    resolved: list[str] = []        # components below root, all existing non-symlinks (or missing)
    hops = 0
    while parts:
        part = parts.pop()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        if not parts and not follow_final:
            resolved.append(part)
            break
        candidate = "/".join((*resolved, part))
        if known is not None and known(candidate):
            resolved.append(part)
            continue
        try:
            st = os.lstat(f"{root}/{candidate}")
        except FileNotFoundError:
            resolved.append(part)
            continue
        except NotADirectoryError:
            raise RootPathError(f'"/{"/".join(resolved)}" is not a directory') from None
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise RootPathError(f"too many levels of symbolic links resolving {path} in {root or '/'}")
            target = os.readlink(f"{root}/{candidate}")
            if target.startswith("/"):
                resolved = []
            parts.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
            continue
        resolved.append(part)
    return resolved


def resolve_in_root(root: str, path: str, follow_final: bool = True) -> str:
    """The host path of image path `path` as seen from inside `root` (see `resolve_components`); the
    final component need not exist."""
    resolved = resolve_components(root, path, follow_final)
    return os.path.join(root, *resolved) if resolved else root


class Resolver:
    """Resolves directory paths under a root without ever leaving it; caches what it has checked.

    The cache is only valid while nobody else changes the tree: callers `invalidate()` it whenever
    they remove or replace a directory or a symlink.
    """

    def __init__(self, root: str, on_create: Callable[[str], None] | None = None) -> None:
        self.root = root.rstrip("/")
        self._cache: dict[str, str] = {"": ""}
        self._on_create = on_create

    def invalidate(self) -> None:
        self._cache.clear()     # in place: `cache` handed out stays the one in use
        self._cache[""] = ""

    @property
    def cache(self) -> dict[str, str]:
        """Directory path -> its real path, for what `directory` has resolved (read it, never write it): a
        hit is what `directory` would return. Cleared in place by `invalidate`."""
        return self._cache

    def _known(self, rel: str) -> bool:
        return self._cache.get(rel) == rel

    def directory(self, rel: str, create: bool) -> str | None:
        """Real relative path of directory `rel`; creates missing components (mode 0755, owned by
        the caller) when `create`, else returns None when one is missing. Raises SnapshotError when
        a component is a non-directory, or symlinks loop."""
        hit = self._cache.get(rel)
        if hit is not None:
            return hit
        try:
            parts = resolve_components(self.root, rel, known=self._known)
        except RootPathError as e:
            raise RootPathError(f"{e} (resolving /{rel})") from None
        cur = ""
        for comp in parts:
            cand = f"{cur}/{comp}" if cur else comp
            if not self._known(cand):
                host = f"{self.root}/{cand}"
                try:
                    st = os.lstat(host)
                except FileNotFoundError:
                    if not create:
                        return None
                    os.mkdir(host, 0o755)
                    os.chmod(host, 0o755)  # whatever the umask
                    if self._on_create:
                        self._on_create(cand)
                else:
                    if not stat.S_ISDIR(st.st_mode):
                        raise RootPathError(f"/{cand} is not a directory (needed as a parent of /{rel})")
                self._cache[cand] = cand
            cur = cand
        self._cache[rel] = cur
        return cur


def remove_tree(root: str, rel: str, keep: Callable[[str], bool]) -> list[str]:
    """Remove `rel` (file, link, or directory with contents) without following symlinks, except
    paths for which `keep(rel)` is true (and the directories holding them). Returns the relative
    paths removed, parents after children."""
    host = join(root, rel)
    removed: list[str] = []
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        return removed
    if not rel:
        raise SnapshotError("refusing to remove the root itself")
    if keep(rel):
        return removed
    if stat.S_ISDIR(st.st_mode):
        _remove_dir(root, rel, keep, removed)
    else:
        os.unlink(host)
        removed.append(rel)
    return removed


def _remove_dir(root: str, rel: str, keep: Callable[[str], bool], removed: list[str]) -> bool:
    """Empty and remove directory `rel` (iteratively: trees can be deeper than Python's recursion
    limit); False when something kept stays inside."""
    # post-order walk: (dir, listed?) pairs; a directory is removed once its children are
    holds_kept: set[str] = set()
    stack: list[tuple[str, bool]] = [(rel, False)]
    while stack:
        d, listed = stack.pop()
        host = join(root, d)
        if listed:
            if d in holds_kept or not d:
                parent = d.rpartition("/")[0]
                if d != rel:
                    holds_kept.add(parent)
                continue
            os.rmdir(host)
            removed.append(d)
            continue
        stack.append((d, True))
        with os.scandir(host) as it:
            entries = list(it)
        for e in entries:
            child = f"{d}/{e.name}" if d else e.name
            if keep(child):
                holds_kept.add(d)
                continue
            if e.is_dir(follow_symlinks=False):
                stack.append((child, False))
            else:
                os.unlink(e.path)
                removed.append(child)
    return rel not in holds_kept

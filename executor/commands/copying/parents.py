"""``COPY --parents``: sources keep their directories below a pivot, as BuildKit (Dockerfile 1.7+).

dockerfile2llb splits each source at ``/./``: the part before is the pivot (``/`` when there is none),
the part after an include pattern (patternmatcher syntax: ``*``, ``?``, ``[...]``, ``**``) relative to
it. The pivot directory is copied into the destination with only matching entries (a matching directory
comes whole); directories on the way to a match are recreated with the source's metadata (fsutil's
delayed parent creation). Without wildcards the path must exist. --exclude applies to paths below the
pivot.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator

from executor.commands.copying.errors import CopyError
from executor.commands.copying.match import go_match, has_wildcards
from executor.commands.copying.paths import clean_image_path, lstat_or_none, resolve_in_root
from executor.commands.copying.tree import (CopyState, copy_entry, copy_file_info, dir_target, is_visible,
                                        source_rel)


def split_pivot(source: str) -> tuple[str, str]:
    """(pivot image path, include pattern relative to it) of a --parents source."""
    before, sep, after = source.partition("/./")
    if not sep:
        return "/", clean_image_path(source).lstrip("/")
    return clean_image_path(before or "/"), clean_image_path(after).lstrip("/")


def _may_match_below(pattern_parts: list[str], rel_parts: list[str]) -> bool:
    """Could something below the directory ``rel_parts`` match? (literal components must agree)."""
    for i, comp in enumerate(rel_parts):
        if i >= len(pattern_parts):
            return False
        pc = pattern_parts[i]
        if pc == "**" or "**" in pc:
            return True
        if has_wildcards(pc):
            if not go_match(pc, comp):
                return False
        elif pc.replace("\\", "") != comp:
            return False
    return True


def _walk(state: CopyState, host_dir: str, rel_dir: str, pattern_parts: list[str],
          included: Callable[[str], bool], excluded: Callable[[str], bool] | None) -> Iterator[tuple[str, str]]:
    try:
        names = sorted(os.listdir(host_dir))
    except OSError as exc:
        raise CopyError(f"cannot read source directory {rel_dir or '/'}: {exc.strerror}") from None
    for name in names:
        host = os.path.join(host_dir, name)
        rel = f"{rel_dir}/{name}" if rel_dir else name
        if not is_visible(state, host, source_rel(state, host)):
            continue
        if excluded is not None and excluded(rel):
            continue
        if included(rel):
            yield rel, host
            continue
        st = os.lstat(host)
        if stat.S_ISDIR(st.st_mode) and _may_match_below(pattern_parts, rel.split("/")):
            yield from _walk(state, host, rel, pattern_parts, included, excluded)


def _ensure_parents(state: CopyState, pivot_host: str, dest_host: str, rel: str) -> str:
    """Create (with the source directories' metadata) the directories of ``rel``'s parent below dest;
    returns the host directory that will hold the entry."""
    current_dst, current_src = dest_host, pivot_host
    parent = os.path.dirname(rel)
    for comp in parent.split("/") if parent else []:
        current_src = os.path.join(current_src, comp)
        target = os.path.join(current_dst, comp)
        target_st = lstat_or_none(target)
        existing = dir_target(state, target, target_st)
        if existing is None:
            st = os.lstat(current_src)
            os.mkdir(target, 0o700)
            copy_file_info(state, st, current_src, target)
            state.record(target)
            existing = target
        current_dst = existing
    return current_dst


def copy_with_parents(state: CopyState, source_root: str, written: str, dest_host: str,
                      excluded: Callable[[str], bool] | None, command: str) -> int:
    """Copy one --parents source into the existing directory ``dest_host``; returns the match count."""
    from executor.dockerfile.dockerignore import DockerIgnore  # pattern rules shared with .dockerignore

    pivot, pattern = split_pivot(written)
    pivot_host = resolve_in_root(source_root, pivot, follow_final=True)
    pivot_st = lstat_or_none(pivot_host)
    if pivot_st is None or not stat.S_ISDIR(pivot_st.st_mode):
        raise CopyError(f'{command} --parents failed: "{pivot}" (pivot of {written!r}) is not a directory '
                        "in the source")
    if not pattern:
        pattern = "**"
    matcher = DockerIgnore([pattern])
    matches = list(_walk(state, pivot_host, "", pattern.split("/"), matcher.matches, excluded))
    if not matches and not has_wildcards(pivot) and not has_wildcards(pattern):
        raise CopyError(f'{command} --parents failed: "{clean_image_path(pivot + "/" + pattern)}": '
                        f"not found (source {written!r})")
    for rel, host in matches:
        holder = _ensure_parents(state, pivot_host, dest_host, rel)
        followed = host
        st = os.lstat(host)
        if stat.S_ISLNK(st.st_mode) and rel == pattern:  # an exact source path is followed, as without --parents
            followed = resolve_in_root(source_root, clean_image_path(pivot + "/" + rel), follow_final=True)
            if lstat_or_none(followed) is None:
                raise CopyError(f'{command} --parents failed: "{rel}" is a symlink to something missing')
        copy_entry(state, followed, source_rel(state, followed), os.path.join(holder, os.path.basename(rel)),
                   True, rel)
    return len(matches)

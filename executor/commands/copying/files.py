"""The file semantics of COPY and ADD: sources, destination, and what lands in the image root.

Behaviour follows BuildKit (dockerfile2llb ``dispatchCopy`` + fsutil ``copy.Copy``) unless stated:

* sources are clean paths inside ``source_root`` (``../x`` is clamped to ``/x``, trailing ``/`` ignored);
  a component with an unescaped ``*``, ``?`` or ``[`` starts a Go ``filepath.Match`` pattern matched
  against paths below the part before it (a matching directory is taken whole);
* a source that is a symlink is followed WITHIN the source root (context or stage), keeping the link's
  own name at the destination; links inside a copied directory stay links;
* a directory copies its contents; a file goes to ``dest/`` or into an existing directory ``dest``,
  otherwise it becomes ``dest``; more than one resolved source needs a ``/``-ending (or existing
  directory) dest, with classic docker's message; nothing matched at all is an error naming the patterns;
* the destination is resolved inside ``root``: symlinks on the way are followed within it;
* ADD: URLs are downloaded (mode 0600, Last-Modified) and not extracted unless ``unpack`` is True;
  local archives are extracted into the destination directory unless ``unpack`` is False (see
  ``archive``); git repository sources are refused with a message (not supported yet);
* --exclude patterns (.dockerignore syntax) drop wildcard matches and entries below each source;
  --parents keeps each source's path below a ``/./`` pivot (see ``parents``).

Where docker's builders disagree, kiln takes BuildKit's side except: several sources into a dest
without ``/`` are refused (classic docker/kaniko) unless it is an existing directory (kaniko); a
wildcard that matches nothing is fine only when another source matched (classic docker/kaniko, BuildKit
silently copies nothing); inside a directory copy, a symlink to a directory in the image is merged
through (kaniko; BuildKit fails, classic docker replaces the link).
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import requests

from executor.commands.copying.archive import extract_archive, is_archive
from executor.commands.copying.url import UNNAMED, fetch_url, is_git_source, is_url
from executor.commands.copying.chmod import ChmodError, ChmodSpec, parse_chmod
from executor.commands.copying.errors import CopyError
from executor.commands.copying.match import go_match, has_wildcards
from executor.commands.copying.parents import copy_with_parents
from executor.commands.copying.paths import (clean_image_path, dirname, lstat_or_none,
                                        resolve_in_root)
from executor.commands.copying.tree import (CopyState, copy_entry, is_visible, mkdir_all,
                                        source_rel)

__all__ = ["CopyRequest", "CopyError", "copy_into_root", "fetch_url", "parse_chmod", "ChmodError"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CopyRequest:
    """One COPY or ADD as the copy machinery takes it: sources and destination after expansion, where they are read
    from and written to, and the instruction's flags."""
    sources: list[str]          # as written after expansion, relative to source_root (wildcards allowed)
    dest: str                   # as written after expansion; relative dests are relative to workdir
    source_root: str            # the build context dir, or a directory holding another stage's/image's root
    root: str                   # the image root being built ("/" in production)
    workdir: str = "/"          # the current WORKDIR (inside the image)
    chown: tuple[int, int] | None = None   # already resolved uid/gid
    chmod: int | str | None = None          # octal int, or the flag's text (octal or symbolic)
    is_add: bool = False        # ADD: local tar archives auto-extracted, URLs downloaded
    # .dockerignore for the context (relpath -> excluded), e.g. ``DockerIgnore.matches``; when the
    # matcher also offers ``may_reinclude_under`` it is used to skip wholly excluded directories
    excluded: Callable[[str], bool] | None = None
    from_context: bool = True   # False for --from: no dockerignore, owners kept
    checksum: str | None = None  # ADD --checksum for a URL source ("sha256:<hex>")
    excludes: tuple[str, ...] | list[str] = ()  # --exclude patterns (paths below each source)
    parents: bool = False        # COPY --parents (a "/./" in a source marks the pivot)
    unpack: bool | None = None   # ADD --unpack; None: local archives unpacked (ADD), URLs not
    session: requests.Session | None = None  # for ADD of URLs; a fresh one when None
    work_dir: str | None = None  # kiln's scratch space for downloads (None: the system's temp dir)

    @property
    def command(self) -> str:
        return "ADD" if self.is_add else "COPY"


@dataclass(frozen=True)
class _Source:
    """One resolved source of a COPY/ADD: as written (for messages), the name it takes in a directory destination,
    its host path, or a URL."""
    written: str     # the source as written (for messages)
    name: str        # base name it takes at a directory destination
    host: str        # the host path, symlinks followed within the source root
    is_url: bool = False


def _dest_image_path(req: CopyRequest) -> tuple[str, bool]:
    """(clean absolute image path of the dest, whether it was written as a directory)."""
    dest = req.dest
    dir_like = dest in ("", ".") or dest.endswith("/") or dest.endswith("/.")
    if not dest.startswith("/"):
        dest = f"{req.workdir.rstrip('/')}/{dest}"
    return clean_image_path(dest), dir_like


def _split_pattern(path: str) -> tuple[str, str]:
    """Split a clean image path into the literal leading part and the pattern part (may be empty)."""
    parts = path.strip("/").split("/") if path != "/" else []
    for i, part in enumerate(parts):
        if has_wildcards(part):
            return "/" + "/".join(parts[:i]), "/".join(parts[i:])
    return path, ""


def _walk_matches(state: CopyState, base_host: str, base_rel: str, pattern: str) -> list[tuple[str, str]]:
    """(relative match, host path) below ``base_host`` whose path matches ``pattern``; matching
    directories are not descended, symlinks never are (filepath.Walk in BuildKit)."""
    max_depth = pattern.count("/") + pattern.count("[") + 1
    found: list[tuple[str, str]] = []

    def walk(host_dir: str, rel_dir: str, depth: int) -> None:
        try:
            names = sorted(os.listdir(host_dir))
        except OSError:
            return
        for name in names:
            host = os.path.join(host_dir, name)
            rel = f"{rel_dir}/{name}" if rel_dir else name
            ctx_rel = f"{base_rel}/{rel}" if base_rel else rel
            if not is_visible(state, host, ctx_rel):
                continue
            st = os.lstat(host)
            if go_match(pattern, rel):
                found.append((rel, host))
                continue
            if stat.S_ISDIR(st.st_mode) and depth < max_depth:
                walk(host, rel, depth + 1)

    st = lstat_or_none(base_host)
    if st is not None and stat.S_ISDIR(st.st_mode):
        walk(base_host, "", 1)
    return found


def _follow_source(req: CopyRequest, state: CopyState, image_path: str, written: str) -> str:
    host = resolve_in_root(req.source_root, image_path, follow_final=True)
    where = "the build context" if req.from_context else f"the source root {req.source_root}"
    unresolved = resolve_in_root(req.source_root, image_path, follow_final=False)
    if (lstat_or_none(host) is None
            or not is_visible(state, unresolved, source_rel(state, unresolved))
            or not is_visible(state, host, source_rel(state, host))):
        hint = " (or excluded by .dockerignore)" if state.excluded is not None else ""
        if host != unresolved:
            raise CopyError(f'{req.command} failed: "{image_path}" (source {written!r}) is a symlink to '
                            f'"/{source_rel(state, host)}", which is not found in {where}{hint}')
        raise CopyError(f'{req.command} failed: "{image_path}": not found in {where}{hint} '
                        f"(source {written!r})")
    return host


def _exclude_matcher(excludes: tuple[str, ...] | list[str]) -> Callable[[str], bool] | None:
    if not excludes:
        return None
    from executor.dockerfile.dockerignore import DockerIgnore, DockerIgnoreError

    try:
        return DockerIgnore(list(excludes), source="--exclude").matches
    except DockerIgnoreError as exc:
        raise CopyError(f"invalid --exclude pattern: {exc}") from None


def _resolve_local(req: CopyRequest, state: CopyState, written: str) -> list[_Source]:
    path = clean_image_path(written)
    literal, pattern = _split_pattern(path)
    if not pattern:
        host = _follow_source(req, state, path, written)
        name = os.path.basename(path) or "/"
        return [_Source(written, name, host)]
    base_host = resolve_in_root(req.source_root, literal, follow_final=True)
    matches = _walk_matches(state, base_host, source_rel(state, base_host), pattern)
    out = []
    for rel, _ in matches:
        if state.copy_excluded is not None and state.copy_excluded(rel):
            continue  # --exclude also drops what the source pattern matched
        image = f"{literal.rstrip('/')}/{rel}"
        out.append(_Source(written, os.path.basename(rel), _follow_source(req, state, image, written)))
    if not out:
        log.warning("%s: %r matches no file in the source", req.command, written)
    return out


def select_sources(source_root: str, written: str, excluded: Callable[[str], bool] | None = None,
                   from_context: bool = True) -> list[tuple[str, str]]:
    """(name at the destination, host path) of what one local source, as written, makes COPY read below
    `source_root`: wildcards matched, symlinked sources followed inside the root, .dockerignore applied.
    Empty when it selects nothing. The layer cache keys its COPY steps on exactly this selection."""
    req = CopyRequest(sources=[written], dest="/", source_root=source_root, root=source_root,
                      excluded=excluded, from_context=from_context)
    state = CopyState(root=source_root, source_root=source_root, owner=None, dir_owner=None, chmod=None,
                      excluded=excluded if from_context else None,
                      may_reinclude=_reinclude_hint(excluded) if from_context else None)
    try:
        return [(src.name, src.host) for src in _resolve_local(req, state, written)]
    except CopyError:
        return []


def _place_one(req: CopyRequest, state: CopyState, src: _Source, dest: str, dir_like: bool) -> None:
    """One resolved source to the destination: fsutil's Copy + prepareTargetDir."""
    ensure = dest if dir_like else dirname(dest)
    mkdir_all(state, resolve_in_root(req.root, ensure, follow_final=True))
    dest_host = resolve_in_root(req.root, dest, follow_final=True)
    src_st = os.lstat(src.host)
    src_is_dir = stat.S_ISDIR(src_st.st_mode)
    dest_st = lstat_or_none(dest_host)
    dest_is_dir = dest_st is not None and stat.S_ISDIR(dest_st.st_mode)
    if not src_is_dir and dest_is_dir:
        if src.is_url and src.name == UNNAMED:
            raise CopyError(f"ADD {src.written}: cannot determine a file name from the URL or its "
                            f"Content-Disposition; give a destination file name instead of {req.dest!r}")
        dest_host = os.path.join(dest_host, src.name)
    parent = dest_host if (src_is_dir and dest_st is None) else os.path.dirname(dest_host)
    mkdir_all(state, parent)
    copy_entry(state, src.host, source_rel(state, src.host), dest_host, False)


def _extract_one(req: CopyRequest, state: CopyState, src: _Source, dest: str) -> None:
    dest_host = resolve_in_root(req.root, dest, follow_final=True)
    mkdir_all(state, dest_host, 0o755)  # BuildKit's unpack: 0755 whatever --chmod says
    state.record(dest_host)
    extract_archive(src.host, src.written, dest_host, req.chown, state.record)


def _reinclude_hint(excluded: Callable[[str], bool] | None) -> Callable[[str], bool] | None:
    """``may_reinclude_under`` of the matcher behind ``excluded`` (e.g. ``DockerIgnore.matches``), so
    that wholly excluded directories (node_modules) are not walked; None when it cannot be known."""
    if excluded is None:
        return None
    for owner in (excluded, getattr(excluded, "__self__", None)):
        hint = getattr(owner, "may_reinclude_under", None)
        if callable(hint):
            return hint
    return None


def copy_into_root(req: CopyRequest) -> list[str]:
    """Carry out the file part of a COPY/ADD; returns every image path written or created, parents
    included, in the order they were touched (for ``Snapshotter.snapshot_paths``).

    Every failure is a CopyError naming the source or destination at fault."""
    try:
        return _copy_into_root(req)
    except CopyError:
        raise
    except OSError as exc:
        where = exc.filename or ""
        for base, label in ((req.root, "image"), (req.source_root, "source")):
            rel = os.path.relpath(where, os.path.abspath(base)) if where else ".."
            if not rel.startswith(".."):
                where = f"{label} path /{'' if rel == '.' else rel}"
                break
        raise CopyError(f"{req.command} failed: {exc.strerror or exc}: {where}".rstrip(": ")) from exc


def _copy_into_root(req: CopyRequest) -> list[str]:
    if not req.sources:
        raise CopyError(f"{req.command} needs at least one source and a destination")
    try:
        chmod: ChmodSpec | None = parse_chmod(req.chmod) if req.chmod is not None else None
    except ChmodError as exc:
        raise CopyError(f"{req.command}: {exc}") from None
    if req.checksum is not None and (not req.is_add or len(req.sources) != 1 or not is_url(req.sources[0])):
        raise CopyError("--checksum needs ADD with exactly one http(s) source")
    state = CopyState(
        root=req.root, source_root=req.source_root,
        owner=req.chown if req.chown is not None else ((0, 0) if req.from_context else None),
        dir_owner=req.chown, chmod=chmod, sockets_as_files=req.from_context,
        excluded=req.excluded if req.from_context else None,
        may_reinclude=_reinclude_hint(req.excluded) if req.from_context else None,
        copy_excluded=_exclude_matcher(req.excludes),
    )
    if req.parents:
        return _copy_parents(req, state)
    dest, dir_like = _dest_image_path(req)

    # URL downloads go to kiln's own work directory: in production the root is "/", and its /tmp is
    # part of the image being built (an emptied stage root may not even have one).
    with tempfile.TemporaryDirectory(prefix="kiln-add-", dir=req.work_dir) as download_dir:
        sources: list[_Source] = []
        for written in req.sources:
            if is_git_source(written):
                raise CopyError(f"{req.command} {written}: git repositories as sources are not supported yet "
                                "(clone in a RUN step or a previous stage, then COPY --from)")
            if is_url(written):
                if not req.is_add:
                    raise CopyError(f"COPY {written}: source can't be a URL for COPY (use ADD)")
                sub = tempfile.mkdtemp(dir=download_dir)
                path, _ = fetch_url(written, sub, req.session, req.checksum)
                sources.append(_Source(written, os.path.basename(path), path, is_url=True))
            else:
                sources.extend(_resolve_local(req, state, written))
        if not sources and all(has_wildcards(s) for s in req.sources):
            # BuildKit's COPY allows an empty wildcard (dispatchCopy's AllowEmptyWildcard): nothing is
            # copied and nothing is created. kaniko and the classic builder refuse it; docker build does not.
            log.warning("%s %s: the wildcard matches nothing; nothing copied", req.command, " ".join(req.sources))
            return state.written
        if not sources:
            raise CopyError(f"{req.command} failed: no source files were specified "
                            f"(nothing matches {', '.join(repr(s) for s in req.sources)})")
        if len(sources) > 1 and not dir_like:
            existing = lstat_or_none(resolve_in_root(req.root, dest, follow_final=True))
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                raise CopyError(f"When using {req.command} with more than one source file, the destination "
                                f"must be a directory and end with a / (destination {req.dest!r})")
        current = None
        for src in sources:
            if src.written != current:
                # BuildKit copies each source as written (a wildcard is one) with a copier of its own:
                # hard links are kept within a source, not across two of them.
                current, state.inodes = src.written, {}
            if src.is_url and not (req.unpack is True and is_archive(src.host)):
                owner, state.owner = state.owner, (req.chown if req.chown is not None else (0, 0))
                try:
                    _place_one(req, state, src, dest, dir_like)
                finally:
                    state.owner = owner
            elif (req.unpack is True or (req.unpack is None and req.is_add and not src.is_url)) \
                    and is_archive(src.host):
                _extract_one(req, state, src, dest)
            else:
                _place_one(req, state, src, dest, dir_like)
    return state.written


def _copy_parents(req: CopyRequest, state: CopyState) -> list[str]:
    """COPY --parents: each source copied below the destination directory with its own path."""
    if any(is_url(s) for s in req.sources):
        raise CopyError(f"{req.command} --parents: URL sources have no parents to keep")
    dest, _ = _dest_image_path(req)
    dest_host = resolve_in_root(req.root, dest, follow_final=True)
    mkdir_all(state, dest_host)
    total = 0
    for written in req.sources:
        total += copy_with_parents(state, req.source_root, written, dest_host, state.copy_excluded,
                                   req.command)
    if total == 0:
        raise CopyError(f"{req.command} failed: no source files were specified "
                        f"(nothing matches {', '.join(repr(s) for s in req.sources)})")
    return state.written

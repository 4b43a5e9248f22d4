"""Copying one resolved source (file, directory tree, link, node) onto the image root, as fsutil's copy.

Metadata rules (BuildKit = tonistiigi/fsutil ``copy``): owner becomes the forced owner (``--chown``, or
0:0 for the build context) or stays the source's (``COPY --from``); mode is the source's, special bits
included, unless ``--chmod``; atime/mtime are the source's (nanoseconds, symlinks too); xattrs are copied
after chown (which would drop ``security.capability``); hard links within one COPY stay hard links.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from executor.commands.copying.chmod import ChmodSpec
from executor.commands.copying.errors import CopyError
from executor.commands.copying.paths import image_path, lstat_or_none, resolve_in_root
from snapshot import privilege

log = logging.getLogger(__name__)


@dataclass
class CopyState:
    """What one COPY/ADD shares across its sources: where, how, and what was written."""

    root: str
    source_root: str
    owner: tuple[int, int] | None              # forced owner of copied entries; None keeps the source's
    dir_owner: tuple[int, int] | None          # owner of directories the copy creates (--chown only)
    chmod: ChmodSpec | None
    sockets_as_files: bool = False             # the build context sends sockets as empty regular files
    excluded: Callable[[str], bool] | None = None
    may_reinclude: Callable[[str], bool] | None = None  # prunes the walk of excluded directories
    copy_excluded: Callable[[str], bool] | None = None  # --exclude, on paths relative to each source
    inodes: dict[tuple[int, int], str] = field(default_factory=dict)
    # directories written by this copy: never walked as sources (the context may lie inside the root
    # in production, so ``COPY . sub/`` must not copy ``sub`` into itself)
    dest_dirs: set[tuple[int, int]] = field(default_factory=set)
    written: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)

    def record(self, host_path: str) -> None:
        path = image_path(self.root, host_path)
        if path not in self._seen:
            self._seen.add(path)
            self.written.append(path)

    def where(self, host_path: str) -> str:
        return image_path(self.root, host_path)


# ---------------------------------------------------------------- source visibility (.dockerignore)

def source_rel(state: CopyState, host_path: str) -> str:
    """Path of a source entry relative to the source root, ``""`` for the root itself."""
    rel = os.path.relpath(host_path, os.path.abspath(state.source_root))
    return "" if rel == "." else rel


def is_visible(state: CopyState, host_path: str, rel: str) -> bool:
    """An entry exists for COPY unless .dockerignore excludes it (an excluded directory still exists
    when something below it is re-included by an exception pattern)."""
    if state.excluded is None or rel == "":
        return True
    if not state.excluded(rel):
        return True
    st = lstat_or_none(host_path)
    return st is not None and stat.S_ISDIR(st.st_mode) and _has_visible_below(state, host_path, rel)


def _has_visible_below(state: CopyState, host_path: str, rel: str) -> bool:
    assert state.excluded is not None
    if state.may_reinclude is not None and not state.may_reinclude(rel):
        return False
    try:
        entries = list(os.scandir(host_path))
    except OSError:
        return False
    for entry in entries:
        child_rel = f"{rel}/{entry.name}"
        if not state.excluded(child_rel):
            return True
        if entry.is_dir(follow_symlinks=False) and _has_visible_below(state, entry.path, child_rel):
            return True
    return False


def visible_children(state: CopyState, host_dir: str, rel: str) -> list[str]:
    try:
        names = sorted(os.listdir(host_dir))
    except OSError as exc:
        raise CopyError(f"cannot read source directory {rel or '/'}: {exc.strerror}") from None
    out = []
    for name in names:
        child_rel = f"{rel}/{name}" if rel else name
        if is_visible(state, os.path.join(host_dir, name), child_rel):
            out.append(name)
    return out


# ---------------------------------------------------------------- destination side

def mkdir_all(state: CopyState, host_path: str, mode: int | None = None) -> None:
    """Create the missing directories of an already resolved host path under the root.

    BuildKit's rule (tonistiigi/fsutil copy/mkdir.go MkdirAll, called by copy/copy.go with ci.Mode):
    mode = the octal --chmod's permission bits or 0755 (never masked by the umask), owner = --chown or
    root, mtime = now. An existing non-directory on the way is an error naming it.
    """
    root = os.path.abspath(state.root)
    rel = os.path.relpath(host_path, root)
    if rel == ".":
        return
    if mode is None:
        mode = state.chmod.created_dir_mode() if state.chmod else 0o755
    current = root
    for part in rel.split("/"):
        current = os.path.join(current, part)
        st = lstat_or_none(current)
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                continue
            raise CopyError(f"cannot create directory {state.where(current)}: "
                            "a file (not a directory) exists there in the image")
        os.mkdir(current, mode)
        os.chmod(current, mode)  # no umask
        owner = state.dir_owner if state.dir_owner is not None else (0, 0)
        _meta(state, "chown", current, os.lchown, current, *owner, owner=owner)
        state.record(current)


def _ensure_no_file_target(state: CopyState, target: str, target_st: os.stat_result | None,
                           src_desc: str) -> None:
    if target_st is None:
        return
    if stat.S_ISDIR(target_st.st_mode):
        raise CopyError(f"cannot replace directory {state.where(target)} with {src_desc}")
    os.unlink(target)


def _meta(state: CopyState, op: str, target: str, func: Callable, *args, owner: tuple[int, int] | None = None,
          **kwargs) -> None:
    """One metadata call on the destination; a refusal names what kiln's container lacks."""
    try:
        func(*args, **kwargs)
    except OSError as e:
        uid, gid = owner if owner is not None else (None, None)
        raise CopyError(f"cannot {op} {state.where(target)}: {e.strerror}"
                        f"{privilege.explain(op, e, uid, gid)}") from None


def copy_xattrs(src: str, target: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EPERM):
            log.warning("cannot list xattrs of %s: %s", src, exc.strerror)
        return
    for name in names:
        try:
            os.setxattr(target, name, os.getxattr(src, name, follow_symlinks=False),
                        follow_symlinks=False)
        except OSError as exc:  # BuildKit logs and goes on
            why = privilege.explain("setfcap", exc) if name == "security.capability" else ""
            log.warning("cannot copy xattr %s of %s to %s: %s%s", name, src, target, exc.strerror, why)


def copy_file_info(state: CopyState, st: os.stat_result, src: str, target: str) -> None:
    """Owner, then mode (not for symlinks), then times, then xattrs."""
    uid, gid = state.owner if state.owner is not None else (st.st_uid, st.st_gid)
    _meta(state, "chown", target, os.lchown, target, uid, gid, owner=(uid, gid))
    if not stat.S_ISLNK(st.st_mode):
        mode = state.chmod.apply(st.st_mode) if state.chmod else stat.S_IMODE(st.st_mode)
        _meta(state, "chmod", target, os.chmod, target, mode)
        if mode & 0o6000:
            lost = privilege.lost_special_bits(state.where(target), mode, os.lstat(target), gid)
            if lost:
                raise CopyError(lost)
    _meta(state, "utime", target, os.utime, target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    copy_xattrs(src, target)


def _copy_file_data(src: str, target: str) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with open(src, "rb") as fin, os.fdopen(os.open(target, flags, 0o600), "wb") as fout:
        size = os.fstat(fin.fileno()).st_size
        copied = 0
        try:
            while copied < size:
                n = os.copy_file_range(fin.fileno(), fout.fileno(), size - copied)
                if n == 0:
                    break
                copied += n
        except OSError as exc:
            if copied or exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP,
                                           errno.EPERM, errno.EIO):
                raise
        if copied < size:
            fin.seek(copied)
            fout.seek(copied)
            shutil.copyfileobj(fin, fout, 1 << 20)


def dir_target(state: CopyState, target: str, target_st: os.stat_result | None) -> str | None:
    """The directory to merge into at ``target``, or None when it must be created.

    A symlink met here (e.g. ``/lib -> usr/lib`` on merged-/usr images) is followed within the root
    when it leads to a directory (kaniko's behaviour; BuildKit refuses, classic docker replaces it).
    """
    if target_st is None:
        return None
    if stat.S_ISDIR(target_st.st_mode):
        return target
    if stat.S_ISLNK(target_st.st_mode):
        followed = resolve_in_root(state.root, state.where(target), follow_final=True)
        st = lstat_or_none(followed)
        if st is not None and stat.S_ISDIR(st.st_mode):
            return followed
    return _raise_non_dir(state, target)


def _raise_non_dir(state: CopyState, target: str) -> str:
    raise CopyError(f"cannot copy a directory to non-directory {state.where(target)} "
                    "(a file or link exists there in the image)")


def copy_entry(state: CopyState, src: str, rel: str, target: str, overwrite_metadata: bool,
               sub: str = "") -> None:
    """Copy the source entry ``src`` (not followed) to host path ``target`` (parent exists).

    ``rel`` is the entry's path in the source root (for .dockerignore), ``sub`` its path below the
    source being copied (for --exclude; ``""`` for that source itself)."""
    st = os.lstat(src)
    target_st = lstat_or_none(target)
    if stat.S_ISDIR(st.st_mode):
        existing = dir_target(state, target, target_st)
        created = existing is None
        if created:
            os.mkdir(target, 0o700)
        else:
            target = existing
        state.record(target)
        tst = os.lstat(target)
        state.dest_dirs.add((tst.st_dev, tst.st_ino))
        for name in visible_children(state, src, rel):
            child = os.path.join(src, name)
            child_sub = f"{sub}/{name}" if sub else name
            if state.copy_excluded is not None and state.copy_excluded(child_sub):
                continue
            cst = os.lstat(child)
            if stat.S_ISDIR(cst.st_mode) and (cst.st_dev, cst.st_ino) in state.dest_dirs:
                log.debug("not copying %s into itself", child)
                continue
            copy_entry(state, child, f"{rel}/{name}" if rel else name, os.path.join(target, name), True,
                       child_sub)
        if overwrite_metadata or created:
            copy_file_info(state, st, src, target)
        else:  # the destination of a directory copy: only its times follow the source
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        return

    if target_st is not None and (target_st.st_dev, target_st.st_ino) == (st.st_dev, st.st_ino):
        copy_file_info(state, st, src, target)  # the source itself (context inside the root)
        state.record(target)
        return
    kind = _describe(st.st_mode)
    _ensure_no_file_target(state, target, target_st, f"{kind} {rel or src}")
    if stat.S_ISSOCK(st.st_mode) and state.sockets_as_files:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    elif stat.S_ISREG(st.st_mode):
        link_source = None
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            link_source = state.inodes.get(key)
            if link_source is None:
                state.inodes[key] = target
        if link_source is not None:
            try:
                os.link(link_source, target, follow_symlinks=False)
            except FileNotFoundError:  # the first copy was replaced meanwhile: copy the data again
                state.inodes[(st.st_dev, st.st_ino)] = target
                _copy_file_data(src, target)
        else:
            _copy_file_data(src, target)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), target)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode) \
            or stat.S_ISSOCK(st.st_mode):
        _meta(state, "mknod", target, os.mknod, target, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev)
    else:
        raise CopyError(f"cannot copy {rel or src}: unsupported file type {oct(stat.S_IFMT(st.st_mode))}")
    copy_file_info(state, st, src, target)
    state.record(target)


def _describe(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "special file"

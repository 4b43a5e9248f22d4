"""Keeping a root's files for later: a hard-linked mirror of the root (for a later stage's COPY --from).

Hard links cost no copying; across mounts (kiln's directory on a volume, a bind mount) linking fails and the
files are copied instead, keeping owners, modes, xattrs and hard-link groups.
"""
from __future__ import annotations

import os
import shutil

from .ignore import IgnoreList


def link_tree(src_root: str, dest: str, ignore: IgnoreList) -> None:
    """Mirror `src_root` into `dest` with hard links, keeping metadata and hard-link groups.

    Across mounts (kiln's directory on a volume, or a bind mount) linking fails, and the files are
    copied instead; names that shared an inode in the root then share one in the copy."""
    os.makedirs(dest, exist_ok=True)
    src_root = os.path.abspath(src_root)
    dirs: list[tuple[str, os.stat_result]] = []
    copies: dict[tuple[int, int], str] = {}
    for current, dirnames, filenames in os.walk(src_root):
        rel_dir = os.path.relpath(current, src_root)
        rel_dir = "" if rel_dir == "." else rel_dir
        kept = []
        for d in dirnames:
            rel = os.path.join(rel_dir, d)
            if ignore.covers(rel):
                continue
            host = os.path.join(current, d)
            st = os.lstat(host)
            target = os.path.join(dest, rel)
            if os.path.islink(host):
                _link_or_copy(host, target, st, copies)
                continue
            os.mkdir(target)
            dirs.append((target, st))
            kept.append(d)
        dirnames[:] = kept
        for f in filenames:
            rel = os.path.join(rel_dir, f)
            if ignore.covers(rel):
                continue
            host = os.path.join(current, f)
            _link_or_copy(host, os.path.join(dest, rel), os.lstat(host), copies)
    for target, st in reversed(dirs):
        os.chown(target, st.st_uid, st.st_gid)
        os.chmod(target, st.st_mode & 0o7777)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def _link_or_copy(host: str, target: str, st: os.stat_result, copies: dict[tuple[int, int], str]) -> None:
    try:
        os.link(host, target, follow_symlinks=False)
        return
    except OSError:
        pass
    key = (st.st_dev, st.st_ino)
    if st.st_nlink > 1 and key in copies:
        os.link(copies[key], target, follow_symlinks=False)
        return
    if os.path.islink(host):
        os.symlink(os.readlink(host), target)
        os.lchown(target, st.st_uid, st.st_gid)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    elif os.path.isfile(host):
        shutil.copy2(host, target, follow_symlinks=False)
        os.chown(target, st.st_uid, st.st_gid)
        os.chmod(target, st.st_mode & 0o7777)
        for name in os.listxattr(host, follow_symlinks=False):
            os.setxattr(target, name, os.getxattr(host, name, follow_symlinks=False), follow_symlinks=False)
    else:
        os.mknod(target, st.st_mode, st.st_rdev)
        os.chown(target, st.st_uid, st.st_gid)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    if st.st_nlink > 1:
        copies[key] = target

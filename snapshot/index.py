"""The index: what kiln last saw of every path under the root.

Per path it keeps the lstat signature (mode with type bits, uid, gid, size, mtime and ctime in ns,
inode), device, link count, symlink target, xattrs (when read) and the xxh3-128 content digest of
regular files (when known). `time_ns` is when the index last matched the tree: entries whose ctime
is within `granularity_ns` of it are *racily clean* (git's term) and must be judged by content.
"""
from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterable, Iterator, Mapping

import xxhash

# Linux stamps inodes from a coarse clock that advances once per tick (HZ >= 100: <= 10 ms); a
# change made in the same tick as the one we recorded keeps the ctime. 50 ms leaves a wide margin.
DEFAULT_GRANULARITY_NS = 50_000_000
_READ = 1 << 20

S_IFMT = stat.S_IFMT
S_IFREG = stat.S_IFREG
S_IFDIR = stat.S_IFDIR
S_IFLNK = stat.S_IFLNK

Sig = tuple[int, int, int, int, int, int, int]  # mode, uid, gid, size, mtime_ns, ctime_ns, ino


@dataclass(slots=True)
class Entry:
    """What the index knows of one path (see the module docstring): lstat signature, device, link count, link
    target, xattrs and content digest when known."""
    sig: Sig
    dev: int
    nlink: int
    link: str | None = None            # symlink target
    xattrs: Mapping[str, bytes] | None = None  # None: not read
    digest: bytes | None = None         # xxh3-128 of a regular file's content
    racy: bool = False                  # still to be judged by content (see Index.stamp)

    @property
    def mode(self) -> int:
        return self.sig[0]

    @property
    def uid(self) -> int:
        return self.sig[1]

    @property
    def gid(self) -> int:
        return self.sig[2]

    @property
    def size(self) -> int:
        return self.sig[3]

    @property
    def mtime_ns(self) -> int:
        return self.sig[4]

    @property
    def ctime_ns(self) -> int:
        return self.sig[5]

    @property
    def ino(self) -> int:
        return self.sig[6]

    @property
    def kind(self) -> int:
        return S_IFMT(self.sig[0])

    @property
    def capability(self) -> bytes | None:
        return self.xattrs.get("security.capability") if self.xattrs else None


def sig_of(st: os.stat_result) -> Sig:
    return (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def entry_of(st: os.stat_result, link: str | None = None, xattrs: Mapping[str, bytes] | None = None,
             digest: bytes | None = None) -> Entry:
    return Entry((st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                  st.st_ino), st.st_dev, st.st_nlink, link, xattrs, digest)


def image_xattr(name: str) -> bool:
    """The xattrs that belong in an image: file capabilities and user.* data. SELinux labels,
    ACLs (system.*) and trusted.* (overlayfs' own) describe the build host, not the image; docker
    and containerd archive security.capability only."""
    return name == "security.capability" or name.startswith("user.")


NO_XATTRS: Mapping[str, bytes] = MappingProxyType({})  # shared by the many entries without any


def image_xattrs(xattrs: Mapping[str, bytes]) -> Mapping[str, bytes]:
    if not xattrs:
        return NO_XATTRS
    kept = {k: v for k, v in xattrs.items() if image_xattr(k)}
    return kept if kept else NO_XATTRS


def read_xattrs(host_path: str) -> Mapping[str, bytes]:
    """The image xattrs of a path (not following symlinks); empty where the filesystem has none."""
    try:
        names = os.listxattr(host_path, follow_symlinks=False)
    except OSError:
        return NO_XATTRS
    if not names:
        return NO_XATTRS
    out: dict[str, bytes] = {}
    for name in names:
        if not image_xattr(name):
            continue
        try:
            out[name] = os.getxattr(host_path, name, follow_symlinks=False)
        except OSError:
            continue
    return out if out else NO_XATTRS


def hash_file(host_path: str) -> bytes:
    """xxh3-128 of a regular file's content, opened without following a symlink."""
    fd = os.open(host_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        first = os.read(fd, _READ)
        if len(first) < _READ:
            return xxhash.xxh3_128_digest(first)
        h = xxhash.xxh3_128(first)
        while chunk := os.read(fd, _READ):
            h.update(chunk)
        return h.digest()
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class DirRecord:
    """One directory as the exact-mode walk last found it when every entry in it matched its index entry on
    inode and ctime, none of them racily clean: its names and their (ctime_ns, inode) pairs in listing
    order. A later listing with the same names and pairs (and `newest_ctime` still outside the racy window)
    is the same set of unchanged inodes, settled without looking each path up in the index: the per-entry
    lookup and comparison cost ~0.07 s of the ~0.26 s a 100k-path walk takes on one core (measured).
    Valid only while no entry of the directory's children changes in the index (Index.forget_dirs)."""
    names: str                  # the names, joined by NUL (a name holds neither NUL nor "/")
    stamps: bytes               # ctime_ns, inode of each name, as unsigned 64-bit machine integers
    subdirs: tuple[str, ...]    # the names that are directories
    count: int
    newest_ctime: int


class Index:
    """Relative image path -> Entry, plus the time the entries were last known to match the tree.

    `dirs` holds the exact-mode walk's DirRecords (relative directory path -> record): whoever changes an
    entry calls `forget_dirs` with its path (or `dirs.clear()`), so a record never outlives the entries it
    was taken from."""

    def __init__(self, granularity_ns: int = DEFAULT_GRANULARITY_NS) -> None:
        self.entries: dict[str, Entry] = {}
        self.time_ns = 0
        self.granularity_ns = granularity_ns
        self.dirs: dict[str, DirRecord] = {}

    def forget_dirs(self, rels: Iterable[str], below: Iterable[str] = ()) -> None:
        """The entries of `rels` changed (were added, replaced or removed): their directories' records go;
        so do the records of the directories `below` and of everything under them."""
        dirs = self.dirs
        if not dirs:
            return
        for rel in rels:
            dirs.pop(rel.rpartition("/")[0], None)
            dirs.pop(rel, None)
        prefixes = tuple(f"{rel}/" for rel in below)
        if prefixes:
            for rel in [d for d in dirs if d.startswith(prefixes)]:
                del dirs[rel]
            for rel in below:
                dirs.pop(rel, None)
                dirs.pop(rel.rpartition("/")[0], None)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, rel: str) -> bool:
        return rel in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def get(self, rel: str) -> Entry | None:
        return self.entries.get(rel)

    def is_racy(self, entry: Entry) -> bool:
        return entry.racy or entry.sig[5] > self.time_ns - self.granularity_ns

    def racy_entries(self) -> list[Entry]:
        """Entries racily clean now; call before a partial update (see `stamp`)."""
        limit = self.time_ns - self.granularity_ns
        return [e for e in self.entries.values() if e.racy or e.sig[5] > limit]

    def stamp(self, root: str, still_racy: list[Entry] | None = None, only: Iterable[str] | None = None) -> None:
        """Mark the index as matching the tree now; give racily clean regular files a digest, so
        the next comparison has something to compare their content against.

        After a full comparison (`still_racy` None) every entry has just been judged. After a
        partial update (an extraction, a snapshot of some paths) only what it wrote is new:
        the entries in `still_racy` (from `racy_entries()` before the update) that the update
        did not replace stay racy however far the index time moves.

        `only`, after a full exact-mode comparison: the paths that did not take the walk's fast path (its
        `Changes.unsettled`). Every other entry was found not racy with a ctime at or before the last index
        time less the granularity, so it stays so at the new time and needs no look: the loop over every
        entry below (~13 ms for 100k) is left out. Not when the clock went back."""
        before = self.time_ns
        self.time_ns = time.time_ns()
        limit = self.time_ns - self.granularity_ns
        if only is not None and still_racy is None and self.time_ns >= before:
            entries = self.entries
            for rel in only:
                e = entries.get(rel)
                if e is None:
                    continue
                e.racy = False
                if e.digest is None and e.sig[5] > limit and S_IFMT(e.sig[0]) == S_IFREG:
                    try:
                        e.digest = hash_file(f"{root}/{rel}")
                    except OSError:
                        pass
            return
        if still_racy is None:
            for e in self.entries.values():
                e.racy = False
        else:
            for e in still_racy:
                e.racy = True  # a replaced entry is no longer referenced: harmless
            if still_racy:
                self.dirs.clear()  # a record holds no racy entry: which directories these are in is unknown
        for rel, e in self.entries.items():
            if e.digest is None and (e.racy or e.sig[5] > limit) and S_IFMT(e.sig[0]) == S_IFREG:
                try:
                    e.digest = hash_file(f"{root}/{rel}")
                except OSError:
                    pass

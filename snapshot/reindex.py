"""Rebuilding the index from a walk of the whole root, on several cores when the root is big.

An entry whose inode signature is unchanged, whose xattrs were read and which is not racy keeps its link
target, xattrs and digest (nothing about the inode changed: the ctime says so); any other path gets a
fresh entry (its xattrs read, its content hashed in full mode). A forked walker (parallel_walk.py) sends back
only the fresh entries and those whose device or link count moved, and how many indexed paths it saw;
the rest are the old entries, unchanged.
"""
from __future__ import annotations

import os
import stat

from . import diff, progress
from .ignore import IgnoreList
from .index import NO_XATTRS, Entry, Index, entry_of, hash_file, read_xattrs

# The directory listing below (listdir, then fstatat(dir_fd, name) for each) is diff._Walk.scan's, written out
# again on purpose: a shared generator costs ~3% of a 100k-file walk (measured, detect 0.266 -> 0.278 s), on
# the path every RUN pays.
_DIR_FLAGS = diff._DIR_FLAGS


def reindexed(root: str, ignore: IgnoreList, old: Index, full: bool, workers: int | None = None,
              min_entries: int | None = None) -> dict[str, Entry]:
    """The entries of every path under `root` (ignored ones left out)."""
    walk = _Reindex(root.rstrip("/"), ignore, old.entries, full)
    return diff.run_walk(walk, len(old.entries), workers, min_entries)


def fresh_entry(host: str, st: os.stat_result, full: bool) -> Entry:
    """The entry of a path the index knows nothing of (or nothing it can trust): link target, xattrs read,
    content hashed in full mode."""
    kind = stat.S_IFMT(st.st_mode)
    link = os.readlink(host) if kind == stat.S_IFLNK else None
    digest = hash_file(host) if full and kind == stat.S_IFREG else None
    return entry_of(st, link, read_xattrs(host), digest)


def taken_in(root: str, rels: list[str], full: bool) -> dict[str, Entry]:
    """Fresh entries of the paths `rels` under `root` that still exist (those gone are left out)."""
    root = root.rstrip("/")
    out: dict[str, Entry] = {}
    for rel in rels:
        host = f"{root}/{rel}"
        try:
            st = os.lstat(host)
        except (FileNotFoundError, NotADirectoryError):
            continue
        out[rel] = fresh_entry(host, st, full)
    return out


class _Reindex:
    def __init__(self, root: str, ignore: IgnoreList, old: dict[str, Entry], full: bool) -> None:
        self.root, self.ignore, self.old, self.full = root, ignore, old, full
        self.entries: dict[str, Entry] = {}     # this process's paths
        self.fresh: dict[str, Entry] = {}       # the forked walkers' new entries
        self.seen_old = 0                       # paths seen that the old index holds
        self.walked_elsewhere = 0
        self.other_paths: list[str] | None = None
        self.quiet = False
        self.in_walker = False

    @property
    def walked(self) -> int:
        return len(self.entries) + self.walked_elsewhere

    def run(self, stack: list[tuple[str, bool]]) -> None:
        while stack:
            rel_dir, fresh = stack.pop()
            self.scan(rel_dir, fresh, stack)

    def scan(self, rel_dir: str, fresh: bool, stack: list[tuple[str, bool]]) -> None:
        root, ignore, get, full = self.root, self.ignore, self.old.get, self.full
        ignored = ignore.paths
        entries = self.entries
        fresh_out = self.fresh if self.in_walker else None
        seen_old = 0
        host_dir = f"{root}/{rel_dir}" if rel_dir else (root or "/")
        prefix = f"{rel_dir}/" if rel_dir else ""
        check_ignored = bool(ignored) and ignore.holds_ignored(rel_dir)
        try:
            dir_fd = os.open(host_dir, _DIR_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            lstat = os.stat
            for name in os.listdir(dir_fd):
                rel = prefix + name
                if check_ignored and rel in ignored:
                    continue
                try:
                    st = lstat(name, dir_fd=dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if (st.st_mode & 0o170000) == 0o040000:
                    stack.append((rel, False))
                sig = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                old = get(rel)
                if old is not None:
                    seen_old += 1
                    if old.sig == sig and old.xattrs is not None and not old.racy:
                        if fresh_out is None:
                            entries[rel] = Entry(sig, st.st_dev, st.st_nlink, old.link, old.xattrs, old.digest)
                        else:
                            entries[rel] = old      # (a walker keeps only the path: see paths())
                            if old.dev != st.st_dev or old.nlink != st.st_nlink:
                                fresh_out[rel] = Entry(sig, st.st_dev, st.st_nlink, old.link, old.xattrs,
                                                       old.digest)
                        continue
                entry = fresh_entry(f"{host_dir}/{name}" if rel_dir else f"{root}/{name}", st, full)
                entries[rel] = entry
                if fresh_out is not None:
                    fresh_out[rel] = entry
        finally:
            os.close(dir_fd)
            self.seen_old += seen_old
        if not self.quiet:
            progress.tick("walk", root, self.walked)

    # ---- shared with forked walkers (parallel_walk.py) ----------------------------------------------
    def forked(self) -> None:
        self.quiet = self.in_walker = True
        self.entries, self.fresh, self.seen_old, self.walked_elsewhere = {}, {}, 0, 0

    def report(self) -> tuple:
        # (the shared empty xattrs mapping is a mappingproxy, which pickle refuses: sent as None-or-dict)
        fresh = {rel: (e.sig, e.dev, e.nlink, e.link, None if e.xattrs is None else dict(e.xattrs), e.digest)
                 for rel, e in self.fresh.items()}
        return fresh, self.seen_old, len(self.entries)

    def merge(self, report: tuple) -> None:
        fresh, seen_old, walked = report
        self.fresh.update((rel, Entry(sig, dev, nlink, link, _xattrs(xattrs), digest))
                          for rel, (sig, dev, nlink, link, xattrs, digest) in fresh.items())
        self.seen_old += seen_old
        self.walked_elsewhere += walked

    def paths_needed(self) -> bool:
        return self.seen_old != len(self.old)

    def paths(self) -> list[str]:
        return list(self.entries)

    def add_paths(self, paths: list[str]) -> None:
        if self.other_paths is None:
            self.other_paths = []
        self.other_paths += paths

    def finish(self) -> dict[str, Entry]:
        if not self.walked_elsewhere and self.other_paths is None:
            return self.entries                          # one process walked it all
        # (an old entry kept is copied, as the one-process walk does: the old index's objects are never
        # shared with the new one, whose `stamp` marks its own entries)
        mine, fresh = self.entries, self.fresh
        if self.other_paths is None:                     # every old path is still there
            kept = ((rel, e) for rel, e in self.old.items() if rel not in mine and rel not in fresh)
        else:                                            # some are gone: the walkers' paths say which stay
            kept = ((rel, self.old[rel]) for rel in self.other_paths if rel not in fresh)
        entries = {rel: Entry(e.sig, e.dev, e.nlink, e.link, e.xattrs, e.digest) for rel, e in kept}
        entries.update(fresh)
        entries.update(mine)
        return entries


def _xattrs(sent: dict[str, bytes] | None):
    if sent is None:
        return None
    return sent if sent else NO_XATTRS      # as read_xattrs gives them

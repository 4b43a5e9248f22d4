"""The facade the build loop uses: extraction, indexing, snapshots and wiping of one root."""
from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from typing import BinaryIO, Iterable, Iterator

from .compression import check_compression
from .diff import Changes, check_mode, detect
from .errors import SnapshotError
from .extract import ExtractStats, extract_layer
from .ignore import IgnoreList
from .index import Entry, Index
from .layer import LayerFile, Whiteout, WrittenLayer, write_layer
from .linktree import link_tree
from . import privilege
from .paths import PathEscapeError, clean
from .reindex import reindexed, taken_in
from .wipe import wipe as wipe_root

log = logging.getLogger(__name__)


class Snapshotter:
    """Owns the index of one root. `root` is `/` in production, a scratch directory in tests;
    blobs are written to `work_dir`. `epoch` pins every timestamp in written layers (seconds)."""

    def __init__(self, root: str, ignore: IgnoreList, work_dir: str, compression: str = "gzip",
                 level: int | None = None, epoch: int | None = None, mode: str = "exact") -> None:
        check_compression(compression)
        check_mode(mode)
        if not os.path.isdir(root):
            raise SnapshotError(f"root {root} is not a directory")
        if not os.path.isdir(work_dir):
            raise SnapshotError(f"work directory {work_dir} is not a directory")
        self.root = root.rstrip("/")
        self.ignore = ignore
        self.work_dir = work_dir
        self.compression = compression
        self.level = level
        self.epoch = epoch
        self.mode = mode
        self.index = Index()
        self.last_changes: Changes | None = None

    # -- extraction ---------------------------------------------------------------------------
    def extract(self, blob: str | BinaryIO, name: str = "", diff_id: bool = False) -> ExtractStats:
        """Apply one layer blob (gzip, zstd or plain tar) onto the root; the index follows. `blob` is a
        path or a stream of the compressed bytes (see `extract_layer`); with `diff_id` the stats carry
        the sha256 of the uncompressed tar."""
        racy = self.index.racy_entries()
        self.index.dirs.clear()     # extraction changes entries anywhere
        stats = extract_layer(self.root, blob, name or (os.path.basename(blob) if isinstance(blob, str) else "layer"),
                              self.ignore, self.index, diff_id)
        self.index.stamp(self.root, racy)
        log.info("extracted layer %s: %d entries (%d whiteouts, %d skipped) in %.2fs",
                 stats.layer, stats.entries, stats.whiteouts, stats.skipped, stats.seconds)
        return stats

    def reindex(self) -> None:
        """Rebuild the index from a full walk of the root (split across processes on a big root: see
        `snapshot.reindex`). Entries whose inode signature is unchanged keep their digest and xattrs
        (nothing about the inode changed, the ctime says so), so a reindex right after extraction costs
        about one walk."""
        old_entries = self.index.entries
        index = Index(self.index.granularity_ns)
        index.entries = reindexed(self.root, self.ignore, self.index, self.mode == "full")
        entries = index.entries
        limit = self.index.time_ns - self.index.granularity_ns
        racy = [e for rel, o in old_entries.items() if (o.racy or o.sig[5] > limit)
                and (e := entries.get(rel)) is not None and e.sig == o.sig]
        self.index = index
        index.stamp(self.root, racy)

    def existing(self) -> list[str]:
        """The root's paths now, ignored ones left out: before the first layer, what the container holds of
        its own (in the executor image on `/`, a few directories around the runtime's mounts; on a scratch
        root, nothing). `take_in` indexes them once the layers are extracted."""
        return list(reindexed(self.root, self.ignore, Index(self.index.granularity_ns), False, workers=1))

    def take_in(self, before: list[str]) -> None:
        """After the first layers onto the root: index the paths of `before` (`existing()` before them) that
        no layer wrote, as a reindex of the whole root would, and nothing else. Extraction indexed every path
        it wrote, as it does for every later layer; the walk of the whole root it replaces (a reindex took
        0.37-0.40 s after a 100k-file layer) found nothing more than these."""
        racy = self.index.racy_entries()
        entries = self.index.entries
        entries.update(taken_in(self.root, [rel for rel in before if rel not in entries], self.mode == "full"))
        self.index.dirs.clear()
        self.index.stamp(self.root, racy)

    # -- snapshots ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """A file or directory the snapshot cannot read (kiln without CAP_DAC_OVERRIDE meets one a RUN made
        unreadable to root) is named in the image's terms, with what the container lacks."""
        try:
            yield
        except PermissionError as e:
            path = str(e.filename or "")
            root = self.root.rstrip("/")
            if root and path.startswith(root + "/"):
                path = path[len(root):]
            raise SnapshotError(f"snapshot: cannot read {path}: {e.strerror}{privilege.explain('read', e)}") from None

    def snapshot(self) -> LayerFile | None:
        """A layer of everything that changed since the index was taken; None when nothing did."""
        with self._reading():
            return self._snapshot()

    def _snapshot(self) -> LayerFile | None:
        start = time.perf_counter()
        changes = detect(self.root, self.ignore, self.index, self.mode)
        self.last_changes = changes
        index = self.index
        index.dirs.update(changes.records)
        for rel, st in changes.refreshed.items():
            self._refresh(rel, st, changes.digests.get(rel))
        for rel in changes.gone:
            index.entries.pop(rel, None)
        index.forget_dirs(changes.refreshed)
        index.forget_dirs(changes.gone)
        if not changes:
            index.stamp(self.root, only=changes.unsettled)
            log.info("snapshot: no changes (%d paths walked, %d of them settled by directory, %d hashed) in %.2fs",
                     changes.walked, changes.settled, changes.hashed, time.perf_counter() - start)
            return None
        partners = self._link_partners(changes.changed)
        if partners:
            # A new hard link to a file of a lower layer: the file joins the layer too, so the two names
            # stay one inode in the image (overlayfs copies the target up; docker's layer holds both).
            changes.changed = sorted(set(changes.changed) | partners)
        written = self._write(changes.changed, changes.deleted, unsettled=changes.unsettled)
        log.info("snapshot: %d changed, %d deleted (%d walked, %d of them settled by directory, %d hashed) in %.2fs",
                 len(changes.changed), len(changes.deleted), changes.walked, changes.settled,
                 changes.hashed, time.perf_counter() - start)
        return written.layer

    def _link_partners(self, changed: list[str]) -> set[str]:
        """Unchanged indexed paths that share an inode with a changed regular file."""
        wanted: set[tuple[int, int]] = set()
        for rel in changed:
            try:
                st = os.lstat(f"{self.root}/{rel}")
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                wanted.add((st.st_dev, st.st_ino))
        if not wanted:
            return set()
        have = set(changed)
        return {rel for rel, e in self.index.entries.items()
                if rel not in have and stat.S_ISREG(e.sig[0]) and (e.dev, e.ino) in wanted}

    def snapshot_paths(self, paths: Iterable[str]) -> LayerFile | None:
        """A layer of exactly these image paths (directories with their content), parents
        included; a listed path that no longer exists becomes a whiteout."""
        with self._reading():
            return self._snapshot_paths(paths)

    def _snapshot_paths(self, paths: Iterable[str]) -> LayerFile | None:
        changed: list[str] = []
        deleted: list[str] = []
        for path in paths:
            try:
                rel = clean(path)
            except PathEscapeError as e:
                raise SnapshotError(f"snapshot path {path!r}: {e}") from None
            if not rel or self.ignore.covers(rel):
                log.debug("snapshot path %r is the root or ignored; skipped", path)
                continue
            host = f"{self.root}/{rel}"
            try:
                st = os.lstat(host)
            except FileNotFoundError:
                if rel in self.index:
                    deleted.append(rel)
                continue
            changed.append(rel)
            if stat.S_ISDIR(st.st_mode):
                below = _Subtree(self.root, rel, self.ignore)
                changed.extend(below.paths)
                prefix = rel + "/"
                present = set(below.paths)
                dirs = present | {rel}
                for old in self.index.entries:
                    if old.startswith(prefix) and old not in present and old.rpartition("/")[0] in dirs:
                        deleted.append(old)
        if not changed and not deleted:
            return None
        return self._write(sorted(set(changed)), sorted(set(deleted)), full=False).layer

    # -- wiping -------------------------------------------------------------------------------
    def wipe(self) -> None:
        """Remove everything under the root but the ignore list; the index starts over."""
        wipe_root(self.root, self.ignore)
        self.reindex()

    # -- other trees -------------------------------------------------------------------------
    def save_tree(self, dest: str) -> None:
        """Mirror the root (but the ignore list) into `dest` with hard links, for a later COPY --from."""
        link_tree(self.root or "/", dest, self.ignore)

    def unpack_into(self, directory: str, blobs: list[tuple[str, str]]) -> None:
        """Extract layer blobs `(path, name)` in order into `directory`, which has nothing to ignore (an
        image's root for COPY --from=<image>); this root and its index are left alone."""
        other = Snapshotter(directory, IgnoreList(directory), self.work_dir)
        for path, name in blobs:
            other.extract(path, name=name)

    # -- internals ----------------------------------------------------------------------------
    def _write(self, changed: list[str], deleted: list[str], full: bool = True,
               unsettled: list[str] | None = None) -> WrittenLayer:
        """Archive, then update the index. `full`: the whole tree was just compared (and every indexed path
        it found gone is out of the index already); `unsettled`: that comparison's paths off the fast path
        (exact mode), which with the paths written are all the stamp needs to look at."""
        racy = None if full else self.index.racy_entries()
        archive = set(changed)
        for rel in [*changed, *deleted]:
            parent = rel.rpartition("/")[0]
            while parent and parent not in archive:
                archive.add(parent)
                parent = parent.rpartition("/")[0]
        whiteouts = [Whiteout(r) for r in deleted]
        written = write_layer(self.root, sorted(archive), whiteouts, self.work_dir,
                              self.compression, self.level, self.epoch)
        if not full:    # (after a full comparison, what lay below a deleted path was in `gone`: dropped)
            _drop_below(self.index.entries, set(deleted))
        self.index.entries.update(written.entries)
        self.index.forget_dirs(archive, below=deleted)
        self.index.forget_dirs(written.entries)
        self.index.stamp(self.root, racy, only=None if unsettled is None else [*unsettled, *written.entries])
        return written

    def _refresh(self, rel: str, st: os.stat_result, digest: bytes | None) -> None:
        old = self.index.entries.get(rel)
        if old is None:
            return
        self.index.entries[rel] = Entry((st.st_mode, st.st_uid, st.st_gid, st.st_size,
                                         st.st_mtime_ns, st.st_ctime_ns, st.st_ino), st.st_dev,
                                        st.st_nlink, old.link, old.xattrs, digest or old.digest)


def _drop_below(entries: dict[str, Entry], deleted: set[str]) -> None:
    """Forget deleted paths and everything below them."""
    if not deleted:
        return
    for rel in list(entries):
        p = rel
        while p:
            if p in deleted:
                del entries[rel]
                break
            p = p.rpartition("/")[0]


class _Subtree:
    """All paths below a directory (not ignored), top-down."""

    def __init__(self, root: str, rel: str, ignore: IgnoreList) -> None:
        self.paths: list[str] = []
        stack = [rel]
        while stack:
            d = stack.pop()
            with os.scandir(f"{root}/{d}") as it:
                for e in it:
                    child = f"{d}/{e.name}"
                    if child in ignore.paths:
                        continue
                    self.paths.append(child)
                    if e.is_dir(follow_symlinks=False):
                        stack.append(child)

"""Extraction of one layer blob onto the root, keeping the index up to date as it writes.

Every write goes to a path whose parent was resolved by `Resolver` (symlinks followed inside the
root only) and whose last component is never followed (O_NOFOLLOW, lchown, l-variants). Order of
metadata: chown, then chmod (chown clears setuid/setgid), then xattrs (chown clears
security.capability), then times; directory times are set after the whole layer is written.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import time
from dataclasses import dataclass
from typing import BinaryIO

import xxhash
from isal import isal_zlib

from . import privilege
from . import tarstream as T
from . import progress
from .compression import open_decompressed, zstd_errors
from .errors import LayerFormatError, SnapshotError, UnsafeEntryError
from .ignore import IgnoreList
from .index import NO_XATTRS, Entry, Index, entry_of, image_xattrs
from .paths import PathEscapeError, Resolver, clean, remove_tree

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_O_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_EMPTY = b""
_REGULAR_TYPES = T.REGULAR_TYPES
_xxh3_128_digest = xxhash.xxh3_128_digest


class _SkippedEntry(Exception):
    """An entry this container cannot hold (a device node in a user namespace): logged, left out."""


@dataclass(frozen=True)
class ExtractStats:
    """What extracting one layer onto the root did: entries written and skipped (ignored paths, the root itself),
    whiteouts applied, bytes, time, and the diff_id when asked."""
    layer: str
    compression: str
    entries: int
    skipped: int
    whiteouts: int
    bytes: int
    seconds: float
    diff_id: str | None = None      # "sha256:<hex>" of the uncompressed tar, when asked for


class _LayerExtractor:
    def __init__(self, root: str, ignore: IgnoreList, index: Index, layer: str) -> None:
        self.root = root.rstrip("/")
        self.ignore = ignore
        self.index = index
        self.layer = layer
        self.touched_dirs: set[str] = set()     # parents whose mtime/ctime our writes changed
        self.dir_times: list[tuple[str, int]] = []
        self.written: set[str] = set()          # paths this layer put down (whiteouts spare them)
        self.hardlinked: set[str] = set()
        self.resolver = Resolver(self.root, on_create=self._created_parent)
        self._resolved = self.resolver.cache        # read directly (invalidate() clears it in place)
        self._holding_ignored = ignore.ancestors     # = ignore.holds_ignored, as a set
        self.entries = self.skipped = self.whiteouts = self.bytes = 0
        self.umask = current_umask()
        self.euid = os.geteuid()
        self.egid = os.getegid()
        self._sgid: dict[str, bool] = {}   # directory -> has the setgid bit (new files inherit its gid)

    # -- helpers --------------------------------------------------------------------------------
    def _fail(self, name: str, why: str, cls: type[SnapshotError] = UnsafeEntryError) -> SnapshotError:
        return cls(f"layer {self.layer}: entry {name!r}: {why}")

    def _meta(self, op: str, m: T.Member, real: str, func, *args, **kwargs) -> None:
        """One metadata call (chown, chmod, utime, ...) of entry `m`; a refusal names what the container lacks."""
        try:
            func(*args, **kwargs)
        except OSError as e:
            raise self._meta_failed(op, m, real, e) from None

    def _meta_failed(self, op: str, m: T.Member, real: str, e: OSError) -> SnapshotError:
        why = privilege.explain(op, e, m.uid, m.gid)
        return self._fail(m.name, f"cannot {op} /{real}: {e}{why}", SnapshotError)

    def _check_special_bits(self, m: T.Member, real: str, st: os.stat_result) -> None:
        if m.mode & 0o6000:
            lost = privilege.lost_special_bits(f"/{real}", m.mode, st, m.gid)
            if lost:
                raise self._fail(m.name, lost, SnapshotError)

    def _created_parent(self, rel: str) -> None:
        self.touched_dirs.add(rel)
        self.touched_dirs.add(rel.rpartition("/")[0])

    def _forget(self, removed: list[str]) -> None:
        entries = self.index.entries
        for rel in removed:
            entries.pop(rel, None)
            self.written.discard(rel)

    def _clear_path(self, real: str, host: str, name: str, want_dir: bool) -> bool:
        """Make room at `host` for a new entry. Returns True when an existing directory stays
        (directory over directory)."""
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            return False
        if want_dir and stat.S_ISDIR(st.st_mode):
            return True
        if self.ignore.holds_ignored(real):
            raise self._fail(name, f"would replace /{real}, which holds ignored paths "
                                   f"{[p for p in self.ignore.image_paths() if p.startswith('/' + real + '/')]}")
        removed = remove_tree(self.root, real, self.ignore.covers)
        self._forget(removed)
        if not stat.S_ISREG(st.st_mode):
            self.resolver.invalidate()
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            self.hardlinked.add(real)  # the other names of the inode see a new ctime
        return False

    # -- entry dispatch ------------------------------------------------------------------------
    def apply(self, m: T.Member, reader: T.TarReader) -> None:
        try:
            rel = clean(m.name)
        except PathEscapeError as e:
            raise self._fail(m.name, f"refused: {e}") from None
        if not rel:
            self.skipped += 1  # the root directory itself keeps the runtime's metadata
            return
        if self.ignore.covers(rel):
            log.debug("layer %s: skipping ignored entry %s", self.layer, m.name)
            self.skipped += 1
            return
        parent, _, base = rel.rpartition("/")
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(m, parent, base)
            return
        real_parent = self._resolved.get(parent)   # the resolver's cache, without a call (most entries)
        if real_parent is None:
            try:
                real_parent = self.resolver.directory(parent, create=True)
            except SnapshotError as e:
                raise self._fail(m.name, str(e)) from None
            except OSError as e:
                raise self._fail(m.name, f"cannot create its parent directory: {e}", SnapshotError) from None
            assert real_parent is not None
        real = f"{real_parent}/{base}" if real_parent else base
        if real_parent != parent and self.ignore.covers(real):
            log.debug("layer %s: entry %s resolves into ignored /%s; skipped", self.layer, m.name, real)
            self.skipped += 1
            return
        host = f"{self.root}/{real}"
        typ = m.type
        if typ != T.DIR and real in self._holding_ignored:
            # e.g. Debian's var/run -> /run symlink while /var/run/secrets is a mount: the
            # directory must stay for the mount; later layers' var/run/... entries land in it
            log.warning("layer %s: entry %s would replace /%s, which holds mounted or ignored "
                        "paths; kept as a directory", self.layer, m.name, real)
            self.skipped += 1
            return
        try:
            if typ in _REGULAR_TYPES:
                self._regular(m, reader, real, host, real_parent)
            elif typ == T.DIR:
                self._directory(m, real, host)
            elif typ == T.SYMLINK:
                self._symlink(m, real, host)
            elif typ == T.LINK:
                self._hardlink(m, real, host)
            elif typ in (T.CHR, T.BLK, T.FIFO):
                self._node(m, real, host)
            else:  # TarReader rejects other types already
                raise self._fail(m.name, f"unsupported tar type {typ!r}", LayerFormatError)
        except _SkippedEntry:
            self.skipped += 1
            return
        except SnapshotError:
            raise
        except OSError as e:
            raise self._fail(m.name, f"cannot write /{real}: {e}", SnapshotError) from None
        self.entries += 1
        self.written.add(real)
        self.touched_dirs.add(real_parent)

    def _parent_sgid(self, real_parent: str) -> bool:
        hit = self._sgid.get(real_parent)
        if hit is None:
            hit = bool(os.lstat(f"{self.root}/{real_parent}" if real_parent else self.root or "/").st_mode
                       & stat.S_ISGID)
            self._sgid[real_parent] = hit
        return hit

    def _regular(self, m: T.Member, reader: T.TarReader, real: str, host: str, real_parent: str) -> None:
        mode = m.mode
        try:
            fd = os.open(host, _O_CREATE, mode & 0o777)
        except FileExistsError:
            self._clear_path(real, host, m.name, want_dir=False)
            fd = os.open(host, _O_CREATE, mode & 0o777)
        try:
            size = m.size
            data = reader.data() if size else _EMPTY
            if data is not None:     # all of it buffered (small files): one write, most often
                if size:
                    n = os.write(fd, data)
                    if n < size:
                        _write_all(fd, memoryview(data)[n:])
                    self.bytes += size
                digest = _xxh3_128_digest(data)
            else:
                digest = self._write_chunks(fd, reader, size)
            # a new file already has our uid/gid (unless its directory is setgid) and the creation
            # mode less the umask: skip the calls that would change nothing
            sgid = self._sgid.get(real_parent)
            if sgid is None:
                sgid = self._parent_sgid(real_parent)
            if m.uid != self.euid or m.gid != self.egid or sgid:
                self._meta("chown", m, real, os.fchown, fd, m.uid, m.gid)
                self._meta("chmod", m, real, os.fchmod, fd, mode)
            elif mode & 0o7000 or mode & self.umask:
                self._meta("chmod", m, real, os.fchmod, fd, mode)
            if m.xattrs:
                for key, value in m.xattrs.items():
                    self._set_xattr(m, real, host, key, value, fd)
            try:
                os.utime(fd, ns=(m.mtime_ns, m.mtime_ns))
            except OSError as e:
                raise self._meta_failed("utime", m, real, e) from None
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if mode & 0o6000:
            self._check_special_bits(m, real, st)
        self.index.entries[real] = entry_of(st, None, image_xattrs(m.xattrs) if m.xattrs else NO_XATTRS, digest)

    def _write_chunks(self, fd: int, reader: T.TarReader, size: int) -> bytes:
        """Write a member's data that is not all buffered (a large file), piece by piece; its digest."""
        hasher = None
        digest = b""
        for chunk in reader.chunks():
            if hasher is None and len(chunk) == size:
                digest = xxhash.xxh3_128_digest(chunk)
            else:
                if hasher is None:
                    hasher = xxhash.xxh3_128()
                hasher.update(chunk)
            _write_all(fd, memoryview(chunk))
        self.bytes += size
        return hasher.digest() if hasher is not None else digest

    def _set_xattr(self, m: T.Member, real: str, host: str, key: str, value: bytes,
                   fd: int | None = None) -> None:
        try:
            if fd is not None:
                os.setxattr(fd, key, value)
            else:
                os.setxattr(host, key, value, follow_symlinks=False)
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EPERM, errno.EOPNOTSUPP) and not key.startswith("security.capability"):
                # trusted.* and security.* other than file capabilities take CAP_SYS_ADMIN (in the initial
                # user namespace): the build goes on without them, as moby's pkg/archive does (BestEffortXattrs)
                log.warning("layer %s: entry %s: xattr %s not kept on /%s: %s", self.layer, m.name,
                            key, real, e.strerror)
                return
            why = privilege.explain("setfcap", e) if key == "security.capability" else ""
            raise self._fail(m.name, f"cannot set xattr {key} on /{real}: {e}{why}", SnapshotError) from None

    def _directory(self, m: T.Member, real: str, host: str) -> None:
        existed = False
        try:
            os.mkdir(host, 0o700)
        except FileExistsError:
            existed = self._clear_path(real, host, m.name, want_dir=True)
            if not existed:
                os.mkdir(host, 0o700)
        self._meta("chown", m, real, os.chown, host, m.uid, m.gid, follow_symlinks=False)
        self._meta("chmod", m, real, os.chmod, host, m.mode)  # a real directory: checked or made just above
        self._sgid[real] = bool(m.mode & stat.S_ISGID)
        for key, value in m.xattrs.items():
            self._set_xattr(m, real, host, key, value)
        self.dir_times.append((real, m.mtime_ns))
        st = os.lstat(host)
        self._check_special_bits(m, real, st)
        self.index.entries[real] = entry_of(st, None, image_xattrs(m.xattrs))

    def _symlink(self, m: T.Member, real: str, host: str) -> None:
        try:
            os.symlink(m.linkname, host)
        except FileExistsError:
            self._clear_path(real, host, m.name, want_dir=False)
            os.symlink(m.linkname, host)
        self._meta("chown", m, real, os.chown, host, m.uid, m.gid, follow_symlinks=False)
        for key, value in m.xattrs.items():
            if key.startswith(("trusted.", "security.")):
                self._set_xattr(m, real, host, key, value)
        self._meta("utime", m, real, os.utime, host, ns=(m.mtime_ns, m.mtime_ns), follow_symlinks=False)
        self.index.entries[real] = entry_of(os.lstat(host), m.linkname, image_xattrs(m.xattrs))

    def _hardlink(self, m: T.Member, real: str, host: str) -> None:
        try:
            target = clean(m.linkname)
        except PathEscapeError as e:
            raise self._fail(m.name, f"hard link target {m.linkname!r} refused: {e}") from None
        if not target:
            raise self._fail(m.name, "hard link to the root directory refused")
        if self.ignore.covers(target):
            raise self._fail(m.name, f"hard link to ignored path /{target} refused")
        tparent, _, tbase = target.rpartition("/")
        try:
            real_tparent = self.resolver.directory(tparent, create=False)
        except SnapshotError as e:
            raise self._fail(m.name, f"hard link target {m.linkname!r}: {e}") from None
        if real_tparent is None:
            raise self._fail(m.name, f"hard link target {m.linkname!r} does not exist", LayerFormatError)
        treal = f"{real_tparent}/{tbase}" if real_tparent else tbase
        thost = f"{self.root}/{treal}"
        try:
            tst = os.lstat(thost)
        except FileNotFoundError:
            raise self._fail(m.name, f"hard link target {m.linkname!r} does not exist", LayerFormatError) from None
        if stat.S_ISDIR(tst.st_mode):
            raise self._fail(m.name, f"hard link target {m.linkname!r} is a directory")
        if treal == real:
            return
        try:
            os.link(thost, host, follow_symlinks=False)
        except FileExistsError:
            self._clear_path(real, host, m.name, want_dir=False)
            os.link(thost, host, follow_symlinks=False)
        st = os.lstat(host)
        source = self.index.entries.get(treal)
        link = os.readlink(host) if stat.S_ISLNK(st.st_mode) else None
        entry = entry_of(st, link, source.xattrs if source else None, source.digest if source else None)
        self.index.entries[real] = entry
        self.hardlinked.add(real)
        self.hardlinked.add(treal)

    def _node(self, m: T.Member, real: str, host: str) -> None:
        kind = {T.CHR: stat.S_IFCHR, T.BLK: stat.S_IFBLK, T.FIFO: stat.S_IFIFO}[m.type]
        dev = os.makedev(m.devmajor, m.devminor) if m.type != T.FIFO else 0
        try:
            self._mknod(m, real, host, kind, dev)
        except FileExistsError:
            self._clear_path(real, host, m.name, want_dir=False)
            self._mknod(m, real, host, kind, dev)
        self._meta("chown", m, real, os.chown, host, m.uid, m.gid, follow_symlinks=False)
        self._meta("chmod", m, real, os.chmod, host, m.mode)  # a node we just made (chmod on a node does not open it)
        for key, value in m.xattrs.items():
            self._set_xattr(m, real, host, key, value)
        self._meta("utime", m, real, os.utime, host, ns=(m.mtime_ns, m.mtime_ns), follow_symlinks=False)
        self.index.entries[real] = entry_of(os.lstat(host), None, image_xattrs(m.xattrs))

    def _mknod(self, m: T.Member, real: str, host: str, kind: int, dev: int) -> None:
        try:
            os.mknod(host, kind | 0o600, dev)
        except PermissionError as e:
            if m.type != T.FIFO and privilege.in_user_namespace():
                # the kernel checks CAP_MKNOD in the initial user namespace: no device node can be made here.
                # As docker's rootless mode (moby pkg/archive createTarFile), the build goes on without it.
                log.warning("layer %s: device node /%s (%s %d:%d) not created: device nodes cannot be created in "
                            "a user namespace; the image keeps it, RUN steps of this build do not see it",
                            self.layer, real, "char" if m.type == T.CHR else "block", m.devmajor, m.devminor)
                raise _SkippedEntry() from None
            raise self._fail(m.name, f"cannot mknod /{real}: {e}{privilege.explain('mknod', e)}",
                             SnapshotError) from None

    # -- whiteouts ------------------------------------------------------------------------------
    def _whiteout(self, m: T.Member, parent: str, base: str) -> None:
        self.whiteouts += 1
        try:
            real_parent = self.resolver.directory(parent, create=False)
        except SnapshotError as e:
            raise self._fail(m.name, f"whiteout: {e}") from None
        if real_parent is None:
            return  # nothing below to hide
        if base == OPAQUE_MARKER:
            self._opaque(real_parent)
            return
        victim = base[len(WHITEOUT_PREFIX):]
        if victim in ("", ".", "..") or "/" in victim:
            # `a/.wh..` would delete `a/.` (the directory a itself), `a/.wh...` its parent: a whiteout
            # hides one entry of its own directory (the OCI image spec's whiteouts), nothing else
            named = f"{parent}/{victim}" if parent else victim or "/"
            raise self._fail(m.name, f"whiteout of {named!r} refused: a whiteout hides one entry of its own "
                                     "directory")
        real = f"{real_parent}/{victim}" if real_parent else victim
        if real in self.written:
            return  # a whiteout hides lower layers only, never what this layer added
        if self.ignore.covers(real):
            return
        removed = remove_tree(self.root, real, self._keep)
        if removed:
            self._forget(removed)
            self.resolver.invalidate()
            self.touched_dirs.add(real_parent)

    def _keep(self, rel: str) -> bool:
        return rel in self.written or self.ignore.covers(rel)

    def _opaque(self, real_dir: str) -> None:
        host = f"{self.root}/{real_dir}" if real_dir else (self.root or "/")
        try:
            children = os.listdir(host)
        except (FileNotFoundError, NotADirectoryError):
            return
        removed: list[str] = []
        for name in children:
            rel = f"{real_dir}/{name}" if real_dir else name
            if self.ignore.covers(rel):
                continue
            if rel in self.written:
                if os.path.isdir(f"{self.root}/{rel}") and not os.path.islink(f"{self.root}/{rel}"):
                    removed += _remove_unwritten(self.root, rel, self._keep)
                continue
            removed += remove_tree(self.root, rel, self._keep)
        if removed:
            self._forget(removed)
            self.resolver.invalidate()
            self.touched_dirs.add(real_dir)

    # -- end of layer ---------------------------------------------------------------------------
    def finish(self) -> None:
        entries = self.index.entries
        for real, mtime_ns in sorted(self.dir_times, key=lambda x: len(x[0]), reverse=True):
            host = f"{self.root}/{real}"
            try:
                os.utime(host, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
                old = entries.get(real)
                entries[real] = entry_of(os.lstat(host), None, old.xattrs if old else None)
            except FileNotFoundError:
                pass  # removed by a later entry of the same layer
            except PermissionError as e:
                raise SnapshotError(f"layer {self.layer}: cannot set the times of /{real}: "
                                    f"{e}{privilege.explain('utime', e)}") from None
        timed = {r for r, _ in self.dir_times}
        for real in self.touched_dirs - timed:
            self._refresh(real)
        for real in self.hardlinked:
            self._refresh(real)
        if self.hardlinked:
            groups = {(e.dev, e.ino) for r in self.hardlinked if (e := entries.get(r))}
            for rel, e in entries.items():
                if e.nlink > 1 and (e.dev, e.ino) in groups and rel not in self.hardlinked:
                    self._refresh(rel)

    def _refresh(self, real: str) -> None:
        if not real:
            return
        entries = self.index.entries
        try:
            st = os.lstat(f"{self.root}/{real}")
        except FileNotFoundError:
            entries.pop(real, None)
            return
        old = entries.get(real)
        if old is not None and old.sig[6] == st.st_ino:
            entries[real] = Entry((st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
                                   st.st_ctime_ns, st.st_ino), st.st_dev, st.st_nlink, old.link,
                                  old.xattrs, old.digest, old.racy)
        else:
            link = os.readlink(f"{self.root}/{real}") if stat.S_ISLNK(st.st_mode) else None
            entries[real] = entry_of(st, link)


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        n = os.write(fd, view)
        view = view[n:]


def current_umask() -> int:
    """The process umask, read without changing it (other threads may be creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _remove_unwritten(root: str, rel: str, keep) -> list[str]:
    """Inside a directory this layer wrote, remove what lower layers left (opaque parent)."""
    removed: list[str] = []
    stack = [rel]
    while stack:
        d = stack.pop()
        for name in os.listdir(f"{root}/{d}"):
            child = f"{d}/{name}"
            if keep(child):
                host = f"{root}/{child}"
                if os.path.isdir(host) and not os.path.islink(host):
                    stack.append(child)
                continue
            removed += remove_tree(root, child, keep)
    return removed


def extract_layer(root: str, blob: str | BinaryIO, layer: str, ignore: IgnoreList, index: Index,
                  diff_id: bool = False) -> ExtractStats:
    """Apply one layer blob (gzip, zstd or plain tar, detected from its bytes) onto `root`.

    `blob` is a file's path or a readable stream of the compressed bytes (a download under way: reads
    block until its bytes arrive; its `size` attribute, when it has one, sizes the progress). With
    `diff_id` the uncompressed stream is hashed (sha256) to its very end, trailing bytes past the tar's
    end-of-archive included, and the stats carry it."""
    start = time.perf_counter()
    ex = _LayerExtractor(root, ignore, index, layer)
    if isinstance(blob, str):
        try:
            raw: BinaryIO = open(blob, "rb", buffering=1 << 20)
        except OSError as e:
            raise SnapshotError(f"layer {layer}: cannot open blob {blob}: {e}") from None
        size = os.fstat(raw.fileno()).st_size
    else:
        raw = blob
        size = getattr(blob, "size", None) or 0
    hasher = hashlib.sha256() if diff_id else None
    with raw:
        stream, kind = open_decompressed(raw, layer, hasher)
        reader = T.TarReader(stream, f"layer {layer}")
        done = False
        try:
            apply = ex.apply
            count = 0
            for member in reader:
                apply(member, reader)
                count += 1
                if not count & 63 and progress.listener is not None:   # (tick limits itself to 10 a second)
                    progress.tick("extract", layer, raw.tell(), size)
            if hasher is not None:
                while stream.read(1 << 20):     # what follows the end-of-archive blocks is in the diff_id
                    pass
            progress.tick("extract", layer, size, size, final=True)
            done = True
        except (EOFError, OSError, ValueError, isal_zlib.error, *zstd_errors()) as e:
            if isinstance(e, SnapshotError):
                raise
            raise LayerFormatError(f"layer {layer}: cannot read {kind} data near tar byte "
                                   f"{reader.offset}: {e}") from None
        finally:
            stream.close()
            try:
                ex.finish()
            except SnapshotError:
                if done:
                    raise    # else the entry's own error is the one to report
    stats = ExtractStats(layer, kind, ex.entries, ex.skipped, ex.whiteouts, ex.bytes,
                         time.perf_counter() - start,
                         "sha256:" + hasher.hexdigest() if hasher is not None else None)
    log.debug("extracted %s", stats)
    return stats

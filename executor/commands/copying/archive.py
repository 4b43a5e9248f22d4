"""ADD of a local tar archive: detection from content and extraction as BuildKit does it.

BuildKit (``solver/llbsolver/file/unpack.go`` + moby go-archive ``Untar`` in a chroot of the dest):
* an archive is a regular file whose content, once decompressed (gzip, bzip2, xz, zstd, or none), yields
  at least one tar header; the file name plays no part (an empty ``x.tar.gz`` is copied, not extracted);
* the destination is always a directory (created 0755, owner --chown or root); the archive's entries are
  merged into it: an existing entry is replaced unless both are directories (then metadata is applied);
* owners come from the archive unless --chown (which then applies to every entry); --chmod is ignored;
* paths and link targets that climb out of the destination are refused; symlinks already in the
  destination are resolved inside the destination (the chroot), never outside it;
* modes (special bits included), mtimes (directories last), xattrs (PAX SCHILY.xattr) are restored.
"""

from __future__ import annotations

import bz2
import contextlib
import logging
import lzma
import os
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator
from typing import IO


from executor.commands.copying.errors import CopyError
from executor.commands.copying.paths import lstat_or_none, resolve_in_root
from snapshot.compression import detect, zstd_errors

try:
    from isal import igzip as _gzip
except ImportError:  # pragma: no cover - isal is a dependency
    import gzip as _gzip  # type: ignore[no-redef]

log = logging.getLogger(__name__)

@contextlib.contextmanager
def _open_stream(path: str) -> Iterator[IO[bytes]]:
    with open(path, "rb") as raw:
        kind = detect(raw.read(8))
        raw.seek(0)
        if kind == "gzip":
            stream: IO[bytes] = _gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
        elif kind == "bzip2":
            stream = bz2.BZ2File(raw, "rb")
        elif kind == "xz":
            stream = lzma.LZMAFile(raw, "rb")
        elif kind == "zstd":
            import zstandard

            stream = zstandard.ZstdDecompressor().stream_reader(raw)  # type: ignore[assignment]
        else:
            stream = raw
        try:
            yield stream
        finally:
            if stream is not raw:
                stream.close()


def is_archive(path: str) -> bool:
    """True when ``path`` is a regular file holding a (possibly compressed) tar with one entry or more."""
    st = lstat_or_none(path)
    if st is None or not stat.S_ISREG(st.st_mode):
        return False
    try:
        with _open_stream(path) as stream:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                return tar.next() is not None
    except Exception:  # any decoding or header failure means "not an archive", as in go-archive
        return False


def _breakout(archive: str, name: str, what: str) -> CopyError:
    return CopyError(f"ADD {archive}: refusing entry {name!r}: its {what} points outside the destination")


def _check_name(archive: str, name: str) -> str:
    # go-archive: Join(dest, Clean(name)) must stay under dest.
    rel = os.path.normpath(name.lstrip("/")) if name.strip("/") else "."
    if rel == ".." or rel.startswith("../"):
        raise _breakout(archive, name, "path")
    return rel


def extract_archive(archive: str, display: str, dest: str, chown: tuple[int, int] | None,
                    record: Callable[[str], None]) -> None:
    """Extract ``archive`` into the existing host directory ``dest``; ``record`` gets each host path."""
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    try:
        with _open_stream(archive) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                _extract_member(tar, member, display, dest, chown, record, dirs)
    except CopyError:
        raise
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, *zstd_errors()) as exc:
        raise CopyError(f"ADD {display}: cannot extract the archive: {exc}") from exc
    for path, member in reversed(dirs):
        os.utime(path, ns=(_ns(member.mtime),) * 2, follow_symlinks=False)


def _ns(seconds: float) -> int:
    return int(round(seconds * 1_000_000_000))


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, display: str, dest: str,
                    chown: tuple[int, int] | None, record: Callable[[str], None],
                    dirs: list[tuple[str, tarfile.TarInfo]]) -> None:
    rel = _check_name(display, member.name)
    if rel == ".":
        return  # go-archive leaves the destination's own metadata alone
    parent_rel, base = os.path.split(rel)
    parent = resolve_in_root(dest, parent_rel, follow_final=True)
    if lstat_or_none(parent) is None:
        _mkdir_parents(dest, parent, record)
    path = os.path.join(parent, base)
    existing = lstat_or_none(path)
    if existing is not None and not (stat.S_ISDIR(existing.st_mode) and member.isdir()):
        if stat.S_ISDIR(existing.st_mode):
            _remove_tree(path)
        else:
            os.unlink(path)

    if member.isdir():
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            os.mkdir(path, 0o700)
    elif member.isreg():
        source = tar.extractfile(member)
        assert source is not None
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with source, os.fdopen(os.open(path, flags, 0o600), "wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
    elif member.issym():
        # go-archive: Join(Dir(path), linkname) must stay under dest (an absolute target is joined too)
        target = os.path.normpath(os.path.join(os.path.dirname(rel), member.linkname.lstrip("/")))
        if target == ".." or target.startswith("../"):
            raise _breakout(display, member.name, "symlink target")
        os.symlink(member.linkname, path)
    elif member.islnk():
        link_rel = _check_name(display, member.linkname)
        link_path = resolve_in_root(dest, link_rel, follow_final=False)
        try:
            os.link(link_path, path, follow_symlinks=False)
        except FileNotFoundError:
            raise CopyError(f"ADD {display}: hard link {member.name!r} points at {member.linkname!r}, "
                            "which is not in the archive before it") from None
    elif member.ischr() or member.isblk() or member.isfifo():
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
        os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
    else:
        raise CopyError(f"ADD {display}: entry {member.name!r} has an unsupported tar type {member.type!r}")

    uid, gid = chown if chown is not None else (member.uid, member.gid)
    os.lchown(path, uid, gid)
    if member.islnk():  # go-archive chmods a hard link (its inode) unless it names a symlink
        if not os.path.islink(path):
            os.chmod(path, member.mode & 0o7777)
    elif not member.issym():
        os.chmod(path, member.mode & 0o7777)
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            try:
                os.setxattr(path, key[len("SCHILY.xattr."):], value.encode("utf-8", "surrogateescape"),
                            follow_symlinks=False)
            except OSError as exc:  # best effort, as BuildKit asks go-archive
                log.warning("ADD %s: cannot set xattr %s on %s: %s", display, key, member.name, exc.strerror)
    if member.isdir():
        dirs.append((path, member))
    elif not member.islnk():
        os.utime(path, ns=(_ns(member.mtime),) * 2, follow_symlinks=False)
    record(path)


def _mkdir_parents(dest: str, parent: str, record: Callable[[str], None]) -> None:
    rel = os.path.relpath(parent, dest)
    current = dest
    for part in rel.split("/"):
        current = os.path.join(current, part)
        st = lstat_or_none(current)
        if st is None:
            os.mkdir(current, 0o755)
            os.chmod(current, 0o755)
            os.lchown(current, 0, 0)
            record(current)
        elif not stat.S_ISDIR(st.st_mode):
            raise CopyError(f"cannot create directory {current}: a file exists there")


def _remove_tree(path: str) -> None:
    shutil.rmtree(path)

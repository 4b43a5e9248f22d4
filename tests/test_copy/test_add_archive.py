"""ADD of local archives: detected by content, extracted into the destination directory."""
from __future__ import annotations

import io
import os
import tarfile

import pytest
import zstandard

from executor.commands.copying.archive import is_archive
from executor.commands.copying.files import CopyError, CopyRequest, copy_into_root
from tests.test_copy.helpers import T0, entry, mkdir, names, symlink, tree, write

M1 = 1_234_567_890


def _info(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, uid: int = 0, gid: int = 0,
          **kw) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = kind, mode, uid, gid, M1
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def make_tar(members: list[tuple[tarfile.TarInfo, bytes | None]], fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
            else:
                tar.addfile(ti)
    return buf.getvalue()


def compress(data: bytes, kind: str) -> bytes:
    import bz2
    import gzip
    import lzma
    return {"none": lambda b: b, "gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress,
            "zstd": lambda b: zstandard.ZstdCompressor().compress(b)}[kind](data)


SAMPLE = [
    (_info("app", tarfile.DIRTYPE, 0o750, 10, 20), None),
    (_info("app/run.sh", mode=0o4755, uid=10, gid=20), b"#!/bin/sh\n"),
    (_info("app/cur", tarfile.SYMTYPE, 0o777, 10, 20, linkname="run.sh"), None),
    (_info("app/hard", tarfile.LNKTYPE, 0o4755, 10, 20, linkname="app/run.sh"), None),
    (_info("deep/er/file", uid=3, gid=4), b"x"),  # parents not in the archive
]


def req(d, sources, dest, **kw) -> CopyRequest:
    return CopyRequest(sources=sources, dest=dest, source_root=d.ctx, root=d.root, is_add=True, **kw)


@pytest.mark.parametrize("kind", ["none", "gzip", "bzip2", "xz", "zstd"])
def test_archives_are_extracted_whatever_their_name(dirs, kind) -> None:
    with open(os.path.join(dirs.ctx, "blob.bin"), "wb") as f:
        f.write(compress(make_tar(SAMPLE), kind))
    paths = copy_into_root(req(dirs, ["blob.bin"], "/opt/x"))  # no slash: still a directory
    t = tree(dirs.root)
    assert (t["/opt/x/app"].mode, t["/opt/x/app"].uid, t["/opt/x/app"].gid) == (0o750, 10, 20)
    assert t["/opt/x/app"].mtime_ns == M1 * 10**9
    run = t["/opt/x/app/run.sh"]
    assert (run.data, run.mode, run.uid, run.gid, run.mtime_ns) == (b"#!/bin/sh\n", 0o4755, 10, 20, M1 * 10**9)
    assert (t["/opt/x/app/cur"].kind, t["/opt/x/app/cur"].target) == ("link", "run.sh")
    assert t["/opt/x/app/hard"].ino == run.ino
    assert (t["/opt/x/deep"].mode, t["/opt/x/deep"].uid) == (0o755, 0)
    assert t["/opt/x/deep/er/file"].uid == 3
    assert paths[:2] == ["/opt", "/opt/x"] and "/opt/x/app/hard" in paths and "/opt/x/deep/er" in paths


def test_chown_applies_to_every_entry_chmod_is_ignored(dirs) -> None:
    with open(os.path.join(dirs.ctx, "a.tgz"), "wb") as f:
        f.write(compress(make_tar(SAMPLE), "gzip"))
    copy_into_root(req(dirs, ["a.tgz"], "/x/", chown=(7, 8), chmod=0o600))
    t = tree(dirs.root)
    for p in ("/x", "/x/app", "/x/app/run.sh", "/x/app/cur", "/x/deep/er/file"):
        assert (t[p].uid, t[p].gid) == (7, 8), p
    assert t["/x/app/run.sh"].mode == 0o4755 and t["/x/app"].mode == 0o750
    assert t["/x/deep"].uid == 0  # implicit parents: root, as go-archive
    assert t["/x"].mode == 0o755   # the destination BuildKit creates for an archive ignores --chmod


def test_extraction_merges_and_overwrites(dirs) -> None:
    write(dirs.root, "x/app/old", "keep", mtime_ns=None)
    write(dirs.root, "x/app/run.sh", "old", mtime_ns=None)
    mkdir(dirs.root, "x/deep/er/file")  # a directory where the archive has a file: replaced
    with open(os.path.join(dirs.ctx, "a.tar"), "wb") as f:
        f.write(make_tar(SAMPLE))
    copy_into_root(req(dirs, ["a.tar"], "/x"))
    t = tree(dirs.root)
    assert t["/x/app/old"].data == b"keep" and t["/x/app/run.sh"].data == b"#!/bin/sh\n"
    assert t["/x/deep/er/file"].kind == "file"


def test_non_archives_are_copied(dirs) -> None:
    write(dirs.ctx, "empty.tar.gz", "")
    write(dirs.ctx, "notes.tar", "just text, not a tar")
    with open(os.path.join(dirs.ctx, "zero.tar"), "wb") as f:
        f.write(b"\0" * 1024)  # an empty tar: no entry, so not an archive (go-archive: Next() fails)
    copy_into_root(req(dirs, ["empty.tar.gz", "notes.tar", "zero.tar"], "/d/"))
    assert names(dirs.root) == {"/d", "/d/empty.tar.gz", "/d/notes.tar", "/d/zero.tar"}
    assert not is_archive(os.path.join(dirs.ctx, "notes.tar"))


def test_archive_through_a_context_symlink_and_wildcard(dirs) -> None:
    with open(os.path.join(dirs.ctx, "real.tar"), "wb") as f:
        f.write(make_tar([(_info("f"), b"1")]))
    symlink(dirs.ctx, "pkg-1.tar", "real.tar")
    copy_into_root(req(dirs, ["pkg-*.tar"], "/w/"))
    assert names(dirs.root) == {"/w", "/w/f"}


def test_copy_does_not_extract(dirs) -> None:
    with open(os.path.join(dirs.ctx, "a.tar"), "wb") as f:
        f.write(make_tar([(_info("f"), b"1")]))
    copy_into_root(CopyRequest(["a.tar"], "/d/", dirs.ctx, dirs.root))
    assert names(dirs.root) == {"/d", "/d/a.tar"}


@pytest.mark.parametrize("members,what", [
    ([(_info("../evil"), b"x")], "path"),
    ([(_info("a/../../evil"), b"x")], "path"),
    ([(_info("l", tarfile.SYMTYPE, linkname="../../../evil"), None)], "symlink target"),
    ([(_info("h", tarfile.LNKTYPE, linkname="../evil"), None)], "path"),
])
def test_breakouts_are_refused(dirs, members, what) -> None:
    with open(os.path.join(dirs.ctx, "bad.tar"), "wb") as f:
        f.write(make_tar(members, fmt=tarfile.GNU_FORMAT))
    with pytest.raises(CopyError, match=f"bad.tar.*its {what} points outside"):
        copy_into_root(req(dirs, ["bad.tar"], "/x/"))
    assert os.listdir(dirs.sentinel) == []


def test_symlinks_met_while_extracting_resolve_inside_the_destination(dirs) -> None:
    symlink(dirs.root, "x/etc", "/../../host")       # already in the image, hostile
    members = [(_info("lib", tarfile.SYMTYPE, linkname="/usr/lib"), None),  # absolute: allowed
               (_info("etc/passwd"), b"pw"),
               (_info("lib/libc.so"), b"so")]
    with open(os.path.join(dirs.ctx, "t.tar"), "wb") as f:
        f.write(make_tar(members))
    copy_into_root(req(dirs, ["t.tar"], "/x/"))
    assert os.listdir(dirs.sentinel) == []
    assert entry(os.path.join(dirs.root, "x/host/passwd")).data == b"pw"   # chroot of the dest
    assert entry(os.path.join(dirs.root, "x/usr/lib/libc.so")).data == b"so"
    assert not os.path.exists(os.path.join(dirs.root, "usr"))


def test_xattrs_from_pax_headers(dirs, user_xattrs) -> None:
    ti = _info("bin/ping", mode=0o755)
    ti.pax_headers = {"SCHILY.xattr.user.note": "hi"}
    with open(os.path.join(dirs.ctx, "t.tar"), "wb") as f:
        f.write(make_tar([(ti, b"elf")]))
    copy_into_root(req(dirs, ["t.tar"], "/"))
    assert os.listxattr(os.path.join(dirs.root, "bin/ping")) == ["user.note"]
    assert os.getxattr(os.path.join(dirs.root, "bin/ping"), "user.note") == b"hi"


def test_directory_times_survive_later_entries(dirs) -> None:
    members = [(_info("d", tarfile.DIRTYPE, 0o755), None), (_info("d/f"), b"f")]
    with open(os.path.join(dirs.ctx, "t.tar"), "wb") as f:
        f.write(make_tar(members))
    copy_into_root(req(dirs, ["t.tar"], "/"))
    assert entry(os.path.join(dirs.root, "d")).mtime_ns == M1 * 10**9
    assert T0  # the helper module's constant is unrelated here

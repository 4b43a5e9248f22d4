"""--exclude, --parents (BuildKit's exclude_patterns_test and reference examples) and ADD --unpack."""
from __future__ import annotations

import io
import os
import tarfile

import pytest

from executor.commands.copying.files import CopyError, CopyRequest, copy_into_root
from tests.test_copy.helpers import T0, entry, mkdir, names, symlink, write


def req(d, sources, dest, **kw) -> CopyRequest:
    return CopyRequest(sources=sources, dest=dest, source_root=d.ctx, root=d.root, **kw)


@pytest.fixture
def media(dirs):
    for rel in ("dir1/file-101.png", "dir1/file-102.txt", "dir1/file-103.jpeg", "dir2/file-201.pdf",
                "dir2/file-202.jpeg", "dir2/file-203.png", "dir3/file-301.mp3", "dir3/file-302.mpeg",
                "dir4/file-401.txt"):
        write(dirs.ctx, rel, rel)
    symlink(dirs.ctx, "dir4/file-402.txt", "file-401.txt")
    return dirs


def test_exclude_below_a_directory_source(media) -> None:
    copy_into_root(req(media, ["."], "/1", excludes=["*/*.png", "*/*.jpeg"]))
    got = names(media.root)
    assert "/1/dir1/file-102.txt" in got and "/1/dir4/file-402.txt" in got
    assert not any(p.endswith((".png", ".jpeg")) for p in got)


def test_exclude_applies_to_wildcard_matches_and_their_contents(media) -> None:
    copy_into_root(req(media, ["dir*"], "/4/",
                       excludes=["*.mp3", "*.jpeg", "*.png", "*.pdf", "*.txt"]))
    assert names(media.root) == {"/4", "/4/file-302.mpeg"}
    write(media.ctx, "home.txt", "h")
    write(media.ctx, "home.md", "m")
    copy_into_root(req(media, ["hom*"], "/h/", excludes=["*.txt"]))
    assert {p for p in names(media.root) if p.startswith("/h")} == {"/h", "/h/home.md"}


def test_exclude_with_double_star(media) -> None:
    copy_into_root(req(media, ["."], "/a/", excludes=["**/*.txt"]))
    got = names(media.root)
    assert not any(p.endswith(".txt") for p in got) and "/a/dir2/file-201.pdf" in got


def test_parents_keep_paths(dirs) -> None:
    write(dirs.ctx, "x/a.txt", "xa")
    write(dirs.ctx, "y/a.txt", "ya")
    mkdir(dirs.ctx, "x", 0o700, T0, uid=0)
    copy_into_root(req(dirs, ["./x/a.txt", "./y/a.txt"], "/parents/", parents=True))
    assert names(dirs.root) == {"/parents", "/parents/x", "/parents/x/a.txt", "/parents/y", "/parents/y/a.txt"}
    e = entry(os.path.join(dirs.root, "parents/x"))
    # recreated with the source directory's mode; its mtime then moves with the entry written into it,
    # as with fsutil's delayed parent creation
    assert (e.mode, e.uid) == (0o700, 0) and e.mtime_ns != T0


def test_parents_pivot_and_double_star(dirs) -> None:
    for rel in ("x/y/a.txt", "x/y/b.txt", "x/y/c.md", "src/a.txt", "src/x/b.txt", "src/x/y/c.txt", "src/n.md"):
        write(dirs.ctx, rel, rel)
    copy_into_root(req(dirs, ["./x/./y/*.txt"], "/p1/", parents=True))
    copy_into_root(req(dirs, ["./src/**/*.txt"], "/p2/", parents=True))
    got = names(dirs.root)
    assert {p for p in got if p.startswith("/p1")} == {"/p1", "/p1/y", "/p1/y/a.txt", "/p1/y/b.txt"}
    assert {p for p in got if p.startswith("/p2/")} == {
        "/p2/src", "/p2/src/a.txt", "/p2/src/x", "/p2/src/x/b.txt", "/p2/src/x/y", "/p2/src/x/y/c.txt"}


def test_parents_missing_literal_path_is_an_error(dirs) -> None:
    with pytest.raises(CopyError, match='"/x/nope.txt": not found'):
        copy_into_root(req(dirs, ["x/nope.txt"], "/p/", parents=True))


def test_parents_from_a_stage_with_a_pivot(dirs) -> None:
    write(dirs.ctx, "usr/lib/app/libx.so", "so", uid=0)
    copy_into_root(req(dirs, ["/usr/./lib/app"], "/opt/", parents=True, from_context=False))
    assert "/opt/lib/app/libx.so" in names(dirs.root)


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ti = tarfile.TarInfo("inside")
        ti.size = 1
        tar.addfile(ti, io.BytesIO(b"i"))
    return buf.getvalue()


def test_add_unpack_false_copies_local_archives(dirs) -> None:
    with open(os.path.join(dirs.ctx, "a.tar"), "wb") as f:
        f.write(_tar())
    copy_into_root(req(dirs, ["a.tar"], "/k/", is_add=True, unpack=False))
    assert names(dirs.root) == {"/k", "/k/a.tar"}
    copy_into_root(req(dirs, ["a.tar"], "/u/", is_add=True))
    assert "/u/inside" in names(dirs.root)

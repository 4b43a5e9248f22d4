"""BuildKit's own integration cases (frontend/dockerfile/dockerfile_copy_test.go), replayed on a root."""
from __future__ import annotations

import os
import socket
import stat

from executor.commands.copying.files import CopyRequest, copy_into_root
from tests.test_copy.helpers import entry, mkdir, symlink, write


def copy(d, sources, dest, workdir="/", **kw) -> list[str]:
    return copy_into_root(CopyRequest(sources=sources, dest=dest, source_root=d.ctx, root=d.root,
                                      workdir=workdir, **kw))


def data(d, path: str) -> bytes:
    e = entry(os.path.join(d.root, path.lstrip("/")))
    assert e.data is not None, path
    return e.data


def test_copy_wildcards(dirs) -> None:
    write(dirs.ctx, "foo.go", "foo-contents", 0o600)
    write(dirs.ctx, "bar.go", "bar-contents", 0o600)
    mkdir(dirs.ctx, "sub/dir1/dir2", 0o700)
    write(dirs.ctx, "sub/dir1/dir2/foo", "foo-contents", 0o600)
    copy(dirs, ["*.go"], "/gofiles/")
    copy(dirs, ["f*.go"], "foo2.go")
    copy(dirs, ["sub/*"], "/subdest/")
    copy(dirs, ["sub/*/dir2/foo"], "/subdest2/")
    copy(dirs, ["sub/*/dir2/foo"], "/subdest3/bar")
    copy(dirs, ["."], "all/")
    copy(dirs, ["sub/dir1/"], "subdest4")
    copy(dirs, ["sub/dir1/."], "subdest5")
    copy(dirs, ["sub/dir1"], "subdest6")
    for path, expected in [("gofiles/foo.go", b"foo-contents"), ("gofiles/bar.go", b"bar-contents"),
                           ("foo2.go", b"foo-contents"), ("subdest/dir2/foo", b"foo-contents"),
                           ("subdest2/foo", b"foo-contents"), ("subdest3/bar", b"foo-contents"),
                           ("all/foo.go", b"foo-contents"), ("subdest4/dir2/foo", b"foo-contents"),
                           ("subdest5/dir2/foo", b"foo-contents"), ("subdest6/dir2/foo", b"foo-contents")]:
        assert data(dirs, path) == expected, path


def test_copy_chmod(dirs) -> None:
    write(dirs.ctx, "foo", "foo-contents", 0o600)
    write(dirs.ctx, "bar", "bar-contents", 0o700)
    mkdir(dirs.root, "out", 0o777)
    copy(dirs, ["foo"], "/", chmod="0644")
    copy(dirs, ["bar"], "/baz", chmod="777")
    copy(dirs, ["foo"], "/foobis", chmod="0")
    copy(dirs, ["foo"], "/parent/foo", chmod="777")
    copy(dirs, ["foo"], "/parent/sub/foo", chmod="770")
    copy(dirs, ["foo"], "/footer", chmod="755")
    modes = {p: entry(os.path.join(dirs.root, p)).mode for p in ("foo", "baz", "foobis", "parent",
                                                                 "parent/sub", "footer")}
    assert modes == {"foo": 0o644, "baz": 0o777, "foobis": 0, "parent": 0o777, "parent/sub": 0o770,
                     "footer": 0o755}


def test_copy_relative(dirs) -> None:
    write(dirs.ctx, "foo", "hello", 0o600)
    copy(dirs, ["foo"], "./", workdir="/test1/test2")
    copy_into_root(CopyRequest(["foo"], "./bar/baz", dirs.ctx, dirs.root, workdir="/test1/test2", is_add=True))
    copy(dirs, ["foo"], "./bar/baz2", workdir="/test1/test2")
    copy(dirs, ["foo"], "./", workdir="/test1")
    copy(dirs, ["foo"], "/test3/", workdir="/test1")
    copy(dirs, ["."], ".", workdir="/test4")
    copy(dirs, ["foo"], "../", workdir="/test5/test6")
    for path in ("test1/test2/foo", "test1/test2/bar/baz", "test1/test2/bar/baz2", "test1/foo", "test3/foo",
                 "test4/foo", "test5/foo"):
        assert data(dirs, path) == b"hello", path


def test_copy_symlinks_and_follow_all(dirs) -> None:
    write(dirs.ctx, "bar", "bar-contents", 0o600)
    symlink(dirs.ctx, "foo", "bar")
    mkdir(dirs.ctx, "sub", 0o700)
    write(dirs.ctx, "sub/lfile", "lfile-contents", 0o600)
    symlink(dirs.ctx, "sub/l0", "subfile")
    write(dirs.ctx, "sub/subfile", "subfile-contents", 0o600)
    symlink(dirs.ctx, "sub/l1", "second")
    symlink(dirs.ctx, "sub/second", "baz")
    write(dirs.ctx, "sub/baz", "baz-contents", 0o600)
    copy(dirs, ["foo"], "/")
    copy(dirs, ["sub/l*"], "alllinks/")
    assert data(dirs, "foo") == b"bar-contents"
    assert data(dirs, "alllinks/l0") == b"subfile-contents"
    assert data(dirs, "alllinks/lfile") == b"lfile-contents"
    assert data(dirs, "alllinks/l1") == b"baz-contents"
    mkdir(dirs.ctx, "d", 0o700)
    symlink(dirs.ctx, "d/sub", "../bar")  # #1197
    copy(dirs, ["d"], "/")
    copy(dirs, ["d/sub"], "bar")
    assert entry(os.path.join(dirs.root, "sub")).target == "../bar"
    assert data(dirs, "bar") == b"bar-contents"


def test_copy_through_symlinks(dirs) -> None:
    mkdir(dirs.ctx, "sub", 0o700)
    write(dirs.ctx, "sub/foo", "contents", 0o600)
    symlink(dirs.ctx, "link", "sub")
    copy(dirs, ["link/foo"], ".")
    assert data(dirs, "foo") == b"contents"
    mkdir(dirs.ctx, "out/sub")
    symlink(dirs.ctx, "sub2", "out/sub")
    symlink(dirs.ctx, "sub3", "/out/sub")
    write(dirs.ctx, "out/sub/data", "data")
    copy(dirs, ["/sub3/data"], "x", from_context=False)
    copy(dirs, ["/sub2/data"], "y", from_context=False)
    assert data(dirs, "x") == data(dirs, "y") == b"data"


def test_copy_chown_existing_dir(dirs) -> None:
    write(dirs.ctx, "file", "", uid=100, gid=200)
    mkdir(dirs.ctx, "dir/subdir", uid=101, gid=201)
    write(dirs.ctx, "dir/subdir/nestedfile", "", uid=102, gid=202)
    os.chown(os.path.join(dirs.ctx, "dir"), 100, 200)
    mkdir(dirs.root, "existingdir/existingsubdir", uid=501, gid=601)
    os.chown(os.path.join(dirs.root, "existingdir"), 500, 600)
    copy(dirs, ["/file"], ".", from_context=False)
    copy(dirs, ["/dir"], "/dir", from_context=False)
    copy(dirs, ["/dir/."], "/existingdir", from_context=False)
    owners = {p: (lambda e: (e.uid, e.gid))(entry(os.path.join(dirs.root, p))) for p in (
        "file", "dir", "dir/subdir", "dir/subdir/nestedfile", "existingdir", "existingdir/existingsubdir",
        "existingdir/subdir", "existingdir/subdir/nestedfile")}
    assert owners == {"file": (100, 200), "dir": (0, 0), "dir/subdir": (101, 201),
                      "dir/subdir/nestedfile": (102, 202), "existingdir": (500, 600),
                      "existingdir/existingsubdir": (501, 601), "existingdir/subdir": (101, 201),
                      "existingdir/subdir/nestedfile": (102, 202)}


def test_copy_socket_from_the_context_becomes_a_regular_file(dirs) -> None:
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(os.path.join(dirs.ctx, "socket.sock"))
        copy(dirs, ["."], "/")
    finally:
        sock.close()
    st = os.lstat(os.path.join(dirs.root, "socket.sock"))
    assert stat.S_ISREG(st.st_mode) and st.st_size == 0

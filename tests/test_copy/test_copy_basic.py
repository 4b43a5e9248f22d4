"""Sources, wildcards, destinations, errors: COPY as BuildKit/docker."""
from __future__ import annotations

import os

import pytest

from executor.commands.copying.files import CopyError, CopyRequest, copy_into_root
from tests.test_copy.helpers import T0, entry, mkdir, names, tree, write


def req(d, sources, dest, **kw) -> CopyRequest:
    return CopyRequest(sources=sources, dest=dest, source_root=d.ctx, root=d.root, **kw)


def test_file_to_dir_slash_creates_parents(dirs) -> None:
    write(dirs.ctx, "a.txt", "A")
    paths = copy_into_root(req(dirs, ["a.txt"], "/usr/src/app/"))
    assert paths == ["/usr", "/usr/src", "/usr/src/app", "/usr/src/app/a.txt"]
    t = tree(dirs.root)
    assert t["/usr/src/app/a.txt"].data == b"A"
    for p in ("/usr", "/usr/src", "/usr/src/app"):
        assert (t[p].kind, t[p].mode, t[p].uid, t[p].gid) == ("dir", 0o755, 0, 0)


def test_file_to_name_renames(dirs) -> None:
    write(dirs.ctx, "a.txt", "A")
    assert copy_into_root(req(dirs, ["a.txt"], "/opt/b.bin")) == ["/opt", "/opt/b.bin"]
    assert names(dirs.root) == {"/opt", "/opt/b.bin"}


def test_file_to_existing_dir_without_slash_lands_inside(dirs) -> None:
    write(dirs.ctx, "a.txt", "A")
    mkdir(dirs.root, "opt")
    assert copy_into_root(req(dirs, ["a.txt"], "/opt")) == ["/opt/a.txt"]
    assert entry(os.path.join(dirs.root, "opt/a.txt")).data == b"A"


def test_directory_copies_its_contents(dirs) -> None:
    write(dirs.ctx, "src/one.txt", "1")
    write(dirs.ctx, "src/sub/two.txt", "2")
    paths = copy_into_root(req(dirs, ["src"], "/app"))
    assert names(dirs.root) == {"/app", "/app/one.txt", "/app/sub", "/app/sub/two.txt"}
    assert paths == ["/app", "/app/one.txt", "/app/sub", "/app/sub/two.txt"]


def test_trailing_slash_and_dot_in_source_are_the_same(dirs) -> None:
    write(dirs.ctx, "src/one.txt", "1")
    copy_into_root(req(dirs, ["./src/"], "/a/"))
    copy_into_root(req(dirs, ["src/."], "/b"))
    assert {"/a/one.txt", "/b/one.txt"} <= names(dirs.root)


def test_whole_context(dirs) -> None:
    write(dirs.ctx, "x", "x")
    write(dirs.ctx, "d/y", "y")
    copy_into_root(req(dirs, ["."], "."))
    assert names(dirs.root) == {"/x", "/d", "/d/y"}


def test_relative_dest_uses_workdir(dirs) -> None:
    write(dirs.ctx, "a.txt", "A")
    copy_into_root(req(dirs, ["a.txt"], "sub/", workdir="/srv/www"))
    copy_into_root(req(dirs, ["a.txt"], ".", workdir="/srv/www"))
    copy_into_root(req(dirs, ["a.txt"], "renamed", workdir="/srv/www"))
    assert {"/srv/www/sub/a.txt", "/srv/www/a.txt", "/srv/www/renamed"} <= names(dirs.root)


def test_wildcards(dirs) -> None:
    for n in ("a.txt", "b.txt", "c.md", "arr[0].txt", "index.js", "index.ts", "d/e.txt"):
        write(dirs.ctx, n, n)
    copy_into_root(req(dirs, ["*.txt"], "/t/"))
    assert names(dirs.root) == {"/t", "/t/a.txt", "/t/b.txt", "/t/arr[0].txt"}
    copy_into_root(req(dirs, ["index.?s"], "/i/"))
    copy_into_root(req(dirs, ["arr[[]0].txt"], "/e/"))
    copy_into_root(req(dirs, ["[ab].txt"], "/c/"))
    copy_into_root(req(dirs, ["*/e.txt"], "/n/"))  # a pattern across levels
    got = names(dirs.root)
    assert {"/i/index.js", "/i/index.ts", "/e/arr[0].txt", "/c/a.txt", "/c/b.txt", "/n/e.txt"} <= got
    assert "/e/a.txt" not in got and "/c/arr[0].txt" not in got


def test_wildcard_matching_a_directory_copies_its_contents(dirs) -> None:
    write(dirs.ctx, "pkg-a/x", "x")
    write(dirs.ctx, "pkg-b/y", "y")
    copy_into_root(req(dirs, ["pkg-*"], "/p/"))
    assert names(dirs.root) == {"/p", "/p/x", "/p/y"}


def test_wildcard_single_match_to_file_dest_is_fine(dirs) -> None:
    write(dirs.ctx, "only.conf", "c")
    copy_into_root(req(dirs, ["*.conf"], "/etc/app.conf"))
    assert entry(os.path.join(dirs.root, "etc/app.conf")).data == b"c"


def test_several_sources_need_a_slash(dirs) -> None:
    write(dirs.ctx, "a", "a")
    write(dirs.ctx, "b", "b")
    with pytest.raises(CopyError, match="When using COPY with more than one source file, the destination "
                                         "must be a directory and end with a /"):
        copy_into_root(req(dirs, ["a", "b"], "/x"))
    with pytest.raises(CopyError, match="more than one source file"):
        copy_into_root(req(dirs, ["?"], "/x"))
    assert names(dirs.root) == set()
    mkdir(dirs.root, "x")  # an existing directory is accepted (kaniko, BuildKit)
    copy_into_root(req(dirs, ["a", "b"], "/x"))
    assert {"/x/a", "/x/b"} <= names(dirs.root)


def test_missing_source_is_named(dirs) -> None:
    with pytest.raises(CopyError, match='"/nope": not found'):
        copy_into_root(req(dirs, ["nope"], "/x/"))


def test_wildcard_matching_nothing_copies_nothing(dirs) -> None:
    """BuildKit's AllowEmptyWildcard (parity case wildcard_no_match): no error, nothing created."""
    assert copy_into_root(req(dirs, ["*.nope"], "/x/")) == []
    assert names(dirs.root) == set()


def test_empty_wildcard_is_fine_next_to_other_sources(dirs) -> None:
    write(dirs.ctx, "a", "a")
    copy_into_root(req(dirs, ["a", "*.nope"], "/x/"))
    assert names(dirs.root) == {"/x", "/x/a"}


def test_parent_navigation_is_clamped_to_the_context(dirs, tmp_path) -> None:
    write(str(tmp_path), "secret", "outside")  # beside the context
    write(dirs.ctx, "secret", "inside")
    copy_into_root(req(dirs, ["../secret"], "/s"))
    assert entry(os.path.join(dirs.root, "s")).data == b"inside"
    with pytest.raises(CopyError, match="not found"):
        copy_into_root(req(dirs, ["../../host/../nothing"], "/t"))


def test_url_source_refused_for_copy(dirs) -> None:
    with pytest.raises(CopyError, match="can't be a URL for COPY"):
        copy_into_root(req(dirs, ["http://127.0.0.1:1/x"], "/x"))


def test_copy_into_existing_dir_merges(dirs) -> None:
    write(dirs.root, "app/keep.txt", "old", mtime_ns=None)
    write(dirs.root, "app/over.txt", "old", mtime_ns=None)
    write(dirs.ctx, "src/over.txt", "new")
    write(dirs.ctx, "src/add.txt", "add")
    copy_into_root(req(dirs, ["src"], "/app"))
    t = tree(dirs.root)
    assert t["/app/keep.txt"].data == b"old"
    assert t["/app/over.txt"].data == b"new" and t["/app/over.txt"].mtime_ns == T0
    assert t["/app/add.txt"].data == b"add"


def test_overwriting_a_file_replaces_it_not_its_other_links(dirs) -> None:
    write(dirs.root, "a", "old", mtime_ns=None)
    os.link(os.path.join(dirs.root, "a"), os.path.join(dirs.root, "b"))
    write(dirs.ctx, "a", "new")
    copy_into_root(req(dirs, ["a"], "/a"))
    t = tree(dirs.root)
    assert t["/a"].data == b"new" and t["/b"].data == b"old" and t["/a"].ino != t["/b"].ino


def test_file_onto_directory_child_is_an_error(dirs) -> None:
    mkdir(dirs.root, "app/conf")
    write(dirs.ctx, "src/conf", "file")
    with pytest.raises(CopyError, match="cannot replace directory /app/conf with file"):
        copy_into_root(req(dirs, ["src"], "/app"))


def test_directory_onto_file_is_an_error(dirs) -> None:
    write(dirs.root, "app", "a file")
    write(dirs.ctx, "src/x", "x")
    with pytest.raises(CopyError, match="non-directory /app"):
        copy_into_root(req(dirs, ["src"], "/app"))
    write(dirs.root, "etc/conf", "a file")
    write(dirs.ctx, "tree/conf/x", "x")
    with pytest.raises(CopyError, match="non-directory /etc/conf"):
        copy_into_root(req(dirs, ["tree"], "/etc/"))


def test_file_dest_slash_under_a_file_is_an_error(dirs) -> None:
    write(dirs.root, "app", "a file")
    write(dirs.ctx, "a", "a")
    with pytest.raises(CopyError, match="/app"):
        copy_into_root(req(dirs, ["a"], "/app/"))


def test_context_inside_the_root_is_not_copied_into_itself(dirs) -> None:
    """Production: root is "/" and the context (e.g. /workspace) lies inside it."""
    ctx = os.path.join(dirs.root, "workspace")
    write(ctx, "a.txt", "A")
    write(ctx, "src/b.txt", "B")
    paths = copy_into_root(CopyRequest(["."], "/workspace/out/", ctx, dirs.root))
    got = names(dirs.root)
    assert {"/workspace/out/a.txt", "/workspace/out/src/b.txt"} <= got
    assert not any(p.startswith("/workspace/out/out") for p in got)
    copy_into_root(CopyRequest(["a.txt", "src"], "/workspace/", ctx, dirs.root))  # onto itself
    assert entry(os.path.join(ctx, "a.txt")).data == b"A" and "/workspace/out" in paths


def test_os_errors_become_copy_errors_naming_the_path(dirs) -> None:
    write(dirs.ctx, "ok", "ok")
    write(dirs.root, "x", "a file")
    with pytest.raises(CopyError, match='cannot use /x/y: "/x" is not a directory'):
        copy_into_root(req(dirs, ["ok"], "/x/y/z"))
    with pytest.raises(CopyError, match="COPY failed: File name too long: image path /n{300}"):
        copy_into_root(req(dirs, ["ok"], "/" + "n" * 300))  # ENAMETOOLONG from the kernel

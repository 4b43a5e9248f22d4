"""Symlinks on both sides: sources followed within the source root, destinations within the image root,
and nothing ever written outside the root (sentinel directory beside it)."""
from __future__ import annotations

import os

import pytest

from executor.commands.copying.files import CopyError, CopyRequest, copy_into_root
from tests.test_copy.helpers import entry, mkdir, names, symlink, tree, write


def req(d, sources, dest, **kw) -> CopyRequest:
    return CopyRequest(sources=sources, dest=dest, source_root=d.ctx, root=d.root, **kw)


def assert_sentinel_untouched(d) -> None:
    assert os.listdir(d.sentinel) == []


def test_source_symlink_is_followed_and_keeps_its_name(dirs) -> None:
    write(dirs.ctx, "real.txt", "R", 0o600)
    symlink(dirs.ctx, "link.txt", "real.txt")
    copy_into_root(req(dirs, ["link.txt"], "/d/"))
    e = entry(os.path.join(dirs.root, "d/link.txt"))
    assert (e.kind, e.data, e.mode) == ("file", b"R", 0o600)


def test_source_symlink_to_directory_copies_the_directory_contents(dirs) -> None:
    write(dirs.ctx, "real/x", "x")
    symlink(dirs.ctx, "alias", "real")
    copy_into_root(req(dirs, ["alias"], "/d"))
    assert names(dirs.root) == {"/d", "/d/x"}


def test_absolute_source_symlink_resolves_inside_the_context(dirs, tmp_path) -> None:
    write(dirs.ctx, "etc/conf", "inside")
    symlink(dirs.ctx, "c", "/etc/conf")
    copy_into_root(req(dirs, ["c"], "/c"))
    assert entry(os.path.join(dirs.root, "c")).data == b"inside"


def test_source_symlink_leaving_the_context_is_not_followed_out(dirs, tmp_path) -> None:
    write(str(tmp_path), "outside.txt", "secret")
    symlink(dirs.ctx, "escape", "../outside.txt")
    symlink(dirs.ctx, "abs", str(tmp_path / "outside.txt"))
    for src in ("escape", "abs"):
        with pytest.raises(CopyError, match="is a symlink to .* not found in the build context"):
            copy_into_root(req(dirs, [src], "/x"))
    assert names(dirs.root) == set()


def test_symlinks_inside_a_directory_are_copied_as_links(dirs, tmp_path) -> None:
    write(dirs.ctx, "d/real", "r")
    symlink(dirs.ctx, "d/rel", "real")
    symlink(dirs.ctx, "d/out", "../../outside")
    symlink(dirs.ctx, "d/abs", "/etc/passwd")
    copy_into_root(req(dirs, ["d"], "/d"))
    t = tree(dirs.root)
    assert {p: t[p].target for p in ("/d/rel", "/d/out", "/d/abs")} == {
        "/d/rel": "real", "/d/out": "../../outside", "/d/abs": "/etc/passwd"}


def test_wildcard_does_not_descend_through_links_but_follows_a_matched_link(dirs) -> None:
    write(dirs.ctx, "real/a.txt", "a")
    symlink(dirs.ctx, "lnk", "real")
    symlink(dirs.ctx, "b.txt", "real/a.txt")
    copy_into_root(req(dirs, ["*/a.txt", "*.txt"], "/w/"))
    t = tree(dirs.root)
    assert set(t) == {"/w", "/w/a.txt", "/w/b.txt"}   # lnk/a.txt is not reached through the link
    assert t["/w/b.txt"].kind == "file" and t["/w/b.txt"].data == b"a"


def test_dest_through_symlinks_stays_in_the_root(dirs) -> None:
    mkdir(dirs.root, "opt/bin")
    mkdir(dirs.root, "usr/local")
    symlink(dirs.root, "usr/local/bin", "/opt/bin")
    write(dirs.ctx, "tool", "t", 0o755)
    paths = copy_into_root(req(dirs, ["tool"], "/usr/local/bin/"))
    assert paths == ["/opt/bin/tool"]
    assert entry(os.path.join(dirs.root, "opt/bin/tool")).data == b"t"
    assert entry(os.path.join(dirs.root, "usr/local/bin")).kind == "link"


@pytest.mark.parametrize("target", ["/../../host", "../../host", "../host"])
def test_hostile_links_in_the_root_never_write_outside(dirs, target) -> None:
    symlink(dirs.root, "etc", target)
    write(dirs.ctx, "passwd", "pw")
    write(dirs.ctx, "tree/etc/shadow", "sh")
    write(dirs.ctx, "tree/etc/sub/x", "x")
    copy_into_root(req(dirs, ["passwd"], "/etc/"))
    copy_into_root(req(dirs, ["passwd"], "/etc/renamed"))
    copy_into_root(req(dirs, ["tree"], "/"))
    copy_into_root(req(dirs, ["tree/etc"], "/etc/deeper/"))
    assert_sentinel_untouched(dirs)
    got = names(dirs.root)
    assert {"/host/passwd", "/host/renamed", "/host/shadow", "/host/sub/x", "/host/deeper/shadow"} <= got


def test_dangling_dest_link_is_written_through_within_the_root(dirs) -> None:
    symlink(dirs.root, "app.conf", "/../../host/conf/app.conf")
    write(dirs.ctx, "c", "c")
    paths = copy_into_root(req(dirs, ["c"], "/app.conf"))
    assert_sentinel_untouched(dirs)
    assert paths == ["/host", "/host/conf", "/host/conf/app.conf"]
    assert entry(os.path.join(dirs.root, "host/conf/app.conf")).data == b"c"


def test_file_replaces_a_symlink_inside_a_directory_copy(dirs) -> None:
    mkdir(dirs.root, "app")
    symlink(dirs.root, "app/config", "/../../host/config")
    write(dirs.ctx, "src/config", "mine")
    copy_into_root(req(dirs, ["src"], "/app"))
    e = entry(os.path.join(dirs.root, "app/config"))
    assert (e.kind, e.data) == ("file", b"mine")
    assert_sentinel_untouched(dirs)


def test_directory_merges_through_a_symlinked_dir_inside_the_root(dirs) -> None:
    """Merged-/usr images: /lib -> usr/lib; copying a rootfs with lib/ writes into /usr/lib."""
    mkdir(dirs.root, "usr/lib")
    symlink(dirs.root, "lib", "usr/lib")
    write(dirs.ctx, "rootfs/lib/libx.so", "so")
    paths = copy_into_root(req(dirs, ["rootfs"], "/"))
    assert entry(os.path.join(dirs.root, "lib")).kind == "link"
    assert entry(os.path.join(dirs.root, "usr/lib/libx.so")).data == b"so"
    assert "/usr/lib/libx.so" in paths


def test_directory_onto_a_link_leaving_the_root_stays_inside(dirs) -> None:
    symlink(dirs.root, "var", "/../../host")
    write(dirs.ctx, "rootfs/var/log/x", "x")
    with pytest.raises(CopyError, match="non-directory /var"):
        copy_into_root(req(dirs, ["rootfs"], "/"))  # /var resolves to a missing /host: refused
    assert_sentinel_untouched(dirs)

"""Owners, modes, times, xattrs, hard links and special files, as fsutil's copy keeps them."""
from __future__ import annotations

import os
import stat

import pytest

from executor.commands.copying.files import CopyRequest, copy_into_root
from tests.test_copy.helpers import T0, entry, mkdir, symlink, tree, write

T1 = 1_500_000_000_987_654_321


def req(d, sources, dest, **kw) -> CopyRequest:
    return CopyRequest(sources=sources, dest=dest, source_root=d.ctx, root=d.root, **kw)


def _stage_tree(base: str) -> None:
    mkdir(base, "app", 0o750, T1, uid=1000, gid=1000)
    write(base, "app/run", "#!/bin/sh", 0o4755, T0, uid=1000, gid=50)
    write(base, "app/data", "d", 0o640, T0, uid=33, gid=33)
    mkdir(base, "app/tmp", 0o1777, T0, uid=5, gid=5)
    symlink(base, "app/current", "run", mtime_ns=T0)
    os.lchown(os.path.join(base, "app/current"), 7, 8)
    mkdir(base, "app", 0o750, T1, uid=1000, gid=1000)  # times of app after its children


def test_context_files_become_root_owned_with_modes_and_times_kept(dirs) -> None:
    _stage_tree(dirs.ctx)
    copy_into_root(req(dirs, ["app"], "/srv/"))
    t = tree(dirs.root)
    assert (t["/srv/run"].mode, t["/srv/run"].uid, t["/srv/run"].gid) == (0o4755, 0, 0)  # setuid kept
    assert (t["/srv/data"].mode, t["/srv/data"].mtime_ns) == (0o640, T0)
    assert (t["/srv/tmp"].kind, t["/srv/tmp"].mode, t["/srv/tmp"].uid) == ("dir", 0o1777, 0)
    assert (t["/srv/current"].kind, t["/srv/current"].target) == ("link", "run")
    assert (t["/srv/current"].mtime_ns, t["/srv/current"].uid) == (T0, 0)
    assert t["/srv/tmp"].mtime_ns == T0


def test_from_stage_keeps_owners(dirs) -> None:
    _stage_tree(dirs.ctx)
    copy_into_root(req(dirs, ["/app"], "/srv", from_context=False))
    t = tree(dirs.root)
    assert (t["/srv/run"].uid, t["/srv/run"].gid, t["/srv/run"].mode) == (1000, 50, 0o4755)
    assert (t["/srv/data"].uid, t["/srv/tmp"].uid) == (33, 5)
    assert (t["/srv/current"].uid, t["/srv/current"].gid) == (7, 8)


def test_destination_dir_of_a_directory_copy(dirs) -> None:
    """BuildKit creates the destination with 0755/root (not the source dir's mode or owner) and gives it
    the source directory's times; an existing destination keeps mode and owner, takes the times."""
    _stage_tree(dirs.ctx)
    copy_into_root(req(dirs, ["/app"], "/new/srv", from_context=False))
    mkdir(dirs.root, "old", 0o700, None, uid=9, gid=9)
    copy_into_root(req(dirs, ["/app"], "/old", from_context=False))
    t = tree(dirs.root)
    assert (t["/new/srv"].mode, t["/new/srv"].uid, t["/new/srv"].mtime_ns) == (0o755, 0, T1)
    assert (t["/old"].mode, t["/old"].uid, t["/old"].mtime_ns) == (0o700, 9, T1)
    assert t["/new"].mtime_ns != T1


def test_merging_onto_existing_subdirectories_takes_source_metadata(dirs) -> None:
    mkdir(dirs.root, "etc/app", 0o700, None, uid=3, gid=3)
    mkdir(dirs.ctx, "rootfs/etc/app", 0o755, T0, uid=0, gid=0)
    write(dirs.ctx, "rootfs/etc/app/x", "x")
    mkdir(dirs.ctx, "rootfs/etc/app", 0o755, T0)
    copy_into_root(req(dirs, ["rootfs"], "/"))
    e = entry(os.path.join(dirs.root, "etc/app"))
    assert (e.mode, e.uid, e.mtime_ns) == (0o755, 0, T0)


def test_chown_applies_to_everything_and_to_created_parents(dirs) -> None:
    _stage_tree(dirs.ctx)
    write(dirs.ctx, "f", "f")
    mkdir(dirs.root, "existing", 0o755, None)
    paths = copy_into_root(req(dirs, ["app", "f"], "/existing/a/b/", chown=(1234, 5678)))
    t = tree(dirs.root)
    for p in ("/existing/a", "/existing/a/b", "/existing/a/b/run", "/existing/a/b/tmp",
              "/existing/a/b/current", "/existing/a/b/f"):
        assert (t[p].uid, t[p].gid) == (1234, 5678), p
    assert t["/existing"].uid == 0  # not created by the copy: untouched
    assert t["/existing/a/b/run"].mode == 0o4755  # chown did not eat the setuid bit
    assert paths[:2] == ["/existing/a", "/existing/a/b"] and "/existing" not in paths


def test_chmod_octal_files_dirs_and_created_parents(dirs) -> None:
    _stage_tree(dirs.ctx)
    copy_into_root(req(dirs, ["app"], "/x/y/", chmod=0o640))
    t = tree(dirs.root)
    assert t["/x"].mode == 0o640 and t["/x/y"].mode == 0o640  # BuildKit: created dirs get the mode
    assert t["/x/y/run"].mode == 0o640          # special bits replaced
    assert t["/x/y/tmp"].mode == 0o640          # directories inside too
    assert t["/x/y/current"].kind == "link"


def test_created_directories_take_the_octal_mode_in_every_form(dirs) -> None:
    """Issue 20 reproduction 3, as tonistiigi/fsutil's copy/copy.go now does it (Copy and prepareTargetDir
    call MkdirAll with the octal mode, #228; copy/mkdir.go corrects an interfering umask, c3a05e8): the
    form of the instruction does not matter, setgid never reaches a directory, the process umask neither
    (parity case copy_chmod_created_dirs: docker 28.5.2 masks with dockerd's umask 022, 26.1.5 makes 0755)."""
    mkdir(dirs.ctx, "qux", 0o755)
    write(dirs.ctx, "qux/qup", "p")
    mkdir(dirs.ctx, "qux/quw", 0o755)
    write(dirs.ctx, "qux/quw/que", "e")
    write(dirs.ctx, "foo.bar", "f")
    old = os.umask(0o077)
    try:
        copy_into_root(req(dirs, ["qux"], "/copy777", chmod=0o777))
        copy_into_root(req(dirs, ["qux/qup"], "/newdir/sub/", chmod=0o777))
        copy_into_root(req(dirs, ["foo.bar"], "/non-existent/path/foo.bar", chmod=0o640))
        copy_into_root(req(dirs, ["foo.bar"], "/sg/path/foo.bar", chmod=0o2775))
    finally:
        os.umask(old)
    t = tree(dirs.root)
    assert [t[p].mode for p in ("/copy777", "/copy777/quw", "/copy777/qup")] == [0o777] * 3
    assert [t[p].mode for p in ("/newdir", "/newdir/sub", "/newdir/sub/qup")] == [0o777] * 3
    assert [t[p].mode for p in ("/non-existent", "/non-existent/path")] == [0o640, 0o640]
    assert [t[p].mode for p in ("/sg", "/sg/path", "/sg/path/foo.bar")] == [0o775, 0o775, 0o2775]


def test_a_created_directory_destination_is_made_not_copied(dirs) -> None:
    """fsutil's prepareTargetDir makes the destination of a directory copy with MkdirAll (0755 or the
    octal --chmod, root or the --chown owner); the source directory's own mode and owner do not reach it,
    its entries keep theirs (parity case copy_dir_dest_created)."""
    mkdir(dirs.ctx, "priv", 0o700, T1, uid=1000, gid=50)
    write(dirs.ctx, "priv/f", "x", 0o600, T0, uid=1000, gid=50)
    mkdir(dirs.ctx, "priv", 0o700, T1, uid=1000, gid=50)  # times of priv after its child
    copy_into_root(req(dirs, ["priv"], "/new", from_context=False))
    copy_into_root(req(dirs, ["priv"], "/chowned", chown=(7, 8)))
    t = tree(dirs.root)
    assert (t["/new"].mode, t["/new"].uid, t["/new"].gid, t["/new"].mtime_ns) == (0o755, 0, 0, T1)
    assert (t["/new/f"].mode, t["/new/f"].uid, t["/new/f"].gid) == (0o600, 1000, 50)
    assert (t["/chowned"].mode, t["/chowned"].uid, t["/chowned"].gid) == (0o755, 7, 8)


def test_chmod_symbolic(dirs) -> None:
    _stage_tree(dirs.ctx)
    copy_into_root(req(dirs, ["app"], "/x/", chmod="u=rwX,go=rX"))
    t = tree(dirs.root)
    assert t["/x"].mode == 0o755                 # created: 0755 with a symbolic mode
    assert t["/x/run"].mode == 0o755             # executable kept; "u=" clears the setuid bit (BSD)
    assert t["/x/data"].mode == 0o644
    assert t["/x/tmp"].mode == 0o1755


def test_hard_links_within_one_copy(dirs) -> None:
    write(dirs.ctx, "bin/busybox", "bb", 0o755)
    for n in ("sh", "ls"):
        os.link(os.path.join(dirs.ctx, "bin/busybox"), os.path.join(dirs.ctx, "bin", n))
    write(dirs.ctx, "bin/other", "o")
    copy_into_root(req(dirs, ["/"], "/", from_context=False))
    t = tree(dirs.root)
    inos = {t[f"/bin/{n}"].ino for n in ("busybox", "sh", "ls")}
    assert len(inos) == 1 and t["/bin/other"].ino not in inos
    assert os.lstat(os.path.join(dirs.root, "bin/sh")).st_nlink == 3


def test_hard_links_kept_within_a_source_not_across_sources(dirs) -> None:
    """BuildKit copies each source as written with its own copier (parity case hardlinks_across_sources)."""
    write(dirs.ctx, "a", "x")
    os.link(os.path.join(dirs.ctx, "a"), os.path.join(dirs.ctx, "b"))
    copy_into_root(req(dirs, ["a", "b"], "/two/"))
    copy_into_root(req(dirs, ["[ab]"], "/one/"))
    t = tree(dirs.root)
    assert t["/two/a"].ino != t["/two/b"].ino
    assert t["/one/a"].ino == t["/one/b"].ino


def test_xattrs_and_file_capabilities(dirs, file_capabilities) -> None:
    path = write(dirs.ctx, "ping", "elf", 0o755)
    cap = bytes.fromhex("0100000200200000000000000000000000000000")  # v2, cap_net_raw permitted
    os.setxattr(path, "security.capability", cap)
    os.setxattr(path, "user.note", b"hello")
    copy_into_root(req(dirs, ["ping"], "/bin/", chown=(1, 1)))
    out = os.path.join(dirs.root, "bin/ping")
    assert os.getxattr(out, "security.capability") == cap  # copied after chown, which drops it
    assert os.getxattr(out, "user.note") == b"hello"


def test_device_nodes_fifos_and_sockets_from_a_stage(dirs) -> None:
    mkdir(dirs.ctx, "dev")
    os.mknod(os.path.join(dirs.ctx, "dev/null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(os.path.join(dirs.ctx, "dev/loop0"), stat.S_IFBLK | 0o660, os.makedev(7, 0))
    os.mkfifo(os.path.join(dirs.ctx, "dev/fifo"), 0o600)
    os.mknod(os.path.join(dirs.ctx, "dev/sock"), stat.S_IFSOCK | 0o755)
    for name, mode in (("null", 0o666), ("loop0", 0o660), ("fifo", 0o600)):
        os.chmod(os.path.join(dirs.ctx, "dev", name), mode)  # no umask
    copy_into_root(req(dirs, ["/dev"], "/dev", from_context=False))
    t = tree(dirs.root)
    assert (t["/dev/null"].kind, t["/dev/null"].mode) == ("chr", 0o666)
    assert os.lstat(os.path.join(dirs.root, "dev/null")).st_rdev == os.makedev(1, 3)
    assert (t["/dev/loop0"].kind, t["/dev/loop0"].mode) == ("blk", 0o660)
    assert os.lstat(os.path.join(dirs.root, "dev/loop0")).st_rdev == os.makedev(7, 0)
    assert (t["/dev/fifo"].kind, t["/dev/fifo"].mode) == ("fifo", 0o600)
    assert t["/dev/sock"].kind == "sock"

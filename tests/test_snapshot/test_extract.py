from __future__ import annotations

import os
import stat
import subprocess

import pytest
import xxhash

from snapshot import LayerFormatError, SnapshotError, UnsafeEntryError

from .helpers import E, make_tar, outside_snapshot, tree, write_blob

CAP = b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"  # cap_net_raw+ep


def extract(snap, tmp_path, entries, name="layer", compression="none"):
    return snap.extract(write_blob(tmp_path, name + ".tar", make_tar(entries, compression)), name)


def everything():
    return [
        E("etc", "dir", mode=0o755, mtime=1_500_000_000),
        E("etc/passwd", data=b"root:x:0:0\n", mode=0o644, mtime=1_500_000_001),
        E("usr/bin/ping", data=b"\x7fELF ping", mode=0o4755, uid=0, gid=0,
          pax={"SCHILY.xattr.security.capability": CAP.decode("latin-1")}),
        E("usr/bin/sudo", data=b"sudo", mode=0o4711, uid=0, gid=0),
        E("srv", "dir", mode=0o2775, uid=1000, gid=1000, mtime=1_400_000_000),
        E("srv/own", data=b"x", mode=0o640, uid=1000, gid=50),
        E("tmp", "dir", mode=0o1777),
        E("bin", "symlink", link="usr/bin", mode=0o777),
        E("abs", "symlink", link="/etc/passwd", mode=0o777),
        E("dangling", "symlink", link="/no/such/thing", mode=0o777),
        E("usr/bin/ping6", "link", link="usr/bin/ping"),
        E("dev/null", "chr", mode=0o666, major=1, minor=3),
        E("dev/loop0", "blk", mode=0o660, major=7, minor=0),
        E("run/fifo", "fifo", mode=0o600),
    ]


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_every_kind_and_metadata(snap, root, tmp_path, compression):
    stats = extract(snap, tmp_path, everything(), compression=compression)
    assert stats.compression == compression
    t = tree(root)
    assert t["etc/passwd"] == (stat.S_IFREG, 0o644, 0, 0, 1_500_000_001, b"root:x:0:0\n")
    assert t["etc"][4] == 1_500_000_000, "directory mtime must survive its children"
    assert t["usr/bin/ping"][1] == 0o4755
    assert t["usr/bin/sudo"][1] == 0o4711
    assert t["srv"][:5] == (stat.S_IFDIR, 0o2775, 1000, 1000, 1_400_000_000)
    assert t["srv/own"][1:4] == (0o640, 1000, 50)
    assert t["tmp"][1] == 0o1777
    assert t["bin"][5] == "usr/bin" and t["abs"][5] == "/etc/passwd" and t["dangling"][5] == "/no/such/thing"
    assert t["dev/null"][0] == stat.S_IFCHR and t["dev/null"][5] == (1, 3)
    assert t["dev/loop0"][0] == stat.S_IFBLK and t["dev/loop0"][5] == (7, 0)
    assert t["run/fifo"][0] == stat.S_IFIFO
    ping, ping6 = os.lstat(f"{root}/usr/bin/ping"), os.lstat(f"{root}/usr/bin/ping6")
    assert ping.st_ino == ping6.st_ino and ping.st_nlink == 2
    assert os.getxattr(f"{root}/usr/bin/ping", "security.capability") == CAP
    out = subprocess.run(["getcap", f"{root}/usr/bin/ping"], capture_output=True, text=True).stdout
    assert "cap_net_raw=ep" in out


def test_index_built_during_extraction(snap, root, tmp_path):
    extract(snap, tmp_path, everything())
    idx = snap.index
    on_disk = set(tree(root))
    assert set(idx.entries) == on_disk
    for rel in on_disk:
        st = os.lstat(f"{root}/{rel}")
        e = idx.get(rel)
        assert e.sig == (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
                         st.st_ctime_ns, st.st_ino), rel
        assert e.nlink == st.st_nlink, rel
    assert idx.get("etc/passwd").digest == xxhash.xxh3_128_digest(b"root:x:0:0\n")
    assert idx.get("usr/bin/ping").capability == CAP
    assert idx.get("abs").link == "/etc/passwd"


def test_matches_gnu_tar(snap, root, tmp_path):
    blob = write_blob(tmp_path, "l.tar", make_tar(everything()))
    snap.extract(blob, "l")
    ref = tmp_path / "gnu"
    ref.mkdir()
    subprocess.run(["tar", "-C", str(ref), "-xpf", blob, "--xattrs", "--xattrs-include=*",
                    "--numeric-owner"], check=True)
    assert tree(root) == tree(str(ref))


def test_whiteouts_remove_and_never_land(snap, root, tmp_path):
    extract(snap, tmp_path, [E("a/x", data=b"1"), E("a/y", data=b"2"), E("b/deep/z", data=b"3"),
                             E("c", data=b"c")], "base")
    extract(snap, tmp_path, [E("a/.wh.x"), E(".wh.b"), E(".wh.c"), E(".wh.not-there")], "top")
    t = tree(root)
    assert sorted(t) == ["a", "a/y"]
    assert not any(".wh." in p for p in t), "whiteout markers must not become files (kaniko #1636)"
    assert set(snap.index.entries) == {"a", "a/y"}


@pytest.mark.parametrize("marker_first", [True, False])
def test_opaque_directory(snap, root, tmp_path, marker_first):
    extract(snap, tmp_path, [E("d/old", data=b"o"), E("d/sub/old2", data=b"o"), E("d/keep/k", data=b"k"),
                             E("other", data=b"x")], "base")
    top = [E("d", "dir"), E("d/keep", "dir"), E("d/keep/new", data=b"n"), E("d/new", data=b"n")]
    marker = [E("d/.wh..wh..opq")]
    extract(snap, tmp_path, marker + top if marker_first else top + marker, "top")
    assert sorted(tree(root)) == ["d", "d/keep", "d/keep/new", "d/new", "other"]


def test_hard_link_to_earlier_layer(snap, root, tmp_path):
    extract(snap, tmp_path, [E("lib/libc.so", data=b"libc")], "base")
    extract(snap, tmp_path, [E("lib/libc.so.6", "link", link="lib/libc.so")], "top")
    a, b = os.lstat(f"{root}/lib/libc.so"), os.lstat(f"{root}/lib/libc.so.6")
    assert a.st_ino == b.st_ino
    # both names of the inode carry the new link count and ctime in the index
    assert snap.index.get("lib/libc.so").nlink == 2 == snap.index.get("lib/libc.so.6").nlink
    assert snap.index.get("lib/libc.so").ctime_ns == a.st_ctime_ns


def test_replacements_dir_file_symlink(snap, root, tmp_path):
    extract(snap, tmp_path, [E("x/inner", data=b"i"), E("y", data=b"file"), E("z", "symlink", link="x")], "1")
    extract(snap, tmp_path, [E("x", data=b"now a file"), E("y", "dir"), E("y/child", data=b"c"),
                             E("z", "dir")], "2")
    t = tree(root)
    assert t["x"][5] == b"now a file" and "x/inner" not in t
    assert t["y"][0] == stat.S_IFDIR and t["y/child"][5] == b"c"
    assert t["z"][0] == stat.S_IFDIR, "a directory entry replaces a symlink, as docker does"
    extract(snap, tmp_path, [E("y", data=b"file again")], "3")
    assert tree(root)["y"][5] == b"file again"
    assert set(snap.index.entries) == set(tree(root))


# -- attacks ------------------------------------------------------------------------------------

def _assert_contained(tmp_path, before):
    after = outside_snapshot(str(tmp_path))
    escaped = {p for p in after - before if not p.startswith("root")}
    assert not escaped, f"written outside the root: {escaped}"


def test_absolute_names_land_inside(snap, root, tmp_path):
    before = outside_snapshot(str(tmp_path))
    extract(snap, tmp_path, [E(f"{tmp_path}/evil", data=b"x"), E("/etc/abs", data=b"y")])
    assert os.path.exists(f"{root}/{str(tmp_path).lstrip('/')}/evil")
    assert os.path.exists(f"{root}/etc/abs")
    _assert_contained(tmp_path, before | {"layer.tar"})


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "./../../evil", "/../evil"])
def test_dotdot_refused(snap, tmp_path, name):
    before = outside_snapshot(str(tmp_path))
    with pytest.raises(UnsafeEntryError) as err:
        extract(snap, tmp_path, [E(name, data=b"x")])
    assert "layer" in str(err.value) and "evil" in str(err.value)
    _assert_contained(tmp_path, before | {"layer.tar"})


@pytest.mark.parametrize("target", ["/", "..", "../..", "/../../..", "."])
def test_symlink_then_write_through(snap, root, tmp_path, target):
    """A symlink planted by one entry and used as a parent by the next resolves inside the root."""
    before = outside_snapshot(str(tmp_path))
    victim = tmp_path / "victim"
    victim.mkdir()
    extract(snap, tmp_path, [E("escape", "symlink", link=target), E("escape/pwned", data=b"x"),
                             E("escape/sub/pwned2", data=b"y")])
    assert not os.path.exists(victim / "pwned")
    assert os.path.exists(f"{root}/pwned") and os.path.exists(f"{root}/sub/pwned2")
    _assert_contained(tmp_path, before | {"layer.tar", "victim"})


def test_symlink_from_earlier_layer_to_host_path(snap, root, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    extract(snap, tmp_path, [E("v", "symlink", link=str(victim)), E("f", "symlink", link=str(victim / "file"))], "1")
    before = outside_snapshot(str(tmp_path))
    extract(snap, tmp_path, [E("v/x", data=b"through"), E("f", data=b"replaces the link")], "2")
    assert list(victim.iterdir()) == []
    assert open(f"{root}/{str(victim).lstrip('/')}/x", "rb").read() == b"through"
    assert not os.path.islink(f"{root}/f") and open(f"{root}/f", "rb").read() == b"replaces the link"
    _assert_contained(tmp_path, before | {"2.tar"})


def test_hardlink_out_of_root_refused(snap, root, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"host secret")
    with pytest.raises(UnsafeEntryError, match="secret"):
        extract(snap, tmp_path, [E("steal", "link", link="../secret")])
    with pytest.raises(SnapshotError, match="does not exist"):
        extract(snap, tmp_path, [E("steal", "link", link=str(secret))], "abs")
    assert os.lstat(secret).st_nlink == 1
    # through a symlinked parent: resolved inside the root, where there is no such file
    with pytest.raises(SnapshotError) as err:
        extract(snap, tmp_path, [E("up", "symlink", link="/.."), E("steal", "link", link="up/secret")], "via")
    assert str(err.value) == "layer via: entry 'steal': hard link target 'up/secret' does not exist"
    assert os.lstat(secret).st_nlink == 1


@pytest.mark.parametrize("name,named", [(".wh..", "."), ("a/.wh..", "a/."), (".wh...", ".."),
                                        ("a/.wh...", "a/.."), ("a/.wh.", "a/")])
def test_whiteout_of_dotdot_refused(snap, root, tmp_path, name, named):
    """A whiteout of `.` or `..` would delete its own directory or the one above; the message names the path
    the entry would have deleted."""
    keep = tmp_path / "keep"
    keep.write_bytes(b"k")
    os.makedirs(f"{root}/a")
    with pytest.raises(UnsafeEntryError) as err:
        extract(snap, tmp_path, [E(name)])
    assert str(err.value) == (f"layer layer: entry '{name}': whiteout of '{named}' refused: a whiteout hides one "
                              "entry of its own directory")
    assert keep.exists() and os.path.isdir(root) and os.path.isdir(f"{root}/a")


def test_truncated_layer_names_layer(snap, tmp_path):
    raw = make_tar([E("big", data=os.urandom(5000))])
    with pytest.raises(LayerFormatError) as err:
        snap.extract(write_blob(tmp_path, "b.tar", raw[:2048]), "broken")
    assert str(err.value) == "layer broken: archive truncated inside member data at byte 2048"
    with pytest.raises(LayerFormatError) as err:
        snap.extract(write_blob(tmp_path, "g.tar", os.urandom(4096)), "garbage")
    assert str(err.value).startswith("layer garbage: not a tar header at byte 0 (bad checksum field ")
    assert str(err.value).endswith("); is the blob a tar archive?")


def test_whiteout_through_symlinked_parent_stays_inside(snap, root, tmp_path):
    victim = tmp_path / "victim-file"
    victim.write_text("keep me")
    extract(snap, tmp_path, [E("out", "symlink", link="../../.."), E("hostdir", "symlink", link=str(tmp_path))], "1")
    extract(snap, tmp_path, [E("out/.wh.victim-file"), E(f"hostdir/.wh.victim-file"),
                             E("out/.wh..wh..opq")], "2")
    assert victim.read_text() == "keep me"
    assert os.path.exists(tmp_path / "work") and os.path.exists(tmp_path / "1.tar")


def test_multi_member_gzip(snap, root, tmp_path):
    import gzip
    raw = make_tar([E("a", data=b"x" * 10_000), E("b", data=b"y")])
    half = len(raw) // 2
    blob = gzip.compress(raw[:half]) + gzip.compress(raw[half:])
    snap.extract(write_blob(tmp_path, "mm.tar.gz", blob), "multi-member")
    assert open(f"{root}/a", "rb").read() == b"x" * 10_000 and open(f"{root}/b", "rb").read() == b"y"


def test_deep_tree_extract_snapshot_wipe(snap, root, tmp_path):
    """Deeper than Python's recursion limit: nothing in the engine may recurse per level."""
    depth = 1050  # above the default recursion limit of 1000
    deep = "/".join(["d"] * depth)
    extract(snap, tmp_path, [E(deep + "/leaf", data=b"bottom")])
    assert len(snap.index) == depth + 1
    fd = os.open(root, os.O_RDONLY)
    for _ in range(depth):
        nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    with open(os.open("new", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as f:
        f.write("x")
    os.close(fd)
    from .helpers import read_layer
    names = [m.name for m in read_layer(snap.snapshot().path)]
    assert names[-1] == deep + "/new" and len(names) == depth + 1
    snap.wipe()
    assert os.listdir(root) == []

from __future__ import annotations

import os
import stat
import time

import pytest

from .conftest import make_snap
from .helpers import E, make_tar, read_layer, write_blob

BASE = [E("etc", "dir"), E("etc/os-release", data=b"ID=test\n"), E("usr/lib/a.so", data=b"A" * 100),
        E("usr/lib/b.so", data=b"B" * 100), E("var/run", "dir"), E("var/cache/x/y", data=b"y"),
        E("opt/app/keep", data=b"k")]


@pytest.fixture
def based(snap, tmp_path):
    snap.extract(write_blob(tmp_path, "base.tar", make_tar(BASE)), "base")
    return snap


def members(layer):
    return {m.name.rstrip("/"): m for m in read_layer(layer.path)}


def test_unchanged_root_gives_no_layer(based):
    assert based.snapshot() is None
    assert based.snapshot() is None


def test_new_file_with_parents(based, root):
    os.makedirs(f"{root}/srv/data")
    with open(f"{root}/srv/data/new.txt", "wb") as f:
        f.write(b"hello")
    layer = based.snapshot()
    m = members(layer)
    assert set(m) == {"srv", "srv/data", "srv/data/new.txt"}
    assert m["srv/data/new.txt"].data == b"hello"
    assert based.snapshot() is None, "after a snapshot the index reflects the new state"


def test_same_size_same_mtime_rewrite_caught_in_exact_mode(based, root):
    path = f"{root}/usr/lib/a.so"
    before = os.lstat(path)
    time.sleep(0.06)  # leave the racy window, so only ctime can tell
    with open(path, "r+b") as f:
        f.write(b"Z" * 100)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.lstat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    layer = based.snapshot()
    assert layer is not None
    m = members(layer)
    assert m["usr/lib/a.so"].data == b"Z" * 100
    assert "usr/lib/b.so" not in m


@pytest.mark.parametrize("mode,caught", [("redo", False), ("time", False), ("full", True), ("exact", True)])
def test_modes_documented_meaning(root, work, tmp_path, mode, caught):
    snap = make_snap(root, work, mode=mode)
    snap.extract(write_blob(tmp_path, "base.tar", make_tar(BASE)), "base")
    path = f"{root}/usr/lib/a.so"
    before = os.lstat(path)
    with open(path, "r+b") as f:
        f.write(b"Z" * 100)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (snap.snapshot() is not None) == caught


def test_metadata_only_noise_is_not_a_change(based, root):
    """chmod there and back, and a new hard link elsewhere, change ctime but not the image."""
    path = f"{root}/usr/lib/b.so"
    time.sleep(0.06)
    assert based.snapshot() is None  # entries extracted just now are racily clean: hashed here
    time.sleep(0.06)
    os.chmod(path, 0o600)
    os.chmod(path, 0o644)
    assert based.snapshot() is None
    assert based.last_changes.hashed == 1


def test_racily_clean_entry_is_hashed(based, root):
    """An entry whose ctime lies within the timestamp granularity of the index time is judged by
    content: simulate a same-tick rewrite by giving the index the current signature of a file
    whose recorded digest differs."""
    path = f"{root}/usr/lib/a.so"
    with open(path, "r+b") as f:
        f.write(b"Q" * 100)
    based.reindex()
    entry = based.index.get("usr/lib/a.so")
    entry.digest = b"\0" * 16  # what the file held "before the same-tick rewrite"
    based.index.time_ns = entry.ctime_ns  # racy: ctime is not older than index time - granularity
    layer = based.snapshot()
    assert layer is not None and "usr/lib/a.so" in members(layer)
    # not racy any more: the same signature is trusted without hashing
    entry = based.index.get("usr/lib/a.so")
    entry.digest = b"\0" * 16
    based.index.time_ns = entry.ctime_ns + 10 * based.index.granularity_ns
    assert based.snapshot() is None


def test_deleting_base_files_gives_whiteouts(based, root):
    os.unlink(f"{root}/etc/os-release")           # kaniko #2958
    import shutil
    shutil.rmtree(f"{root}/var/cache")            # one whiteout for the directory
    layer = based.snapshot()
    m = members(layer)
    assert "etc/.wh.os-release" in m
    assert "var/.wh.cache" in m
    assert not any(n.startswith("var/cache/") for n in m), "no whiteout per child of a deleted dir"
    assert m["etc/.wh.os-release"].size == 0
    assert based.snapshot() is None


def test_no_whiteout_for_path_new_in_this_step(based, root):
    """kaniko #2050: created and deleted within one step: nothing to hide in lower layers."""
    with open(f"{root}/etc/tmpfile", "w") as f:
        f.write("x")
    os.unlink(f"{root}/etc/tmpfile")
    os.makedirs(f"{root}/scratch/a")
    os.rmdir(f"{root}/scratch/a")
    layer = based.snapshot()
    names = set(members(layer)) if layer else set()
    assert not any(".wh." in n for n in names)


def test_add_remove_add_across_steps(based, root):
    """kaniko #1637."""
    p = f"{root}/opt/app/f"
    open(p, "w").write("one")
    assert "opt/app/f" in members(based.snapshot())
    os.unlink(p)
    assert "opt/app/.wh.f" in members(based.snapshot())
    open(p, "w").write("two")
    m = members(based.snapshot())
    assert m["opt/app/f"].data == b"two" and "opt/app/.wh.f" not in m


def test_symlink_loop_beside_new_files(based, root):
    """kaniko #1395: a symlink loop must not drop other new files from the layer."""
    os.makedirs(f"{root}/loop")
    os.symlink("b", f"{root}/loop/a")
    os.symlink("a", f"{root}/loop/b")
    os.symlink(".", f"{root}/loop/self")
    for i in range(5):
        open(f"{root}/loop/f{i}", "w").write(str(i))
    m = members(based.snapshot())
    assert {"loop/a", "loop/b", "loop/self", *(f"loop/f{i}" for i in range(5))} <= set(m)
    assert m["loop/a"].issym() and m["loop/a"].linkname == "b"


def test_var_run_is_kept(based, root):
    """kaniko #506."""
    open(f"{root}/var/run/app.pid", "w").write("1")
    os.makedirs(f"{root}/var/run/app")
    open(f"{root}/var/run/app/sock.conf", "w").write("x")
    assert {"var/run/app.pid", "var/run/app/sock.conf"} <= set(members(based.snapshot()))


def test_hard_links_in_one_step(based, root):
    open(f"{root}/opt/app/bin", "w").write("binary")
    os.link(f"{root}/opt/app/bin", f"{root}/opt/app/bin2")
    os.link(f"{root}/opt/app/bin", f"{root}/opt/app/a-first")
    m = members(based.snapshot())
    first = m["opt/app/a-first"]
    assert first.isfile() and first.data == b"binary"
    assert m["opt/app/bin"].islnk() and m["opt/app/bin"].linkname == "opt/app/a-first"
    assert m["opt/app/bin2"].islnk() and m["opt/app/bin2"].linkname == "opt/app/a-first"


def test_capabilities_and_setuid_kept(based, root):
    p = f"{root}/opt/app/ping"
    open(p, "w").write("ping")
    os.chmod(p, 0o4755)
    cap = b"\x01\x00\x00\x02\x00\x20\x00\x00" + bytes(12)
    os.setxattr(p, "security.capability", cap)
    m = members(based.snapshot())
    assert m["opt/app/ping"].mode == 0o4755
    assert m["opt/app/ping"].pax_headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == cap \
        or m["opt/app/ping"].pax_headers["SCHILY.xattr.security.capability"] == cap.decode("latin-1")
    # setcap alone (ctime only) on an unchanged file is a change too
    time.sleep(0.06)
    os.setxattr(f"{root}/usr/lib/b.so", "security.capability", cap)
    assert "usr/lib/b.so" in members(based.snapshot())


def test_directory_recreated_gets_one_whiteout_per_entry_gone(based, root):
    """Deleted and made again, with a new inode or the old one: the same layer either way (no opaque marker,
    whose choice would hang on whether the file system handed the old inode number out again)."""
    import shutil
    os.makedirs(f"{root}/opt/app.new")
    open(f"{root}/opt/app.new/fresh", "w").write("f")
    shutil.rmtree(f"{root}/opt/app")
    os.rename(f"{root}/opt/app.new", f"{root}/opt/app")
    m = members(based.snapshot())
    assert "opt/app/.wh..wh..opq" not in m
    assert "opt/app/fresh" in m
    assert "opt/app/.wh.keep" in m


def test_file_to_directory_and_back(based, root):
    p = f"{root}/etc/os-release"
    os.unlink(p)
    os.makedirs(p)
    open(f"{p}/inner", "w").write("i")
    m = members(based.snapshot())
    assert m["etc/os-release"].isdir() and "etc/os-release/inner" in m
    assert "etc/.wh.os-release" not in m, "the new entry replaces the old one; no whiteout needed"
    import shutil
    shutil.rmtree(p)
    open(p, "w").write("file again")
    m = members(based.snapshot())
    assert m["etc/os-release"].isfile()
    assert not any(n.startswith("etc/os-release/") for n in m), "no whiteouts under a file"
    assert based.snapshot() is None


def test_snapshot_paths(based, root):
    os.makedirs(f"{root}/app/sub")
    open(f"{root}/app/a.txt", "w").write("a")
    open(f"{root}/app/sub/b.txt", "w").write("b")
    open(f"{root}/elsewhere", "w").write("not asked for")
    m = members(based.snapshot_paths(["/app/a.txt"]))
    assert set(m) == {"app", "app/a.txt"}
    m = members(based.snapshot_paths(["/app/sub"]))
    assert set(m) == {"app", "app/sub", "app/sub/b.txt"}
    os.unlink(f"{root}/etc/os-release")
    m = members(based.snapshot_paths(["/etc/os-release"]))
    assert set(m) == {"etc", "etc/.wh.os-release"}
    m = members(based.snapshot())
    assert set(m) >= {"elsewhere"} and "app/a.txt" not in m


def test_ignored_paths_not_reported(root, work, tmp_path):
    snap = make_snap(root, work, extra=["/mnt/secret", "/var/run/secrets"])
    snap.extract(write_blob(tmp_path, "base.tar", make_tar(BASE)), "base")
    os.makedirs(f"{root}/mnt/secret")
    os.makedirs(f"{root}/var/run/secrets")
    open(f"{root}/mnt/secret/token", "w").write("t")
    open(f"{root}/var/run/secrets/k", "w").write("k")
    open(f"{root}/var/run/other", "w").write("o")
    m = members(snap.snapshot())
    assert not any(n.startswith(("mnt/secret", "var/run/secrets")) for n in m)
    assert "var/run/other" in m
    # extraction leaves them alone as well
    snap.extract(write_blob(tmp_path, "l.tar", make_tar([E("mnt/secret/token", data=b"evil"),
                                                         E("var/run/.wh.secrets")])), "l")
    assert open(f"{root}/mnt/secret/token").read() == "t"
    assert os.path.isdir(f"{root}/var/run/secrets")


def test_epoch_pins_timestamps_and_is_reproducible(root, work, tmp_path):
    digests = []
    for run in range(2):
        r = tmp_path / f"r{run}"
        r.mkdir()
        snap = make_snap(str(r), work, epoch=0)
        os.makedirs(r / "d")
        (r / "d" / "f").write_text("same")
        os.symlink("f", r / "d" / "l")
        layer = snap.snapshot()
        assert all(m.mtime == 0 for m in read_layer(layer.path))
        digests.append((layer.digest, layer.diff_id))
        time.sleep(1.1 if run == 0 else 0)
    assert digests[0] == digests[1]


def test_wipe_keeps_ignored(root, work, tmp_path):
    snap = make_snap(root, work, extra=["/kaniko", "/etc/hosts"])
    snap.extract(write_blob(tmp_path, "base.tar", make_tar(BASE)), "base")
    os.makedirs(f"{root}/kaniko")
    open(f"{root}/kaniko/executor", "w").write("x")
    open(f"{root}/etc/hosts", "w").write("127.0.0.1 localhost")
    os.symlink("/", f"{root}/rootlink")
    snap.wipe()
    left = sorted(os.path.relpath(os.path.join(d, n), root) for d, ds, fs in os.walk(root) for n in ds + fs)
    assert left == ["etc", "etc/hosts", "kaniko", "kaniko/executor"]
    assert snap.snapshot() is None


def test_only_image_xattrs_are_archived(based, root):
    p = f"{root}/opt/app/x"
    open(p, "w").write("x")
    os.setxattr(p, "user.origin", b"kiln")
    os.setxattr(p, "trusted.overlay.opaque", b"y")  # describes the host's overlay, not the image
    m = members(based.snapshot())
    pax = m["opt/app/x"].pax_headers
    assert pax.get("SCHILY.xattr.user.origin") == "kiln"
    assert "SCHILY.xattr.trusted.overlay.opaque" not in pax


def test_sockets_are_skipped_once(based, root):
    import socket
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(f"{root}/opt/app/ctl.sock")
        layer = based.snapshot()
        assert layer is None or "opt/app/ctl.sock" not in members(layer)
        assert based.snapshot() is None, "a socket must not make every later snapshot non-empty"
    finally:
        s.close()


def test_symlink_over_directory_holding_a_mount(root, work, tmp_path):
    """Debian bases have var/run -> /run; in Kubernetes /var/run/secrets is mounted."""
    snap = make_snap(root, work, extra=["/var/run/secrets"])
    os.makedirs(f"{root}/var/run/secrets")
    open(f"{root}/var/run/secrets/token", "w").write("t")
    snap.extract(write_blob(tmp_path, "deb.tar", make_tar([E("run", "dir"), E("var", "dir"),
                                                           E("var/run", "symlink", link="/run"),
                                                           E("var/lib", "dir")])), "debian")
    assert os.path.isdir(f"{root}/var/run") and not os.path.islink(f"{root}/var/run")
    assert open(f"{root}/var/run/secrets/token").read() == "t"
    assert os.path.isdir(f"{root}/var/lib")


def test_racy_entry_stays_racy_across_partial_updates(based, root, tmp_path):
    """A COPY (snapshot_paths) or an extraction moves the index time on, but must not vouch for
    entries it did not look at."""
    path = f"{root}/usr/lib/a.so"
    with open(path, "r+b") as f:
        f.write(b"R" * 100)
    based.reindex()
    entry = based.index.get("usr/lib/a.so")
    entry.digest = b"\0" * 16  # content "before a same-tick rewrite"
    based.index.time_ns = entry.ctime_ns
    time.sleep(0.06)
    open(f"{root}/copied", "w").write("c")
    assert set(members(based.snapshot_paths(["/copied"]))) == {"copied"}
    based.extract(write_blob(tmp_path, "more.tar", make_tar([E("more", data=b"m")])), "more")
    layer = based.snapshot()
    assert layer is not None and "usr/lib/a.so" in members(layer)


def test_reindex_after_extraction_keeps_digests(based, root):
    time.sleep(0.06)
    with open(f"{root}/usr/lib/b.so", "ab") as f:
        f.write(b"more")
    based.reindex()
    assert based.index.get("usr/lib/a.so").digest is not None, "unchanged inode: digest kept"
    assert based.index.get("usr/lib/b.so").size == 104
    time.sleep(0.06)
    assert based.snapshot() is None
    os.chmod(f"{root}/usr/lib/a.so", 0o600)
    os.chmod(f"{root}/usr/lib/a.so", 0o644)
    assert based.snapshot() is None, "ctime-only noise settled by the kept digest"


# ---- directories settled whole by their record (index.DirRecord) -------------------------------------------
def _settled(snap) -> None:
    """Leave the racy window of the extraction, then snapshot twice: the first judges the racy entries, the
    second finds every directory unchanged and records it."""
    time.sleep(0.06)
    assert snap.snapshot() is None
    assert snap.snapshot() is None
    assert {"usr", "usr/lib", "etc", "opt/app"} <= set(snap.index.dirs), "the unchanged walk made no records"
    assert snap.snapshot() is None
    assert snap.last_changes.unsettled == [], "an unchanged directory was compared path by path"
    assert 0 < snap.last_changes.settled <= snap.last_changes.walked


def test_record_does_not_hide_a_same_size_same_mtime_rewrite(based, root):
    _settled(based)
    path = f"{root}/usr/lib/a.so"
    before = os.lstat(path)
    with open(path, "r+b") as f:
        f.write(b"Z" * 100)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.lstat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    layer = based.snapshot()
    assert layer is not None
    m = members(layer)
    assert m["usr/lib/a.so"].data == b"Z" * 100 and "usr/lib/b.so" not in m
    assert based.snapshot() is None


def test_record_does_not_hide_a_deletion_a_new_name_or_a_new_inode(based, root):
    _settled(based)
    os.unlink(f"{root}/usr/lib/b.so")
    assert set(members(based.snapshot())) == {"usr", "usr/lib", "usr/lib/.wh.b.so"}
    _settled_again = based.snapshot()
    assert _settled_again is None
    os.rename(f"{root}/opt/app/keep", f"{root}/opt/app/kept")          # same inode, another name
    assert {"opt/app/kept", "opt/app/.wh.keep"} <= set(members(based.snapshot()))
    assert based.snapshot() is None
    with open(f"{root}/etc/os-release.new", "wb") as f:
        f.write(b"ID=test\n")                                            # same content, a new inode
    os.rename(f"{root}/etc/os-release.new", f"{root}/etc/os-release")
    assert "etc/os-release" in members(based.snapshot())
    assert based.snapshot() is None


def test_record_follows_a_copy_and_an_extraction(based, root, tmp_path):
    _settled(based)
    with open(f"{root}/usr/lib/c.so", "wb") as f:
        f.write(b"C")
    assert "usr/lib/c.so" in members(based.snapshot_paths(["/usr/lib/c.so"]))
    assert "usr/lib" not in based.index.dirs, "a COPY into a recorded directory left its record"
    time.sleep(0.06)
    assert based.snapshot() is None
    based.extract(write_blob(tmp_path, "more.tar", make_tar([E("usr/lib/a.so", data=b"X" * 100)])), "more")
    assert not based.index.dirs, "an extraction left records of directories it may have changed"
    time.sleep(0.06)
    assert based.snapshot() is None
    with open(f"{root}/usr/lib/a.so", "r+b") as f:
        f.write(b"Y")
    assert members(based.snapshot())["usr/lib/a.so"].data == b"Y" + b"X" * 99


def test_record_is_not_used_when_the_clock_went_back(based, root):
    """A record holds no racily clean entry at the index time it was made; with the index time moved back
    over its newest ctime, its directory is compared path by path again (and its entries hashed)."""
    _settled(based)
    newest = based.index.dirs["usr/lib"].newest_ctime
    based.index.time_ns = newest
    assert based.snapshot() is None
    assert "usr/lib/a.so" in based.last_changes.unsettled and based.last_changes.hashed >= 2


def test_stamp_after_an_unchanged_walk_looks_only_at_the_unsettled_paths(based, root):
    """stamp(only=...) clears the racy flag and hashes the racily clean files among the named paths, as the
    full stamp would; the entries the walk's fast path settled are not looked at; with the clock gone back it
    falls back to the loop over every entry."""
    index = based.index
    a, b, c = (index.get(rel) for rel in ("usr/lib/a.so", "usr/lib/b.so", "etc/os-release"))
    a.racy, a.digest = True, None
    b.digest = None
    c.racy = True       # (a settled entry is never racy: marked here only to see that it is not looked at)
    index.time_ns = b.ctime_ns      # b's ctime is inside the racy window of the new stamp only if it is recent
    index.granularity_ns = 10 ** 18  # every ctime is inside the window now
    index.stamp(root, only=["usr/lib/a.so", "usr/lib/b.so"])
    assert not a.racy and a.digest is not None and b.digest is not None
    assert c.racy, "stamp(only=...) looked at an entry it was not given"
    index.time_ns += 10 ** 12       # the clock went back: the new stamp is earlier than the last
    index.stamp(root, only=[])
    assert not c.racy, "with the clock gone back, every entry is looked at"

"""The first layers onto a root that already holds files (a container's own): `existing()` before, `take_in()`
after must index the root exactly as a walk of the whole root (`reindex()`) would, so that no file of the
container ever shows up in a layer and every later change does."""
from __future__ import annotations

import os
import shutil

import pytest

from .conftest import make_snap
from .helpers import E, make_tar, read_layer, write_blob

LAYER = [E("etc", "dir", mode=0o755), E("etc/os-release", data=b"ID=test\n"), E("etc/hosts", data=b"image\n"),
         E("usr/bin/tool", data=b"T" * 300, mode=0o755), E("usr/lib/libx.so", data=b"X" * 64),
         E("usr/lib/link.so", "symlink", link="libx.so"), E("tmp", "dir", mode=0o1777)]
SECOND = [E("usr/lib/liby.so", data=b"Y" * 32), E("etc/.wh.gone", data=b"")]


def _container_files(root: str) -> None:
    """What a runtime leaves in a container's root before the build: a directory the layer has too (etc), a
    file the layer replaces (etc/hosts), files and directories no layer names, a symlink, a file deleted
    later by a whiteout of the second layer."""
    os.makedirs(f"{root}/etc")
    for rel, text in {"etc/hosts": "container\n", "etc/hostname": "pod-1\n", "etc/gone": "whited out\n",
                      "var/lib/own/state": "s\n", "root/.profile": "p\n"}.items():
        os.makedirs(os.path.dirname(f"{root}/{rel}"), exist_ok=True)
        with open(f"{root}/{rel}", "w") as f:
            f.write(text)
    os.symlink("/var/lib/own", f"{root}/own-link")
    os.chmod(f"{root}/var/lib/own", 0o700)


def _build(tmp_path, name: str, mode: str, first: str):
    root, work = str(tmp_path / f"root-{name}"), str(tmp_path / f"work-{name}")
    os.makedirs(root)
    os.makedirs(work)
    _container_files(root)
    snap = make_snap(root, work, mode=mode)
    before = snap.existing() if first == "take_in" else None
    snap.extract(write_blob(tmp_path, "layer.tar", make_tar(LAYER)), "layer")
    snap.extract(write_blob(tmp_path, "second.tar", make_tar(SECOND)), "second")
    if first == "take_in":
        snap.take_in(before)
    else:
        snap.reindex()
    return root, snap


def _index(snap) -> dict:
    """The index by path: signature without inode and times (two roots), link, xattrs, whether hashed."""
    out = {}
    for rel, e in snap.index.entries.items():
        mode, uid, gid, size = e.sig[:4]
        out[rel] = (mode, uid, gid, size, e.link, dict(e.xattrs or {}), e.digest is not None or mode & 0o170000 != 0o100000)
    return out


@pytest.mark.parametrize("mode", ["exact", "full"])
def test_take_in_indexes_what_a_reindex_would(tmp_path, mode):
    _, taken = _build(tmp_path, "take", mode, "take_in")
    _, walked = _build(tmp_path, "walk", mode, "reindex")
    assert _index(taken) == _index(walked)
    assert {"etc/hostname", "var/lib/own/state", "root/.profile", "own-link", "var", "var/lib", "var/lib/own",
            "usr/lib/liby.so"} <= set(taken.index.entries)
    assert "etc/gone" not in taken.index.entries        # the second layer's whiteout removed it
    assert taken.index.entries["etc/hosts"].sig[3] == len(b"image\n")   # the layer's file, not the container's


def test_no_container_file_shows_up_in_a_layer_and_later_changes_do(tmp_path):
    root, snap = _build(tmp_path, "take", "exact", "take_in")
    assert snap.snapshot() is None
    with open(f"{root}/etc/hostname", "w") as f:
        f.write("pod-2, longer\n")
    shutil.rmtree(f"{root}/root")
    os.symlink("elsewhere", f"{root}/new-link")
    layer = snap.snapshot()
    assert layer is not None
    names = {m.name.rstrip("/") for m in read_layer(layer.path)}
    assert {"etc/hostname", ".wh.root", "new-link"} <= names
    assert not names & {"var/lib/own/state", "own-link", "etc/os-release", "usr/bin/tool"}


def test_existing_leaves_out_the_ignore_list(tmp_path):
    root, work = str(tmp_path / "root"), str(tmp_path / "work")
    os.makedirs(f"{root}/kaniko/blobs")
    os.makedirs(f"{root}/etc")
    os.makedirs(work)
    with open(f"{root}/kaniko/blobs/b", "w") as f:
        f.write("kiln's own\n")
    snap = make_snap(root, work, extra=["/kaniko"])
    assert sorted(snap.existing()) == ["etc"]
    snap.take_in(snap.existing())
    assert sorted(snap.index.entries) == ["etc"]
    assert snap.snapshot() is None

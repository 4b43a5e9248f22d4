"""A RUN that hard-links a file of a lower layer: both names go into the layer as one hard-link group."""
import os
import tarfile

from snapshot import IgnoreList, Snapshotter


def test_new_hard_link_to_lower_file_brings_the_file_along(tmp_path):
    root, work = tmp_path / "root", tmp_path / "work"
    (root / "bin").mkdir(parents=True)
    work.mkdir()
    (root / "bin" / "busybox").write_bytes(b"x" * 100)
    (root / "bin" / "other").write_bytes(b"y")
    snap = Snapshotter(str(root), IgnoreList(str(root)), str(work))
    snap.reindex()
    os.link(root / "bin" / "busybox", root / "bin" / "bb-hardlink")
    layer = snap.snapshot()
    with tarfile.open(layer.path) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert set(members) == {"bin", "bin/bb-hardlink", "bin/busybox"}, "unrelated lower files stay out"
    first, second = members["bin/bb-hardlink"], members["bin/busybox"]
    assert first.isfile() and first.size == 100
    assert second.islnk() and second.linkname == "bin/bb-hardlink"
    assert snap.snapshot() is None, "the index took the new state"

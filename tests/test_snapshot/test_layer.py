from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess

import pytest
import zstandard

from snapshot import IgnoreList, Snapshotter

from .helpers import read_layer, tree

CAP = b"\x01\x00\x00\x02\x00\x20\x00\x00" + bytes(12)
LONG = "deep/" + "x" * 120 + "/" + "y" * 130


def populate(r: str) -> None:
    os.makedirs(f"{r}/usr/bin")
    os.makedirs(f"{r}/srv/shared")
    os.makedirs(f"{r}/{os.path.dirname(LONG)}")
    with open(f"{r}/usr/bin/tool", "wb") as f:
        f.write(os.urandom(70_000))
    os.chmod(f"{r}/usr/bin/tool", 0o4755)
    os.setxattr(f"{r}/usr/bin/tool", "security.capability", CAP)
    os.link(f"{r}/usr/bin/tool", f"{r}/usr/bin/tool-alias")
    with open(f"{r}/{LONG}", "w") as f:
        f.write("long name")
    with open(f"{r}/srv/shared/héllo wörld.txt", "w") as f:
        f.write("utf-8 name")
    with open(f"{r}/srv/shared/big-ids", "w") as f:
        f.write("ids")
    os.chown(f"{r}/srv/shared/big-ids", 3_000_000, 4_000_000)
    os.chmod(f"{r}/srv/shared", 0o2775)
    os.chown(f"{r}/srv/shared", 1000, 1000)
    os.symlink("../usr/bin/tool", f"{r}/srv/link")
    os.symlink("/" + "t" * 150, f"{r}/srv/longlink")
    os.mkfifo(f"{r}/srv/fifo")
    os.mknod(f"{r}/srv/null", 0o20666, os.makedev(1, 3))
    open(f"{r}/empty", "w").close()
    os.utime(f"{r}/usr/bin", ns=(1, 1_234_567_890_000_000_000))


@pytest.fixture
def full_layer(tmp_path):
    r = tmp_path / "src"
    r.mkdir()
    populate(str(r))
    work = tmp_path / "work"
    work.mkdir()
    return str(r), Snapshotter(str(r), IgnoreList(str(r)), str(work)).snapshot()


def _tar_bytes(path: str) -> bytes:
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:4] == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    return raw


def test_gnu_tar_extracts_the_same_tree(full_layer, tmp_path):
    src, layer = full_layer
    out = tmp_path / "gnu"
    out.mkdir()
    subprocess.run(["tar", "-C", str(out), "-xpzf", layer.path, "--xattrs", "--xattrs-include=*",
                    "--numeric-owner"], check=True)
    assert tree(str(out)) == tree(src)
    assert os.getxattr(out / "usr/bin/tool", "security.capability") == CAP
    assert os.lstat(out / "usr/bin/tool").st_ino == os.lstat(out / "usr/bin/tool-alias").st_ino


def test_own_extractor_round_trip(full_layer, tmp_path):
    src, layer = full_layer
    r2 = tmp_path / "again"
    r2.mkdir()
    Snapshotter(str(r2), IgnoreList(str(r2)), str(tmp_path)).extract(layer.path, "round-trip")
    assert tree(str(r2)) == tree(src)


def test_digests_headers_and_order(full_layer):
    src, layer = full_layer
    blob = open(layer.path, "rb").read()
    assert layer.digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert layer.size == len(blob)
    assert layer.diff_id == "sha256:" + hashlib.sha256(_tar_bytes(layer.path)).hexdigest()
    members = read_layer(layer.path)
    names = [m.name for m in members]
    assert names == sorted(names)
    assert all(not n.startswith(("/", "./")) for n in names)
    for m in members:
        assert m.uname == "" and m.gname == ""
        assert not {"atime", "ctime"} & set(m.pax_headers)
    by = {m.name: m for m in members}
    assert by[LONG].data == b"long name"
    assert by["srv/shared/big-ids"].uid == 3_000_000 and by["srv/shared/big-ids"].gid == 4_000_000
    assert by["srv/longlink"].linkname == "/" + "t" * 150
    assert by["usr/bin"].mtime == 1_234_567_890
    assert by["srv/null"].ischr() and (by["srv/null"].devmajor, by["srv/null"].devminor) == (1, 3)
    assert by["srv/fifo"].isfifo()
    # tar order: the first name of the inode carries the data
    assert by["usr/bin/tool"].isfile() and by["usr/bin/tool-alias"].islnk()


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_other_compressions(tmp_path, compression):
    r = tmp_path / "src"
    r.mkdir()
    populate(str(r))
    layer = Snapshotter(str(r), IgnoreList(str(r)), str(tmp_path), compression=compression).snapshot()
    assert layer.compression == compression
    assert layer.diff_id == "sha256:" + hashlib.sha256(_tar_bytes(layer.path)).hexdigest()
    if compression == "none":
        assert layer.digest == layer.diff_id


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(not shutil.which("umoci"), reason="umoci not installed")
def test_umoci_unpacks_a_layout_with_the_layer(full_layer, tmp_path):
    src, layer = full_layer
    lay = tmp_path / "layout"
    (lay / "blobs" / "sha256").mkdir(parents=True)

    def put(data: bytes) -> str:
        d = _sha(data)
        (lay / "blobs" / "sha256" / d[7:]).write_bytes(data)
        return d

    blob = open(layer.path, "rb").read()
    put(blob)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer.digest,
                    "size": layer.size}]}).encode()
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(manifest),
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "test"}}]}
    (lay / "index.json").write_text(json.dumps(index))
    (lay / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{lay}:test", str(bundle)], check=True,
                   capture_output=True)
    rootfs = bundle / "rootfs"
    assert (rootfs / "usr/bin/tool").read_bytes() == open(f"{src}/usr/bin/tool", "rb").read()
    assert os.lstat(rootfs / "usr/bin/tool").st_mode & 0o7777 == 0o4755
    assert os.readlink(rootfs / "srv/link") == "../usr/bin/tool"
    assert (rootfs / LONG).read_text() == "long name"


@pytest.mark.parametrize("compression,level", [("gzip", 0), ("gzip", 9), ("zstd", 19)])
def test_levels(tmp_path, compression, level):
    r = tmp_path / "src"
    r.mkdir()
    (r / "f").write_bytes(b"abc" * 100_000)
    layer = Snapshotter(str(r), IgnoreList(str(r)), str(tmp_path), compression=compression,
                        level=level).snapshot()
    assert layer.diff_id == "sha256:" + hashlib.sha256(_tar_bytes(layer.path)).hexdigest()


def test_bad_settings_are_refused(tmp_path):
    from snapshot.compression import isal_level
    assert [isal_level(x) for x in (None, 0, 1, 2, 3, 6, 7, 9)] == [1, 0, 1, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError, match="brotli"):
        Snapshotter(str(tmp_path), IgnoreList(str(tmp_path)), str(tmp_path), compression="brotli")
    with pytest.raises(ValueError, match="snapshot mode"):
        Snapshotter(str(tmp_path), IgnoreList(str(tmp_path)), str(tmp_path), mode="fast")
    with pytest.raises(ValueError, match="outside 0-9"):
        isal_level(12)

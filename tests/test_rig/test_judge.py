"""The judge accepts good images from independent producers and names the fault in bad ones."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from tests.rig import images
from tests.rig.images import BaseImages, Layout
from tests.rig.judge import (JudgeError, check_config, check_tar, judge_docker_tar, judge_oci_layout)

from .conftest import assert_ok, skopeo


def _docker_archive(base_images: BaseImages, dest: str) -> str:
    assert_ok(skopeo("copy", "-q", f"oci:{base_images.layout_path}:amd64", f"docker-archive:{dest}:kiln/judge:1"))
    return dest


def _rewrite_tar(src: str, dest: str, edit) -> None:
    """Copy a tarball; ``edit(name, data)`` returns (new name, new bytes) or None to drop a member."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w") as tout:
        for ti in tin:
            if not ti.isfile():
                tout.addfile(ti)
                continue
            edited = edit(ti.name, tin.extractfile(ti).read())
            if edited is None:
                continue
            ti.name, data = edited
            ti.size = len(data)
            tout.addfile(ti, io.BytesIO(data))


def _member_bytes(tar: str, name: str) -> bytes:
    with tarfile.open(tar) as tf:
        return tf.extractfile(name).read()


def test_docker_tar_from_skopeo_passes(base_images: BaseImages, tmp_path) -> None:
    report = judge_docker_tar(_docker_archive(base_images, str(tmp_path / "img.tar")))
    assert report.repo_tags == ["docker.io/kiln/judge:1"]   # skopeo writes the full name
    assert report.config["architecture"] == "amd64"
    assert report.layers[0].compression == "none" and "bin/busybox" in report.layers[0].names()
    assert report.unpacked_rootfs and os.path.isfile(os.path.join(report.unpacked_rootfs, "etc", "passwd"))


def test_docker_tar_with_wrong_diff_id_fails(base_images: BaseImages, tmp_path) -> None:
    good = _docker_archive(base_images, str(tmp_path / "good.tar"))
    with tarfile.open(good) as tf:
        entry = json.load(tf.extractfile("manifest.json"))[0]

    config = json.loads(_member_bytes(good, entry["Config"]))
    config["rootfs"]["diff_ids"][0] = "sha256:" + "0" * 64
    new_config = json.dumps(config).encode()
    new_name = hashlib.sha256(new_config).hexdigest() + ".json"   # docker names the config by its hash

    def edit(name: str, data: bytes):
        if name == entry["Config"]:
            return new_name, new_config
        if name == "manifest.json":
            return name, json.dumps([{**entry, "Config": new_name}]).encode()
        return name, data
    bad = str(tmp_path / "bad.tar")
    _rewrite_tar(good, bad, edit)
    with pytest.raises(JudgeError, match=r"layer 0 .*uncompresses to sha256:[0-9a-f]{64} but the config's "
                                         r"diff_id at position 0 is sha256:0{64}"):
        judge_docker_tar(bad, unpack=False)


def test_docker_tar_missing_layer_fails(base_images: BaseImages, tmp_path) -> None:
    good = _docker_archive(base_images, str(tmp_path / "good.tar"))
    with tarfile.open(good) as tf:
        layer = json.load(tf.extractfile("manifest.json"))[0]["Layers"][0]
    bad = str(tmp_path / "bad.tar")
    _rewrite_tar(good, bad, lambda name, data: None if name == layer else (name, data))
    with pytest.raises(JudgeError, match=f"layer 0 '{layer}' named by manifest.json is not in the tarball"):
        judge_docker_tar(bad, unpack=False)


def test_umoci_layout_passes(tiny_layout: str) -> None:
    path, ref = tiny_layout[len("oci:"):].rsplit(":", 1)
    report = judge_oci_layout(path, ref)
    assert report.read("etc/hello") == b"hello from the rig\n"
    assert open(os.path.join(report.unpacked_rootfs, "etc", "hello")).read() == "hello from the rig\n"


def test_layout_with_corrupt_blob_names_it(base_images: BaseImages, tmp_path) -> None:
    copy = str(tmp_path / "layout")
    shutil.copytree(base_images.layout_path, copy)
    report = judge_oci_layout(copy, "amd64", unpack=False)
    blob = os.path.join(copy, "blobs", "sha256", report.layers[0].digest[7:])
    with open(blob, "r+b") as f:
        f.seek(100)
        f.write(b"\0\0\0\0")
    with pytest.raises(JudgeError, match=f"layer 0: blob {report.layers[0].digest} hashes to sha256:"):
        judge_oci_layout(copy, "amd64", unpack=False)
    with pytest.raises(JudgeError, match="no entry named 'nope'"):
        judge_oci_layout(copy, "nope")


def _two_layer_layout(tmp_path, second: dict[str, str | None], media_type: str = images.LAYER_GZIP) -> Layout:
    """Layer 0: a/keep, a/gone, d/old; layer 1 from ``second`` (name -> content, None for a dir)."""
    layout = Layout(str(tmp_path / "layout"))
    layer_descs, diff_ids = [], []
    for n, files in enumerate(({"a/keep": "k", "a/gone": "g", "d/old": "o"}, second)):
        stage = tmp_path / f"stage{n}"
        for name, content in files.items():
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            if content is None:
                (stage / name).mkdir()
            else:
                (stage / name).write_text(content)
        tar = str(tmp_path / f"l{n}.tar")
        images.tar_dir(str(stage), tar)
        gz = images._compress(tar, "gzip")
        digest, size = layout.add_file_blob(gz)
        layer_descs.append({"mediaType": media_type, "digest": digest, "size": size})
        diff_ids.append(images._file_sha256(tar))
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cd, cs = layout.add_json(config)
    manifest = {"schemaVersion": 2, "mediaType": images.OCI_MANIFEST,
                "config": {"mediaType": images.OCI_CONFIG, "digest": cd, "size": cs}, "layers": layer_descs}
    md, ms = layout.add_json(manifest)
    layout.tag("two", {"mediaType": images.OCI_MANIFEST, "digest": md, "size": ms})
    return layout


def test_merged_filesystem_applies_whiteouts(tmp_path) -> None:
    layout = _two_layer_layout(tmp_path, {"a/.wh.gone": "", "d/.wh..wh..opq": "", "d/new": "n"})
    report = judge_oci_layout(layout.path, "two")
    fs = report.filesystem()
    assert {p for p in fs if p.startswith(("a/", "d/"))} == {"a/keep", "d/new"}
    assert report.read("d/new") == b"n"
    assert not os.path.exists(os.path.join(report.unpacked_rootfs, "a", "gone"))   # umoci agrees


def test_docker_layer_type_in_oci_manifest_fails(tmp_path) -> None:
    layout = _two_layer_layout(tmp_path, {"x": "x"}, media_type="application/vnd.docker.image.rootfs.diff.tar.gzip")
    with pytest.raises(JudgeError, match=r"layer 0 \(sha256:[0-9a-f]{64}\) has media type "
                                         r"'application/vnd.docker.image.rootfs.diff.tar.gzip', not a oci layer"):
        judge_oci_layout(layout.path, "two")


def test_tar_without_end_marker_fails(tmp_path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "f").write_text("data")
    tar = str(tmp_path / "t.tar")
    images.tar_dir(str(tmp_path / "s"), tar)
    assert [m.name for m in check_tar(tar, "ok")] == ["f"]
    with open(tar, "r+b") as f:
        f.truncate(1024)   # header + one data block, no end-of-archive blocks
    with pytest.raises(JudgeError, match="lacks its end-of-archive marker"):
        check_tar(tar, "cut")


def test_absolute_member_names_fail(tmp_path) -> None:
    (tmp_path / "f").write_text("x")
    tar = str(tmp_path / "abs.tar")
    subprocess.run(["tar", "-P", "-cf", tar, str(tmp_path / "f")], check=True)
    with pytest.raises(JudgeError, match="is absolute or climbs out"):
        check_tar(tar, "abs")


def test_history_must_match_layers() -> None:
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
              "history": [{"created_by": "a"}, {"created_by": "b"}, {"created_by": "c", "empty_layer": True}]}
    with pytest.raises(JudgeError, match="history has 2 entries that are not empty_layer but the image has 1"):
        check_config(config, 1, "cfg")
    config["history"][1]["empty_layer"] = True
    assert check_config(config, 1, "cfg") == ["sha256:" + "1" * 64]


def test_layout_holding_a_docker_manifest_passes(base_images: BaseImages, tmp_path) -> None:
    """A Docker schema 2 manifest inside an OCI layout is legal; umoci sees it after skopeo converts it."""
    d = tmp_path / "dir"
    assert_ok(skopeo("copy", "-q", *base_images.registry.skopeo_args("src"),
                     f"docker://{base_images.busybox_docker}", f"dir:{d}"))
    layout = Layout(str(tmp_path / "layout"))
    for blob in d.iterdir():
        if len(blob.name) == 64:
            layout.add_file_blob(str(blob))
    raw = (d / "manifest.json").read_bytes()
    digest, size = layout.add_blob(raw)
    layout.tag("docker", {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                          "digest": digest, "size": size})
    report = judge_oci_layout(layout.path, "docker")
    assert report.manifest_digest == digest
    assert os.path.islink(os.path.join(report.unpacked_rootfs, "bin", "sh"))


def test_xattrs_and_ownership_are_reported(tmp_path) -> None:
    stage = tmp_path / "s"
    stage.mkdir()
    (stage / "f").write_text("x")
    os.setxattr(stage / "f", "user.kiln", b"yes")
    os.chown(stage / "f", 1000, 50)
    os.chmod(stage / "f", 0o4755)
    tar = str(tmp_path / "x.tar")
    subprocess.run(["tar", "--format=posix", "--xattrs", "--xattrs-include=user.*", "--numeric-owner",
                    "-C", str(stage), "-cf", tar, "f"], check=True)
    [member] = check_tar(tar, "xattrs")
    assert member.xattrs == {"user.kiln": "yes"}
    assert (member.uid, member.gid, member.mode, member.type, member.size) == (1000, 50, 0o4755, "file", 1)


def test_zstd_layout_is_unpacked_and_truncated_zstd_fails(base_images: BaseImages, tmp_path) -> None:
    copy = str(tmp_path / "layout")
    shutil.copytree(base_images.layout_path, copy)
    report = judge_oci_layout(copy, "zstd")
    assert report.layers[0].compression == "zstd"
    assert os.path.islink(os.path.join(report.unpacked_rootfs, "bin", "sh"))   # via skopeo -> gzip -> umoci
    blob = os.path.join(copy, "blobs", "sha256", report.layers[0].digest[7:])
    layout = Layout(copy)
    layout.refs = {}
    with open(blob, "rb") as f:
        cut = f.read()[: 4096]
    cut_digest, cut_size = layout.add_blob(cut)
    manifest = dict(report.manifest)
    manifest["layers"] = [{**manifest["layers"][0], "digest": cut_digest, "size": cut_size}]
    md, ms = layout.add_json(manifest)
    layout.tag("cut", {"mediaType": images.OCI_MANIFEST, "digest": md, "size": ms})
    with pytest.raises(JudgeError, match=f"layer 0: blob {cut_digest}: zstd stream is corrupt or truncated"):
        judge_oci_layout(copy, "cut", unpack=False)

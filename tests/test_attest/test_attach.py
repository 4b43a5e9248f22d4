"""The index and attestation manifest as BuildKit stores them, and the sinks that write them."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile

from executor.attest.attach import Predicate, attach
from executor.image import Image, Layer, Platform
from executor.image import mediatypes as mt
from executor.sinks import read_oci_layout, read_tarball
from executor.image.imageindex import ImageIndex
from executor.sinks.index import read_layout_index, write_layout_index, write_tarball_index


def _image(tmp_path) -> Image:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    path = tmp_path / "layer.tar"
    path.write_bytes(buf.getvalue())
    image = Image.empty(Platform.parse("linux/amd64"))
    image.append_layer(Layer.from_file(str(path)))
    return image


def test_index_and_attestation_manifest(tmp_path):
    image = _image(tmp_path)
    artifact = attach(image, [Predicate("https://example/p", {"a": 1})], ["registry.example/app:1"])
    attached = ImageIndex((image,), (artifact,))
    index = json.loads(attached.index_bytes)
    assert index["mediaType"] == mt.OCI_INDEX
    img, att = index["manifests"]
    assert img == {"mediaType": mt.OCI_MANIFEST, "digest": image.digest, "size": len(image.manifest_bytes()),
                   "platform": {"architecture": "amd64", "os": "linux"}}
    assert att["platform"] == {"architecture": "unknown", "os": "unknown"}
    assert att["annotations"] == {"vnd.docker.reference.digest": image.digest,
                                  "vnd.docker.reference.type": "attestation-manifest"}
    assert att["digest"] == "sha256:" + hashlib.sha256(artifact.manifest_bytes).hexdigest()
    manifest = json.loads(artifact.manifest_bytes)
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.in-toto+json"
    assert layer["annotations"] == {"in-toto.io/predicate-type": "https://example/p"}
    statement = json.loads(artifact.blobs[layer["digest"]])
    assert statement == {"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://example/p",
                         "subject": [{"name": "pkg:docker/registry.example/app@1?platform=linux%2Famd64",
                                      "digest": {"sha256": image.digest.split(":")[1]}}],
                         "predicate": {"a": 1}}
    config = json.loads(artifact.blobs[manifest["config"]["digest"]])
    assert config == {"architecture": "unknown", "os": "unknown", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}


def test_an_unnamed_image_has_buildkits_placeholder_subject(tmp_path):
    image = _image(tmp_path)
    artifact = attach(image, [Predicate("p", {})], [])
    statement = json.loads(next(b for d, b in artifact.blobs.items() if b"_type" in b))
    assert statement["subject"] == [{"name": "_", "digest": {"sha256": image.digest.split(":")[1]}}]


def test_layout_and_tarball_sinks(tmp_path):
    image = _image(tmp_path)
    artifact = attach(image, [Predicate("p", {"x": 1})], ["registry.example/app:1"])
    attached = ImageIndex((image,), (artifact,))
    layout = str(tmp_path / "layout")
    write_layout_index(layout, attached, "registry.example/app:1")
    with open(f"{layout}/index.json") as f:
        top = json.load(f)
    assert top["manifests"][0]["digest"] == attached.digest
    assert read_oci_layout(layout).digest == image.digest        # the image, through the nested index
    back = read_layout_index(layout)
    assert back.digest == attached.digest and back.artifacts == attached.artifacts
    assert [i.digest for i in back.images] == [image.digest]
    tar_path = str(tmp_path / "image.tar")
    write_tarball_index(tar_path, attached, ["registry.example/app:1"])
    with tarfile.open(tar_path) as tar:
        assert json.load(tar.extractfile("index.json"))["manifests"][0]["digest"] == attached.digest
        assert json.load(tar.extractfile("oci-layout")) == {"imageLayoutVersion": "1.0.0"}
        for digest, data in artifact.blobs.items():
            assert tar.extractfile(f"blobs/sha256/{digest.split(':')[1]}").read() == data
    loaded = read_tarball(tar_path, work_dir=str(tmp_path / "x"))
    assert [l.digest for l in loaded.layers] == [l.digest for l in image.layers]
    assert loaded.config.diff_ids == image.config.diff_ids

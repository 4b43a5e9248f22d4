import gzip
import hashlib
import io
import json
import subprocess
import tarfile

import pytest
import zstandard

from executor.image import (Descriptor, HistoryEntry, Healthcheck, Image, ImageConfig, ImageError, Layer,
                            LayerError, Manifest, Platform, compression)
from executor.image import digest as dg
from executor.image import mediatypes as mt


def make_tar(path, files: dict[str, bytes]):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 0
            t.addfile(ti, io.BytesIO(data))
    return path


@pytest.fixture
def tar_path(tmp_path):
    return str(make_tar(tmp_path / "layer.tar", {"etc/hello": b"hello\n" * 1000, "bin/x": b"\x7fELF" * 10}))


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_compress_round_trip_judged_by_real_tools(tmp_path, tar_path, kind):
    blob = str(tmp_path / "blob")
    res = compression.compress_file(tar_path, blob, kind)
    raw = open(tar_path, "rb").read()
    data = open(blob, "rb").read()
    assert res.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert res.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert res.size == len(data)
    assert compression.detect(data[:4]) == kind
    if kind == "gzip":
        assert gzip.decompress(data) == raw
        out = subprocess.run(["tar", "-tzf", blob], capture_output=True, text=True, check=True).stdout
        assert "etc/hello" in out
    elif kind == "zstd":
        assert zstandard.ZstdDecompressor().decompressobj().decompress(data) == raw
    with open(blob, "rb") as f, compression.open_decompressed(f, kind) as r:
        assert r.read() == raw


@pytest.mark.parametrize("kind,media_type", [("gzip", mt.OCI_LAYER_GZIP), ("zstd", mt.OCI_LAYER_ZSTD),
                                              ("none", mt.OCI_LAYER)])
def test_layer_from_file_and_verify(tmp_path, tar_path, kind, media_type):
    blob = str(tmp_path / "blob")
    res = compression.compress_file(tar_path, blob, kind)
    layer = Layer.from_file(blob)
    assert layer.media_type == media_type
    assert (layer.digest, layer.diff_id, layer.size) == (res.digest, res.diff_id, res.size)
    layer.verify()
    with layer.open_tar() as t:
        assert t.read() == open(tar_path, "rb").read()
    docker = Layer.from_file(blob, fmt=mt.DOCKER)
    assert docker.media_type == mt.to_docker(media_type)


def test_layer_from_layer_file(tmp_path, tar_path):
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class LayerFile:  # the shape of snapshot.LayerFile (docs/architecture.md)
        path: str
        digest: str
        diff_id: str
        size: int
        compression: str

    blob = str(tmp_path / "blob.zst")
    r = compression.compress_file(tar_path, blob, "zstd")
    layer = Layer.from_layer_file(LayerFile(blob, r.digest, r.diff_id, r.size, "zstd"), fmt=mt.DOCKER)
    assert layer.media_type == mt.OCI_LAYER_ZSTD  # Docker schema 2 has no zstd type
    layer.verify()


@pytest.mark.parametrize("fault", ["digest", "size", "diff_id", "compression", "truncated"])
def test_verify_names_the_blob(tmp_path, tar_path, fault):
    blob = str(tmp_path / "blob")
    r = compression.compress_file(tar_path, blob, "gzip")
    digest, size, diff_id, media_type = r.digest, r.size, r.diff_id, mt.OCI_LAYER_GZIP
    if fault == "digest":
        digest = "sha256:" + "0" * 64
    elif fault == "size":
        size += 1
    elif fault == "diff_id":
        diff_id = "sha256:" + "1" * 64
    elif fault == "compression":
        media_type = mt.OCI_LAYER_ZSTD
    elif fault == "truncated":
        data = open(blob, "rb").read()
        open(blob, "wb").write(data[: len(data) // 2])
        digest, size = dg.of_file(blob)
    layer = Layer(Descriptor(media_type, digest, size), diff_id, lambda: open(blob, "rb"))
    with pytest.raises(LayerError, match=digest) as err:
        layer.verify()
    why = {"digest": f"content hashes to {r.digest}", "size": f"size is {size - 1} bytes, the manifest says {size}",
           "diff_id": f"uncompressed content hashes to {r.diff_id}, the config's diff_id is {diff_id}",
           "compression": f"media type {mt.OCI_LAYER_ZSTD} says zstd but the bytes are gzip",
           "truncated": "cannot be decompressed as gzip: "}[fault]
    assert str(err.value).startswith(f"layer blob {digest}: {why}"), str(err.value)


def _image(tmp_path, tar_path, fmt):
    blob = str(tmp_path / "blob")
    compression.compress_file(tar_path, blob, "gzip")
    img = Image.empty(Platform.parse("linux/arm64/v8"), fmt)
    img.append_layer(Layer.from_file(blob, fmt=fmt), HistoryEntry(created_by="COPY . /"))
    img.append_history(HistoryEntry(created_by="ENV A=1", empty_layer=True))
    img.config.set_env("A", "1")
    return img


@pytest.mark.parametrize("fmt", [mt.OCI, mt.DOCKER])
def test_image_manifest_digest_is_of_written_bytes(tmp_path, tar_path, fmt):
    img = _image(tmp_path, tar_path, fmt)
    img.validate()
    data = img.manifest_bytes()
    assert img.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    m = json.loads(data)
    assert m["mediaType"] == (mt.OCI_MANIFEST if fmt == mt.OCI else mt.DOCKER_MANIFEST)
    assert m["config"]["mediaType"] == (mt.OCI_CONFIG if fmt == mt.OCI else mt.DOCKER_CONFIG)
    assert m["config"]["digest"] == dg.of_bytes(img.config_bytes())
    assert m["layers"][0]["mediaType"] == (mt.OCI_LAYER_GZIP if fmt == mt.OCI else mt.DOCKER_LAYER)
    cfg = json.loads(img.config_bytes())
    assert cfg["architecture"] == "arm64" and cfg["variant"] == "v8"
    assert cfg["rootfs"]["diff_ids"] == [img.layers[0].diff_id]
    assert cfg["config"]["Env"] == ["A=1"]


def test_convert_maps_media_types_and_keeps_blobs(tmp_path, tar_path):
    oci = _image(tmp_path, tar_path, mt.OCI)
    docker = oci.converted(mt.DOCKER)
    assert docker.media_type == mt.DOCKER_MANIFEST
    assert docker.layers[0].media_type == mt.DOCKER_LAYER
    assert docker.config_bytes() == oci.config_bytes()
    assert docker.digest != oci.digest
    back = docker.converted(mt.OCI)
    assert back.manifest_bytes() == oci.manifest_bytes()
    m = Manifest.from_bytes(docker.manifest_bytes())
    assert m.converted(mt.OCI).to_bytes() == oci.manifest_bytes()


def test_raw_manifest_and_config_survive_round_trip(tmp_path, tar_path):
    img = _image(tmp_path, tar_path, mt.OCI)
    # Foreign formatting: indentation and unknown fields must survive, so the digest is unchanged.
    cfg = json.loads(img.config_bytes())
    cfg["x-unknown"] = {"keep": [1, 2]}
    cfg_raw = json.dumps(cfg, indent=3).encode()
    config = ImageConfig.from_bytes(cfg_raw)
    m = json.loads(img.manifest_bytes())
    m["config"]["digest"], m["config"]["size"] = dg.of_bytes(cfg_raw), len(cfg_raw)
    m["annotations"] = {"org.opencontainers.image.ref.name": "x"}
    raw = json.dumps(m, indent=2).encode()
    manifest = Manifest.from_bytes(raw)
    pulled = Image.from_parts(manifest, config, img.layers)
    assert pulled.manifest_bytes() == raw
    assert pulled.config_bytes() == cfg_raw
    pulled.config.user = "nobody"
    assert pulled.config_bytes() != cfg_raw
    assert json.loads(pulled.config_bytes())["x-unknown"] == {"keep": [1, 2]}
    assert pulled.manifest_bytes() != raw
    assert json.loads(pulled.manifest_bytes())["annotations"] == {"org.opencontainers.image.ref.name": "x"}


def test_from_parts_rejects_wrong_config(tmp_path, tar_path):
    img = _image(tmp_path, tar_path, mt.OCI)
    manifest = img.manifest()
    with pytest.raises(ImageError, match=manifest.config.digest):
        Image.from_parts(manifest, ImageConfig.from_bytes(b'{"os":"linux"}'), img.layers)


def test_validate_catches_diff_id_mismatch(tmp_path, tar_path):
    img = _image(tmp_path, tar_path, mt.OCI)
    layer = img.layers[0]
    img.config.diff_ids = ["sha256:" + "2" * 64]
    with pytest.raises(ImageError) as err:
        img.validate()
    assert str(err.value) == (f"image {img.digest}: layer 0 ({layer.digest}) has diff_id {layer.diff_id} "
                              f"but the config says sha256:{'2' * 64}")


def test_config_helpers():
    c = ImageConfig.new(Platform.parse("linux/amd64"))
    c.env = ["PATH=/bin"]
    c.set_env("PATH", "/usr/bin")
    c.set_env("B", "x=y")
    assert c.env == ["PATH=/usr/bin", "B=x=y"] and c.env_dict()["B"] == "x=y"
    c.cmd, c.entrypoint, c.shell, c.on_build = ["sh"], ["/init"], ["/bin/bash", "-c"], ["RUN true"]
    c.working_dir, c.user, c.stop_signal = "/app", "1000:1000", "SIGTERM"
    c.exposed_ports, c.volumes = ["80/tcp", "53/udp"], ["/data"]
    c.labels = {"a": "b"}
    c.healthcheck = Healthcheck(("CMD", "true"), interval=30_000_000_000, retries=3)
    d = json.loads(c.to_bytes())["config"]
    assert d["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}} and d["Volumes"] == {"/data": {}}
    assert d["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 30_000_000_000, "Retries": 3}
    assert d["Cmd"] == ["sh"] and d["Entrypoint"] == ["/init"] and d["WorkingDir"] == "/app"
    again = ImageConfig.from_bytes(c.to_bytes())
    assert again.healthcheck == c.healthcheck and again.labels == {"a": "b"} and again.shell == ["/bin/bash", "-c"]
    c.cmd = None
    assert "Cmd" not in json.loads(c.to_bytes())["config"]


@pytest.mark.parametrize("bad,why", [
    ("sha256:abc", "must have 64 lowercase hex digits after 'sha256:'"),
    ("md5:" + "0" * 32, "uses unsupported algorithm 'md5' (want sha256 or sha512)"),
    ("sha256:" + "G" * 64, "must have 64 lowercase hex digits after 'sha256:'"),
    ("nohex", "is not of the form 'algorithm:hex'"),
])
def test_digest_validation(bad, why):
    with pytest.raises(dg.DigestError) as err:
        dg.validate(bad)
    assert str(err.value) == f"digest {bad!r} {why}"


def test_manifest_rejects_index_and_schema1():
    with pytest.raises(ValueError, match="is an index"):
        Manifest.from_bytes(b'{"schemaVersion":2,"mediaType":"%s","manifests":[]}' % mt.OCI_INDEX.encode())
    with pytest.raises(ValueError, match="schemaVersion 1"):
        Manifest.from_bytes(b'{"schemaVersion":1}')

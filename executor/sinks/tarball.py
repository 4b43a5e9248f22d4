"""A `docker load` tarball as kaniko (go-containerregistry's tarball.MultiWrite) writes it:

    sha256:<config hex>          the config blob
    <layer hex>.tar.gz           each layer blob, as compressed in the image, once per digest
    manifest.json                [{"Config": ..., "RepoTags": [...], "Layers": [...]}]
"""
from __future__ import annotations

import io
import json
import logging
import os
import tarfile
from typing import BinaryIO

from executor.image import Image, Layer
from executor.image import digest as _digest
from executor.registry.reference import DEFAULT_TAG, Reference

log = logging.getLogger(__name__)


def repo_tag(ref: str | Reference) -> str:
    r = ref if isinstance(ref, Reference) else Reference.parse(ref)
    return f"{r.kaniko_name}:{r.tag or DEFAULT_TAG}"


def manifest_json(image: Image, tags: list[str | Reference]) -> list[dict]:
    config_name = image.config_descriptor().digest
    entry: dict = {"Config": config_name, "RepoTags": [repo_tag(t) for t in tags],
                   "Layers": [_layer_name(l) for l in image.layers]}
    sources = {l.digest: l.descriptor.to_dict() for l in image.layers if l.foreign}
    if sources:
        entry["LayerSources"] = sources
    return [entry]


def _layer_name(layer: Layer) -> str:
    return f"{_digest.hex_of(layer.digest)}.tar.gz"


def write_tarball(path: str, image: Image, tags: list[str | Reference]) -> None:
    """Write `image` as a docker-load tarball at `path` (tagged with every destination)."""
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    tmp = f"{path}.partial"
    with open(tmp, "wb") as f:
        write_tarball_to(f, image, tags)
    os.replace(tmp, path)
    log.info("wrote docker tarball %s (%s)", path, ", ".join(repo_tag(t) for t in tags) or "untagged")


def write_tarball_to(stream: BinaryIO, image: Image, tags: list[str | Reference]) -> None:
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
        config = image.config_bytes()
        _add_bytes(tar, image.config_descriptor().digest, config)
        written = set()
        for layer in image.layers:
            if layer.digest in written:
                continue
            written.add(layer.digest)
            info = _info(_layer_name(layer), layer.size)
            with layer.open_blob() as blob:
                tar.addfile(info, _Exact(blob, layer.size, layer.digest))
        _add_bytes(tar, "manifest.json", json.dumps(manifest_json(image, tags), separators=(",", ":")).encode())


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.type = tarfile.REGTYPE
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


class _Exact:
    """A reader that fails loudly if the blob is shorter than its descriptor says."""

    def __init__(self, f: BinaryIO, size: int, digest: str):
        self.f, self.left, self.digest = f, size, digest

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.left
        data = self.f.read(min(n, self.left))
        if not data and self.left:
            raise OSError(f"layer blob {self.digest} ended {self.left} bytes early")
        self.left -= len(data)
        return data


def read_image(path: str, tag: str | None = None, work_dir: str | None = None) -> Image:
    """An image from a `docker load` tarball (ours, ggcr's or `docker save`'s), by RepoTag or the only one.

    Layer blobs are extracted to `work_dir` (default: next to the tarball); a Docker schema 2 manifest is
    made for them (media types from the blobs' magic bytes), so the digest is the one a push would give.
    """
    import tempfile

    from executor.image import ImageConfig
    from executor.image import compression as comp
    from executor.image import mediatypes as mt

    with tarfile.open(path, "r:*") as tar:
        try:
            entries = json.load(tar.extractfile("manifest.json"))
        except KeyError:
            raise ValueError(f"docker tarball {path} has no manifest.json") from None
        if tag is not None:
            want = repo_tag(tag)
            chosen = [e for e in entries if want in [repo_tag(t) for t in e.get("RepoTags") or []]]
            if not chosen:
                raise ValueError(f"docker tarball {path} has no image tagged {want}")
            entry = chosen[0]
        elif len(entries) == 1:
            entry = entries[0]
        else:
            raise ValueError(f"docker tarball {path} holds {len(entries)} images; name a tag")
        config_bytes = tar.extractfile(entry["Config"]).read()
        config = ImageConfig.from_bytes(config_bytes, where=f"{path} config {entry['Config']}")
        out_dir = work_dir or tempfile.mkdtemp(prefix="kiln-tar-", dir=os.path.dirname(os.path.abspath(path)))
        os.makedirs(out_dir, exist_ok=True)
        layers = []
        diff_ids = config.diff_ids
        if len(diff_ids) != len(entry.get("Layers") or []):
            raise ValueError(f"docker tarball {path}: config lists {len(diff_ids)} diff_ids for "
                             f"{len(entry.get('Layers') or [])} layers")
        for i, (name, diff_id) in enumerate(zip(entry["Layers"], diff_ids)):
            member = tar.extractfile(name)
            if member is None:
                raise ValueError(f"docker tarball {path}: layer {name} is not a file in the tarball")
            dest = os.path.join(out_dir, f"{i}-{os.path.basename(name)}")  # docker save: <id>/layer.tar
            with open(dest, "wb") as out:
                while chunk := member.read(1 << 20):
                    out.write(chunk)
            media_type = mt.layer_media_type(comp.detect_file(dest), mt.DOCKER)
            layers.append(Layer.from_file(dest, media_type=media_type, diff_id=diff_id))
    return Image(config, layers, mt.DOCKER_MANIFEST)

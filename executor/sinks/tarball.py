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

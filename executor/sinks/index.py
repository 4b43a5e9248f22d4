"""The sinks for an image index (`executor.image.ImageIndex`: the images of a multi-platform build, and the
attestation manifests of `--sbom`/`--provenance`): the index goes wherever a single image would go.

* registry: each image (blobs, then its manifest by digest), each attestation manifest's blobs and manifest by
  digest, then the index under each destination's tag: the tag names the index, as after a BuildKit push;
* OCI layout: every blob, and index.json's entry is the index (as BuildKit's `type=oci` exporter writes it);
* docker tarball: `docker load` reads manifest.json, which cannot hold an index, and BuildKit's own docker
  exporter refuses one ("docker exporter does not currently support exporting manifest lists",
  exporter/oci/export.go). kiln writes the tarball as `docker save` of Docker 25 and later does: an OCI
  layout (oci-layout, index.json, blobs/sha256/...) whose index.json names the index, and a manifest.json
  for `docker load` whose Config and Layers are blob files of one image: the one for the machine's platform
  (else the first built), so `docker load` loads what can run there; OCI tools (skopeo's `oci-archive:`) see
  every platform and the attestations.
"""
from __future__ import annotations

import json
import logging
import os
import tarfile
from typing import BinaryIO

from executor.image import Descriptor, Image, Index, Manifest, Platform, host_platform
from executor.image import digest as _digest
from executor.image import mediatypes as mt
from executor.image.imageindex import Artifact, ImageIndex
from executor.registry import Reference, RegistryClient

from . import layout as _layout
from .tarball import _Exact, _add_bytes, _info, repo_tag

log = logging.getLogger(__name__)

CONTAINERD_IMAGE_NAME = "io.containerd.image.name"


def push_index(ix: ImageIndex, destinations: list[str], client: RegistryClient,
               confirmed: dict[tuple[str, str], dict[str, str]] | None = None) -> str:
    """Push every image and artifact by digest, then the index under each tag; returns the index digest.
    Nothing is tagged until every manifest the index names is in every destination repository."""
    refs = [Reference.parse(d) for d in destinations]
    for image in ix.images:
        client.push(image, [Reference(r.registry, r.repository, None, image.digest) for r in refs], confirmed)
    for artifact in ix.artifacts:
        client.push_artifact(artifact.manifest_bytes, artifact.descriptor.media_type, artifact.blobs, refs)
    return client.push_index(ix.index, refs)


def write_layout_index(layout: str, ix: ImageIndex, ref_name: str | None) -> Descriptor:
    _layout.init_layout(layout)
    for image in ix.images:
        for layer in image.layers:
            if not layer.foreign:
                _layout.write_blob(layout, layer.digest, layer.open_blob, layer.size)
        _layout.write_bytes_blob(layout, image.config_bytes())
        _layout.write_bytes_blob(layout, image.manifest_bytes())
    for artifact in ix.artifacts:
        for data in artifact.blobs.values():
            _layout.write_bytes_blob(layout, data)
        _layout.write_bytes_blob(layout, artifact.manifest_bytes)
    _layout.write_bytes_blob(layout, ix.index_bytes)
    return _layout.add_entry(layout, ix.descriptor(), ref_name)


def _blob_name(digest: str) -> str:
    return f"blobs/{_digest.algorithm_of(digest)}/{_digest.hex_of(digest)}"


def loadable_image(ix: ImageIndex, platform: Platform | None = None) -> Image:
    """The image `docker load` gets from the tarball: the one for `platform` (default: this machine's), else
    the first built."""
    return ix.image_for(platform or host_platform()) or ix.images[0]


def write_tarball_index(path: str, ix: ImageIndex, tags: list[str]) -> None:
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    tmp = f"{path}.partial"
    with open(tmp, "wb") as f:
        write_tarball_index_to(f, ix, tags)
    os.replace(tmp, path)
    log.info("wrote docker tarball %s holding an index of %d platform(s)%s (%s)", path, len(ix.images),
             " with attestations" if ix.artifacts else "", ", ".join(repo_tag(t) for t in tags) or "untagged")


def write_tarball_index_to(stream: BinaryIO, ix: ImageIndex, tags: list[str]) -> None:
    loaded = loadable_image(ix)
    names = [repo_tag(t) for t in tags]
    index_entry = ix.descriptor().to_dict()
    if names:
        ref = Reference.parse(tags[0])
        index_entry["annotations"] = {CONTAINERD_IMAGE_NAME: names[0], _layout.REF_NAME: ref.tag or "latest"}
    top_index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [index_entry]}
    entry: dict = {"Config": _blob_name(loaded.config_descriptor().digest), "RepoTags": names,
                   "Layers": [_blob_name(l.digest) for l in loaded.layers]}
    sources = {l.digest: l.descriptor.to_dict() for l in loaded.layers if l.foreign}
    if sources:
        entry["LayerSources"] = sources
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
        written: set[str] = set()

        def add(digest: str, data: bytes) -> None:
            if digest not in written:
                written.add(digest)
                _add_bytes(tar, _blob_name(digest), data)

        for directory in ("blobs/", "blobs/sha256/"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for image in ix.images:
            add(image.config_descriptor().digest, image.config_bytes())
            for layer in image.layers:
                if layer.foreign or layer.digest in written:
                    continue
                written.add(layer.digest)
                with layer.open_blob() as blob:
                    tar.addfile(_info(_blob_name(layer.digest), layer.size), _Exact(blob, layer.size, layer.digest))
            add(image.digest, image.manifest_bytes())
        for artifact in ix.artifacts:
            for digest, data in artifact.blobs.items():
                add(digest, data)
            add(artifact.descriptor.digest, artifact.manifest_bytes)
        add(ix.digest, ix.index_bytes)
        _add_bytes(tar, "index.json", json.dumps(top_index, separators=(",", ":")).encode())
        _add_bytes(tar, "manifest.json", json.dumps([entry], separators=(",", ":")).encode())
        _add_bytes(tar, _layout.LAYOUT_FILE,
                   json.dumps({"imageLayoutVersion": _layout.LAYOUT_VERSION}).encode())


def read_layout_index(layout: str, ref_name: str | None = None) -> ImageIndex | None:
    """The image index an OCI layout holds as `write_layout_index` (or BuildKit) wrote it: the entry (named
    `ref_name`, or the only one) is an index whose manifests are images (one per platform) and attestation
    manifests. None when the entry is a single image; LayoutError when a blob is missing or damaged."""
    from executor.attest.attach import ATTESTATION_MANIFEST, REFERENCE_TYPE

    top = _layout.read_index(layout)
    entries = [e for e in top.manifests if ref_name is None or e.annotations.get(_layout.REF_NAME) == ref_name]
    if len(entries) != 1 or not mt.is_index(entries[0].media_type):
        return None
    raw = _layout._read_blob(layout, entries[0])
    index = Index.from_bytes(raw, entries[0].media_type, where=f"{layout} index {entries[0].digest}")
    images: list[Image] = []
    artifacts: list[Artifact] = []
    name = entries[0].annotations.get(_layout.REF_NAME)
    for desc in index.manifests:
        if desc.annotations.get(REFERENCE_TYPE) == ATTESTATION_MANIFEST:
            data = _layout._read_blob(layout, desc)
            manifest = Manifest.from_bytes(data, desc.media_type, where=f"{layout} manifest {desc.digest}")
            blobs = {d.digest: _layout._read_blob(layout, d) for d in (manifest.config, *manifest.layers)}
            artifacts.append(Artifact(desc, data, blobs))
        else:
            images.append(_layout.read_image(layout, name, platform=desc.platform))
    return ImageIndex(tuple(images), tuple(artifacts), dict(index.annotations), raw=raw)


__all__ = ["loadable_image", "push_index", "read_layout_index", "write_layout_index", "write_tarball_index"]

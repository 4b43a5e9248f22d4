"""The sinks for an image with attestations (`executor.attest.attach.AttachedImage`): an index holding the image
manifest and its attestation manifest goes wherever the image alone would go.

* registry: the image (blobs, then its manifest by digest), the attestation manifest's blobs and manifest by
  digest, then the index under each destination's tag: the tag names the index, as after a BuildKit push;
* OCI layout: every blob, and index.json's entry is the index (as BuildKit's `type=oci` exporter writes it);
* docker tarball: `docker load` reads manifest.json, which cannot hold an index, and BuildKit's own docker
  exporter refuses attestations ("docker exporter does not currently support exporting manifest lists",
  exporter/oci/export.go). kiln writes the tarball as `docker save` of Docker 25 and later does: an OCI
  layout (oci-layout, index.json, blobs/sha256/...) whose index.json names the index, and a manifest.json
  for `docker load` whose Config and Layers are the same blob files. `docker load` loads the image; OCI tools
  (skopeo's `oci-archive:`) see the attestations.
"""
from __future__ import annotations

import json
import logging
import os
import tarfile
from typing import BinaryIO

from executor.attest.attach import AttachedImage
from executor.image import Descriptor
from executor.image import digest as _digest
from executor.image import mediatypes as mt
from executor.registry import Reference, RegistryClient

from . import layout as _layout
from .tarball import _Exact, _add_bytes, _info, repo_tag

log = logging.getLogger(__name__)

CONTAINERD_IMAGE_NAME = "io.containerd.image.name"


def push_attested(attached: AttachedImage, destinations: list[str], client: RegistryClient) -> str:
    """Push the image, its attestation manifest and the index; returns the index digest (what the tags name)."""
    refs = [Reference.parse(d) for d in destinations]
    image_digest = attached.image.digest
    client.push(attached.image, [Reference(r.registry, r.repository, None, image_digest) for r in refs])
    client.push_artifact(attached.manifest_bytes, mt.OCI_MANIFEST, attached.blobs, refs)
    return client.push_index(attached.index, refs)


def write_layout_attested(layout: str, attached: AttachedImage, ref_name: str | None) -> Descriptor:
    _layout.init_layout(layout)
    image = attached.image
    for layer in image.layers:
        if not layer.foreign:
            _layout.write_blob(layout, layer.digest, layer.open_blob, layer.size)
    _layout.write_bytes_blob(layout, image.config_bytes())
    _layout.write_bytes_blob(layout, image.manifest_bytes())
    for data in attached.blobs.values():
        _layout.write_bytes_blob(layout, data)
    _layout.write_bytes_blob(layout, attached.manifest_bytes)
    _layout.write_bytes_blob(layout, attached.index_bytes)
    return _layout.add_entry(layout, attached.index_descriptor(), ref_name)


def _blob_name(digest: str) -> str:
    return f"blobs/{_digest.algorithm_of(digest)}/{_digest.hex_of(digest)}"


def write_tarball_attested(path: str, attached: AttachedImage, tags: list[str]) -> None:
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    tmp = f"{path}.partial"
    with open(tmp, "wb") as f:
        write_tarball_attested_to(f, attached, tags)
    os.replace(tmp, path)
    log.info("wrote docker tarball %s with attestations (%s)", path,
             ", ".join(repo_tag(t) for t in tags) or "untagged")


def write_tarball_attested_to(stream: BinaryIO, attached: AttachedImage, tags: list[str]) -> None:
    image = attached.image
    config = image.config_bytes()
    config_digest = image.config_descriptor().digest
    names = [repo_tag(t) for t in tags]
    index_entry = attached.index_descriptor().to_dict()
    if names:
        ref = Reference.parse(tags[0])
        index_entry["annotations"] = {CONTAINERD_IMAGE_NAME: names[0],
                                      _layout.REF_NAME: ref.tag or "latest"}
    top_index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [index_entry]}
    entry: dict = {"Config": _blob_name(config_digest), "RepoTags": names,
                   "Layers": [_blob_name(l.digest) for l in image.layers]}
    sources = {l.digest: l.descriptor.to_dict() for l in image.layers if l.foreign}
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
        add(config_digest, config)
        for layer in image.layers:
            if layer.foreign or layer.digest in written:
                continue
            written.add(layer.digest)
            with layer.open_blob() as blob:
                tar.addfile(_info(_blob_name(layer.digest), layer.size), _Exact(blob, layer.size, layer.digest))
        add(image.digest, image.manifest_bytes())
        for digest, data in attached.blobs.items():
            add(digest, data)
        add(_digest.of_bytes(attached.manifest_bytes), attached.manifest_bytes)
        add(attached.digest, attached.index_bytes)
        _add_bytes(tar, "index.json", json.dumps(top_index, separators=(",", ":")).encode())
        _add_bytes(tar, "manifest.json", json.dumps([entry], separators=(",", ":")).encode())
        _add_bytes(tar, _layout.LAYOUT_FILE,
                   json.dumps({"imageLayoutVersion": _layout.LAYOUT_VERSION}).encode())


def read_layout_attested(layout: str, ref_name: str | None = None) -> AttachedImage | None:
    """The image and attestations an OCI layout holds as `write_layout_attested` (or BuildKit) wrote them: the
    entry (named `ref_name`, or the only one) is an index of one image and its attestation manifest; None when
    the entry is anything else."""
    from executor.attest.attach import ATTESTATION_MANIFEST, REFERENCE_TYPE
    from executor.image import Index, Manifest

    top = _layout.read_index(layout)
    entries = [e for e in top.manifests if ref_name is None or e.annotations.get(_layout.REF_NAME) == ref_name]
    if len(entries) != 1 or not mt.is_index(entries[0].media_type):
        return None
    index_bytes = _layout._read_blob(layout, entries[0])
    index = Index.from_bytes(index_bytes, entries[0].media_type, where=f"{layout} index {entries[0].digest}")
    images = [m for m in index.manifests if m.annotations.get(REFERENCE_TYPE) != ATTESTATION_MANIFEST]
    atts = [m for m in index.manifests if m.annotations.get(REFERENCE_TYPE) == ATTESTATION_MANIFEST]
    if len(images) != 1 or len(atts) != 1:
        return None
    image = _layout.read_image(layout, ref_name, platform=images[0].platform)
    manifest_bytes = _layout._read_blob(layout, atts[0])
    manifest = Manifest.from_bytes(manifest_bytes, atts[0].media_type, where=f"{layout} manifest {atts[0].digest}")
    blobs = {d.digest: _layout._read_blob(layout, d) for d in (manifest.config, *manifest.layers)}
    return AttachedImage(image, images[0], manifest, manifest_bytes, blobs, index, index_bytes)


__all__ = ["push_attested", "read_layout_attested", "write_layout_attested", "write_tarball_attested"]

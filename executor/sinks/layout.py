"""An OCI image layout (oci-layout, index.json, blobs/<alg>/<hex>); written fresh or appended to."""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile

from executor.image import Descriptor, Image, Index
from executor.image import digest as _digest
from executor.image import mediatypes as mt

log = logging.getLogger(__name__)

LAYOUT_FILE = "oci-layout"
LAYOUT_VERSION = "1.0.0"
REF_NAME = "org.opencontainers.image.ref.name"


class LayoutError(ValueError):
    pass


def blob_path(layout: str, digest: str) -> str:
    return os.path.join(layout, "blobs", _digest.algorithm_of(digest), _digest.hex_of(digest))


def read_index(layout: str) -> Index:
    path = os.path.join(layout, "index.json")
    if not os.path.exists(path):
        return Index(mt.OCI_INDEX, ())
    with open(path, "rb") as f:
        data = f.read()
    try:
        return Index.from_bytes(data, mt.OCI_INDEX, where=f"{path}")
    except ValueError as e:
        raise LayoutError(str(e)) from None


def init_layout(layout: str) -> None:
    """Create the layout if needed; refuse a directory that is something else."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    marker = os.path.join(layout, LAYOUT_FILE)
    if os.path.exists(marker):
        with open(marker, "rb") as f:
            try:
                version = json.load(f).get("imageLayoutVersion")
            except ValueError:
                raise LayoutError(f"{marker} is not valid JSON") from None
        if version != LAYOUT_VERSION:
            raise LayoutError(f"{marker} says imageLayoutVersion {version!r}; kiln writes only {LAYOUT_VERSION} "
                              f"layouts (name an empty directory or a {LAYOUT_VERSION} layout)")
    else:
        _atomic_write(marker, json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode())
    if not os.path.exists(os.path.join(layout, "index.json")):
        _atomic_write(os.path.join(layout, "index.json"), Index(mt.OCI_INDEX, ()).to_bytes())


def write_blob(layout: str, digest: str, opener, size: int) -> None:
    """Copy a blob in, checking its digest and size; an existing blob is kept."""
    dest = blob_path(layout, digest)
    if os.path.exists(dest) and os.path.getsize(dest) == size:
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=os.path.dirname(dest))
    try:
        h = _digest.hasher(digest)
        n = 0
        with os.fdopen(fd, "wb") as out, opener() as src:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
                n += len(chunk)
                out.write(chunk)
        got = f"{_digest.algorithm_of(digest)}:{h.hexdigest()}"
        if got != digest or n != size:
            raise LayoutError(f"blob {digest}: source has {n} bytes hashing to {got} (want {size} bytes)")
        os.replace(tmp, dest)
        tmp = ""
    finally:
        if tmp:
            os.unlink(tmp)


def write_bytes_blob(layout: str, data: bytes) -> Descriptor:
    import io
    digest = _digest.of_bytes(data)
    write_blob(layout, digest, lambda: io.BytesIO(data), len(data))
    return Descriptor("application/octet-stream", digest, len(data))


def append_image(layout: str, image: Image, ref_name: str | None = None, platform: bool = False) -> Descriptor:
    """Write the image's blobs, config and manifest, then add it to index.json.

    With `ref_name`, the entry is annotated org.opencontainers.image.ref.name=<ref_name> and takes that
    name from any older entry. Returns the manifest descriptor that was added.
    """
    init_layout(layout)
    for layer in image.layers:
        if layer.foreign:
            continue
        write_blob(layout, layer.digest, layer.open_blob, layer.size)
    write_bytes_blob(layout, image.config_bytes())
    manifest = image.manifest_bytes()
    write_bytes_blob(layout, manifest)
    return add_entry(layout, image.descriptor(platform=platform), ref_name)


def add_entry(layout: str, desc: Descriptor, ref_name: str | None = None) -> Descriptor:
    """Add `desc` (whose blobs are written) to index.json; with `ref_name`, the entry is annotated
    org.opencontainers.image.ref.name=<ref_name> and takes that name from any older entry."""
    if ref_name:
        desc = Descriptor(desc.media_type, desc.digest, desc.size, annotations={REF_NAME: ref_name},
                          platform=desc.platform)
    index = read_index(layout)
    kept = []
    for entry in index.manifests:
        if ref_name and entry.annotations.get(REF_NAME) == ref_name:
            if entry.digest == desc.digest:
                continue  # same image under the same name: replaced by the new entry
            annotations = {k: v for k, v in entry.annotations.items() if k != REF_NAME}
            entry = Descriptor(entry.media_type, entry.digest, entry.size, entry.urls, annotations,
                               entry.platform, entry.artifact_type)
        kept.append(entry)
    new_index = Index(mt.OCI_INDEX, tuple(kept) + (desc,), dict(index.annotations))
    _atomic_write(os.path.join(layout, "index.json"), new_index.to_bytes())
    log.info("wrote %s to OCI layout %s%s", desc.digest, layout, f" as {ref_name}" if ref_name else "")
    return desc


def _atomic_write(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=os.path.dirname(path) or ".")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def remove_layout(layout: str) -> None:
    shutil.rmtree(layout)


def read_image(layout: str, ref_name: str | None = None, platform=None) -> Image:
    """The image index.json names `ref_name` (or its only entry), an index resolved to `platform`
    (default: the host's). Layers are the layout's blob files; the config is checked against its digest."""
    from executor.image import ImageConfig, Layer, Manifest, host_platform

    index = read_index(layout)
    entries = list(index.manifests)
    if ref_name is not None:
        entries = [e for e in entries if e.annotations.get(REF_NAME) == ref_name]
        if not entries:
            names = [e.annotations.get(REF_NAME) for e in index.manifests]
            raise LayoutError(f"OCI layout {layout}: no entry named {ref_name!r} in index.json (names: {names})")
    elif len(entries) != 1:
        raise LayoutError(f"OCI layout {layout}: index.json has {len(entries)} entries; name one")
    desc = entries[-1]
    while mt.is_index(desc.media_type):
        nested = Index.from_bytes(_read_blob(layout, desc), desc.media_type, where=f"{layout} index {desc.digest}")
        desc = nested.select(platform or host_platform(), where=f"{layout} index {desc.digest}")
    manifest = Manifest.from_bytes(_read_blob(layout, desc), desc.media_type, where=f"{layout} manifest {desc.digest}")
    config = ImageConfig.from_bytes(_read_blob(layout, manifest.config),
                                    where=f"{layout} config {manifest.config.digest}")
    diff_ids = config.diff_ids
    if len(diff_ids) != len(manifest.layers):
        raise LayoutError(f"OCI layout {layout}: config {manifest.config.digest} lists {len(diff_ids)} diff_ids for "
                          f"{len(manifest.layers)} layers")
    layers = []
    for ld, diff_id in zip(manifest.layers, diff_ids):
        path = blob_path(layout, ld.digest)
        if not os.path.isfile(path) and not mt.is_foreign(ld.media_type):
            raise LayoutError(f"OCI layout {layout}: layer blob {ld.digest} is missing ({path})")
        if os.path.isfile(path) and os.path.getsize(path) != ld.size:
            raise LayoutError(f"OCI layout {layout}: layer blob {ld.digest} is {os.path.getsize(path)} bytes, "
                              f"the manifest says {ld.size}")
        layers.append(Layer(ld, diff_id, (lambda p=path: open(p, "rb")), path=path))
    return Image.from_parts(manifest, config, layers)


def _read_blob(layout: str, desc: Descriptor) -> bytes:
    path = blob_path(layout, desc.digest)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise LayoutError(f"OCI layout {layout}: blob {desc.digest} cannot be read: {e.strerror}") from None
    if len(data) != desc.size or _digest.of_bytes(data) != desc.digest:
        raise LayoutError(f"OCI layout {layout}: blob {desc.digest} does not match its descriptor "
                          f"({len(data)} bytes, hashes to {_digest.of_bytes(data)})")
    return data

"""`executor push PATH -d DEST...`: push an image built earlier, as the osscontainertools fork's subcommand.

PATH is a `docker save`/`--tar-path` tarball (a file) or an OCI image layout (a directory, e.g. from
`--oci-layout-path`; its one image, or the image whose `org.opencontainers.image.ref.name` is the first
destination's tag when it holds several). Destinations are parsed and their push permission checked before
anything is uploaded, as for a build; then blobs go up before the manifest of each destination.
"""
from __future__ import annotations

import logging
import os
import tempfile

from executor.engine.preflight import PreflightError, check_push_permissions
from executor.image import Image
from executor.options import PushOptions
from executor.registry import Reference, ReferenceError, RegistryClient
from executor.sinks import push
from executor.sinks import layout as oci_layout
from executor.sinks import tarball
from executor.sinks.index import push_index, read_layout_index

log = logging.getLogger(__name__)


def load_image(path: str, tag: str | None, work_dir: str) -> Image:
    """The image at `path`: a docker tarball (file) or an OCI layout (directory)."""
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "index.json")):
            raise PreflightError(f"{path} is a directory but not an OCI image layout (no index.json)")
        try:
            return oci_layout.read_image(path)
        except oci_layout.LayoutError as first:
            if tag:
                try:
                    return oci_layout.read_image(path, ref_name=tag)
                except oci_layout.LayoutError:
                    pass
            raise PreflightError(str(first)) from None
    if os.path.isfile(path):
        try:
            return tarball.read_image(path, work_dir=work_dir)
        except (ValueError, KeyError, OSError) as e:
            raise PreflightError(f"{path} is not a docker tarball: {e}") from None
    raise PreflightError(f"path {path} not readable: no such file or directory")


def _layout_index(path: str):
    """The image index an OCI layout's one entry is (several platforms, attestations), else None."""
    if not os.path.isfile(os.path.join(path, "index.json")) or not os.path.isdir(path):
        return None
    try:
        return read_layout_index(path)
    except (oci_layout.LayoutError, ValueError) as e:
        raise PreflightError(f"{path}: {e}") from None


def run(opts: PushOptions) -> int:
    for destination in opts.destinations:
        try:
            Reference.parse(destination)
        except ReferenceError as e:
            raise PreflightError(f"invalid --destination {destination!r}: {e}") from None
    path = os.path.abspath(opts.path)
    if not os.path.exists(path):
        raise PreflightError(f"path {opts.path} not readable: no such file or directory")
    client = RegistryClient(opts.registry)
    if not opts.skip_push_permission_check:
        check_push_permissions(list(opts.destinations), client)
    with tempfile.TemporaryDirectory(prefix="kiln-push-") as work_dir:
        ix = _layout_index(path)
        if ix is not None:       # several platforms, or attestations (--sbom, --provenance): the whole index
            digest = push_index(ix, list(opts.destinations), client)
        else:
            image = load_image(path, Reference.parse(opts.destinations[0]).tag, work_dir)
            digest = push(image, list(opts.destinations), client=client)
    log.info("Pushed %s", ", ".join(f"{d}@{digest}" for d in opts.destinations))
    return 0

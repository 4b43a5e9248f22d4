"""Writing the built image: every registry destination first, then the tarball, the layout, the digest files."""
from __future__ import annotations

import logging

from executor.image import Image
from executor.options import Options
from executor.registry import RegistryClient
from executor.sinks import push, write_digest_files, write_oci_layout, write_tarball
from executor.sinks.layout import LayoutError

log = logging.getLogger(__name__)


def write_outputs(image: Image, opts: Options, client: RegistryClient) -> str:
    digest = image.digest
    if opts.destinations and not opts.no_push:
        digest = push(image, list(opts.destinations), client=client)
        log.info("Pushed %s", ", ".join(f"{d}@{digest}" for d in opts.destinations))
    elif opts.no_push:
        log.info("Skipping push to container registry due to --no-push flag")
    if opts.tar_path:
        write_tarball(opts.tar_path, image, list(opts.destinations))
        log.info("Wrote a docker load tarball to %s", opts.tar_path)
    if opts.oci_layout_path:
        try:
            write_oci_layout(opts.oci_layout_path, image, opts.destinations[0] if opts.destinations else None)
        except LayoutError as e:
            raise LayoutError(f"--oci-layout-path {opts.oci_layout_path}: {e}") from None
        log.info("Wrote the image to the OCI layout %s", opts.oci_layout_path)
    write_digest_files(digest, list(opts.destinations), opts.digest_file or None,
                       opts.image_name_with_digest_file or None, opts.image_name_tag_with_digest_file or None)
    return digest

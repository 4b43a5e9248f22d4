"""Writing the built image: every registry destination first, then the tarball, the layout, the digest files
and the metadata file. With attestations (`attached`), each of them holds the index of the image and its
attestation manifest, and the digest written is the index's (what the destination tags name)."""
from __future__ import annotations

import logging

from executor import progress
from executor.attest.attach import AttachedImage
from executor.engine.report import BuildReport
from executor.image import Image
from executor.options import Options
from executor.registry import RegistryClient
from executor.sinks import push, write_digest_files, write_oci_layout, write_tarball
from executor.sinks.attested import push_attested, write_layout_attested, write_tarball_attested
from executor.sinks.layout import LayoutError
from executor.sinks.metadata_file import metadata, write_metadata_file

log = logging.getLogger(__name__)


def write_outputs(image: Image, opts: Options, client: RegistryClient, attached: AttachedImage | None = None,
                  report: BuildReport | None = None) -> str:
    digest = attached.digest if attached is not None else image.digest
    if opts.destinations and not opts.no_push:
        if attached is not None:
            digest = push_attested(attached, list(opts.destinations), client)
        else:
            digest = push(image, list(opts.destinations), client=client)
        log.info("Pushed %s", ", ".join(f"{d}@{digest}" for d in opts.destinations))
    elif opts.no_push:
        log.info("Skipping push to container registry due to --no-push flag")
    if opts.tar_path:
        if attached is not None:
            write_tarball_attested(opts.tar_path, attached, list(opts.destinations))
        else:
            write_tarball(opts.tar_path, image, list(opts.destinations))
        log.info("Wrote a docker load tarball to %s", opts.tar_path)
    if opts.oci_layout_path:
        ref_name = opts.destinations[0] if opts.destinations else None
        try:
            if attached is not None:
                write_layout_attested(opts.oci_layout_path, attached, ref_name)
            else:
                write_oci_layout(opts.oci_layout_path, image, ref_name)
        except LayoutError as e:
            raise LayoutError(f"--oci-layout-path {opts.oci_layout_path}: {e}") from None
        log.info("Wrote the image to the OCI layout %s", opts.oci_layout_path)
    write_digest_files(digest, list(opts.destinations), opts.digest_file or None,
                       opts.image_name_with_digest_file or None, opts.image_name_tag_with_digest_file or None)
    progress.emit("build.end", digest=digest)
    if opts.metadata_file:
        if attached is not None:
            descriptor, config_digest = attached.index_descriptor(), None
        else:
            descriptor, config_digest = image.descriptor(platform=True), image.config_descriptor().digest
        write_metadata_file(opts.metadata_file, metadata(descriptor, list(opts.destinations), config_digest,
                                                         report.to_dict() if report is not None else None))
    return digest

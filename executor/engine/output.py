"""Writing the build's result: every registry destination first, then the tarball, the layout, the digest files
and the metadata file. The result is one image, or an image index (executor.image.ImageIndex: several
platforms, or attestations attached); for an index every sink writes the index and the digest written is the
index's (what the destination tags name)."""
from __future__ import annotations

import logging

from executor import progress
from executor.engine.report import BuildReport
from executor.image import Image
from executor.image.imageindex import ImageIndex
from executor.options import Options
from executor.registry import RegistryClient
from executor.sinks import push, write_digest_files, write_oci_layout, write_tarball
from executor.sinks.index import push_index, write_layout_index, write_tarball_index
from executor.sinks.layout import LayoutError
from executor.sinks.metadata_file import metadata, write_metadata_file

log = logging.getLogger(__name__)

Result = Image | ImageIndex


def write_outputs(result: Result, opts: Options, client: RegistryClient, report: BuildReport | None = None,
                  confirmed: dict[tuple[str, str], dict[str, str]] | None = None) -> str:
    """`confirmed`: the blobs each destination repository received while the build went on (skipped)."""
    indexed = isinstance(result, ImageIndex)
    digest = result.digest
    if opts.destinations and not opts.no_push:
        if indexed:
            digest = push_index(result, list(opts.destinations), client, confirmed)
        else:
            digest = push(result, list(opts.destinations), client=client, confirmed=confirmed)
        log.info("Pushed %s", ", ".join(f"{d}@{digest}" for d in opts.destinations))
    elif opts.no_push:
        log.info("Skipping push to container registry due to --no-push flag")
    if opts.tar_path:
        if indexed:
            write_tarball_index(opts.tar_path, result, list(opts.destinations))
        else:
            write_tarball(opts.tar_path, result, list(opts.destinations))
        log.info("Wrote a docker load tarball to %s", opts.tar_path)
    if opts.oci_layout_path:
        ref_name = opts.destinations[0] if opts.destinations else None
        try:
            if indexed:
                write_layout_index(opts.oci_layout_path, result, ref_name)
            else:
                write_oci_layout(opts.oci_layout_path, result, ref_name)
        except LayoutError as e:
            raise LayoutError(f"--oci-layout-path {opts.oci_layout_path}: {e}") from None
        log.info("Wrote the image to the OCI layout %s", opts.oci_layout_path)
    write_digest_files(digest, list(opts.destinations), opts.digest_file or None,
                       opts.image_name_with_digest_file or None, opts.image_name_tag_with_digest_file or None)
    progress.emit("build.end", digest=digest)
    if opts.metadata_file:
        if indexed:
            descriptor, config_digest = result.descriptor(), None
        else:
            descriptor, config_digest = result.descriptor(platform=True), result.config_descriptor().digest
        write_metadata_file(opts.metadata_file, metadata(descriptor, list(opts.destinations), config_digest,
                                                         report.to_dict() if report is not None else None))
    return digest

"""`executor index -d DEST --source REF1 --source REF2 ...`: the native fan-out's last step.

Each architecture is built by its own kiln on a node of that architecture (a Kubernetes Job per
`kubernetes.io/arch`, a GitLab `parallel:matrix` job, a Tekton task per platform), each pushing one image; this
step assembles their manifests into one image index and pushes it, as `docker buildx imagetools create`,
`crane index append` or `manifest-tool` would, but without another tool in the pipeline:

* a source naming an image manifest gives one entry, its platform read from its config;
* a source naming an index (a build with --sbom/--provenance, or a multi-platform one) gives all its entries,
  attestation manifests included, with their descriptors unchanged;
* two entries for one platform are refused (which of the two should a client pull?);
* each manifest reaches each destination repository without its blobs uploaded again: nothing when it is there
  already, a cross-repository mount on the same registry, and only from another registry a copy;
* the index's media type is a Docker manifest list when every entry is a Docker image manifest, else an OCI
  image index; its digest goes to --digest-file and --image-name-with-digest-file as a build's would.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from executor.engine.preflight import PreflightError, check_push_permissions
from executor.image import Descriptor, Index, Platform
from executor.image import mediatypes as mt
from executor.options import IndexOptions
from executor.registry import Reference, ReferenceError, RegistryClient
from executor.sinks import write_digest_files

log = logging.getLogger(__name__)


class SourcesError(Exception):
    """The sources cannot make one index (the message names the sources at fault)."""


@dataclass(frozen=True)
class Entry:
    """One manifest the index of `executor index` lists: its descriptor (platform included), where it is now, and
    the --source it came from."""
    descriptor: Descriptor        # as the index lists it
    location: Reference           # where the manifest is now (by digest)
    source: str                   # the --source that gave it


def _entries(client: RegistryClient, source: str) -> list[Entry]:
    ref = Reference.parse(source)
    data, media_type, digest = client.get_manifest(ref)
    if mt.is_index(media_type):
        index = Index.from_bytes(data, media_type, where=f"index {source}")
        return [Entry(d, ref.with_digest(d.digest), source) for d in index.manifests
                if not mt.is_index(d.media_type)]
    image = client.pull(ref.with_digest(digest))     # the config tells the platform; no layer is fetched
    platform = image.config.platform
    return [Entry(Descriptor(media_type, digest, len(data), platform=platform), ref.with_digest(digest), source)]


def _platform_key(desc: Descriptor) -> str | None:
    if desc.platform is None or desc.platform.os == "unknown":
        return None                # attestation manifests (unknown/unknown) are not images
    return str(Platform(desc.platform.os, desc.platform.architecture, desc.platform.variant or ""))


def assemble(client: RegistryClient, sources: list[str]) -> tuple[Index, list[Entry]]:
    entries: list[Entry] = []
    for source in sources:
        entries.extend(_entries(client, source))
    seen: dict[str, str] = {}
    for e in entries:
        key = _platform_key(e.descriptor)
        if key is None:
            continue
        if key in seen:
            raise SourcesError(f"--source {seen[key]} and --source {e.source} are both {key}: an index holds one "
                              "image per platform")
        seen[key] = e.source
    if not seen:
        raise SourcesError(f"no image among the sources ({', '.join(sources)}): only attestation manifests")
    docker = all(e.descriptor.media_type == mt.DOCKER_MANIFEST for e in entries)
    index = Index(mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX, tuple(e.descriptor for e in entries))
    return index, entries


def run(opts: IndexOptions) -> int:
    for flag, values in (("--destination", opts.destinations), ("--source", opts.sources)):
        for value in values:
            try:
                Reference.parse(value)
            except ReferenceError as e:
                raise PreflightError(f"invalid {flag} {value!r}: {e}") from None
    client = RegistryClient(opts.registry)
    if not opts.skip_push_permission_check:
        check_push_permissions(list(opts.destinations), client)
    try:
        index, entries = assemble(client, list(opts.sources))
    except SourcesError as e:
        raise PreflightError(str(e)) from None
    for entry in entries:
        log.info("index entry %s %s from %s", _platform_key(entry.descriptor) or "(attestations)",
                 entry.descriptor.digest, entry.source)
    digest = ""
    for destination in opts.destinations:
        dest = Reference.parse(destination)
        for entry in entries:
            client.copy_manifest(entry.location, dest)
        digest = client.push_index(index, [dest])
    log.info("Pushed %s", ", ".join(f"{d}@{digest}" for d in opts.destinations))
    write_digest_files(digest, list(opts.destinations), opts.digest_file or None,
                       opts.image_name_with_digest_file or None)
    return 0

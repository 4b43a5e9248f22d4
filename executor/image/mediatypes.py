"""Media types of Docker schema 2 and OCI image-spec, and the mapping between the two formats."""
from __future__ import annotations

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

DOCKER = "docker"
OCI = "oci"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
#: What a client sends in Accept when it GETs a manifest by tag or digest.
ACCEPT_MANIFEST = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)

_LAYER_COMPRESSION = {
    DOCKER_LAYER: "gzip",
    DOCKER_FOREIGN_LAYER: "gzip",
    OCI_LAYER: "none",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDIST: "none",
    OCI_LAYER_NONDIST_GZIP: "gzip",
    OCI_LAYER_NONDIST_ZSTD: "zstd",
    # Unofficial Docker-style names seen in the wild for plain and zstd layers; read, never written.
    "application/vnd.docker.image.rootfs.diff.tar": "none",
    "application/vnd.docker.image.rootfs.diff.tar.zstd": "zstd",
}

_FOREIGN = {DOCKER_FOREIGN_LAYER, OCI_LAYER_NONDIST, OCI_LAYER_NONDIST_GZIP, OCI_LAYER_NONDIST_ZSTD}

_DOCKER_TO_OCI = {
    DOCKER_MANIFEST: OCI_MANIFEST,
    DOCKER_MANIFEST_LIST: OCI_INDEX,
    DOCKER_CONFIG: OCI_CONFIG,
    DOCKER_LAYER: OCI_LAYER_GZIP,
    DOCKER_FOREIGN_LAYER: OCI_LAYER_NONDIST_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": OCI_LAYER,
    "application/vnd.docker.image.rootfs.diff.tar.zstd": OCI_LAYER_ZSTD,
}
_OCI_TO_DOCKER = {
    OCI_MANIFEST: DOCKER_MANIFEST,
    OCI_INDEX: DOCKER_MANIFEST_LIST,
    OCI_CONFIG: DOCKER_CONFIG,
    OCI_LAYER_GZIP: DOCKER_LAYER,
    OCI_LAYER_NONDIST_GZIP: DOCKER_FOREIGN_LAYER,
    # Docker schema 2 has no type for plain or zstd tarballs; docker (and ggcr) keep the OCI type
    # inside a Docker manifest, which docker 23+ and containerd accept.
}


def is_layer(media_type: str) -> bool:
    return media_type in _LAYER_COMPRESSION


def is_foreign(media_type: str) -> bool:
    """Non-distributable layers: not pushed, fetched from their `urls`."""
    return media_type in _FOREIGN


def is_index(media_type: str) -> bool:
    return media_type in INDEX_TYPES


def is_manifest(media_type: str) -> bool:
    return media_type in MANIFEST_TYPES


def layer_compression(media_type: str) -> str:
    """'gzip', 'zstd' or 'none' for a layer media type; ValueError for anything else."""
    try:
        return _LAYER_COMPRESSION[media_type]
    except KeyError:
        raise ValueError(f"{media_type!r} is not a layer media type") from None


def layer_media_type(compression: str, fmt: str = OCI, foreign: bool = False) -> str:
    """The layer media type for a compression ('gzip', 'zstd', 'none') in a format ('docker', 'oci')."""
    if compression not in ("gzip", "zstd", "none"):
        raise ValueError(f"unknown layer compression {compression!r} (want gzip, zstd or none)")
    if foreign:
        oci = {"gzip": OCI_LAYER_NONDIST_GZIP, "zstd": OCI_LAYER_NONDIST_ZSTD, "none": OCI_LAYER_NONDIST}[compression]
    else:
        oci = {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD, "none": OCI_LAYER}[compression]
    return to_format(oci, fmt)


def format_of(media_type: str) -> str:
    """'docker' or 'oci' for a manifest or index media type."""
    if media_type in (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST):
        return DOCKER
    if media_type in (OCI_MANIFEST, OCI_INDEX):
        return OCI
    raise ValueError(f"{media_type!r} is neither a Docker schema 2 nor an OCI manifest/index media type")


def to_oci(media_type: str) -> str:
    return _DOCKER_TO_OCI.get(media_type, media_type)


def to_docker(media_type: str) -> str:
    return _OCI_TO_DOCKER.get(media_type, media_type)


def to_format(media_type: str, fmt: str) -> str:
    if fmt == OCI:
        return to_oci(media_type)
    if fmt == DOCKER:
        return to_docker(media_type)
    raise ValueError(f"unknown image format {fmt!r} (want 'docker' or 'oci')")

"""What the executor and the warmer are asked to do: typed, frozen options made by `executor.cli`.

Field names are kaniko's flags in snake_case. The registry flags of both commands make one
`executor.registry.RegistryOptions` (`registry`), the type the registry client takes. Everything here is
resolved already (environment fallbacks, deprecated spellings, defaults), so no consumer needs a default
of its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from executor.registry.options import DEFAULT_CREDENTIAL_HELPERS, RegistryOptions

__all__ = ["CACHE_TTL_DEFAULT", "DEFAULT_CREDENTIAL_HELPERS", "DEFAULT_KANIKO_DIR", "GitOptions", "LoginOptions",
           "Options", "ProvenanceOptions", "PushOptions", "RegistryOptions", "Secret", "WarmerOptions"]

DEFAULT_KANIKO_DIR = "/kaniko"
CACHE_TTL_DEFAULT = 336 * 3600.0  # two weeks, as kaniko


@dataclass(frozen=True)
class GitOptions:
    """`--git key=value` (repeatable), as kaniko's KanikoGitOptions."""

    branch: str = ""
    single_branch: bool = False
    depth: int = 0
    recurse_submodules: bool = False
    insecure_skip_tls: bool = False


@dataclass(frozen=True)
class Secret:
    """`--secret id=ID,src=PATH` or `--secret id=ID,env=VAR` (as `docker build --secret`).

    `type` is "file" (then `source` is a path) or "env" (then `source` is a variable name).
    The value itself is never stored here.
    """

    id: str
    type: str
    source: str


@dataclass(frozen=True)
class ProvenanceOptions:
    """`--provenance` (docker buildx's flag, BuildKit's attest:provenance attributes): `mode` min|max,
    `version` (SLSA) v1|v0.2, `builder_id` (builder-id=), `reproducible` (reproducible=)."""

    mode: str = "max"
    version: str = "v1"
    builder_id: str = ""
    reproducible: bool = False


@dataclass(frozen=True)
class Options:
    """Everything the executor was asked to do.

    Resolved by the CLI: env fallbacks (KANIKO_DIR, KANIKO_NO_PUSH, KANIKO_REGISTRY_MIRROR,
    KANIKO_REGISTRY_MAP, KANIKO_PRE_CLEANUP, KANIKO_CLEANUP, KANIKO_PRESERVE_CONTEXT), deprecated
    spellings, build args without a value (taken from the environment), registry mirrors (also entered
    in `registry.registry_maps` under "index.docker.io", as kaniko does), the default platform, and the
    default credential helpers.
    """

    # logging
    verbosity: str = "info"
    log_format: str = "color"
    log_timestamp: bool = False
    # build input
    dockerfile: str = "Dockerfile"
    context: str = "/workspace/"
    context_sub_path: str = ""
    bucket: str = ""
    git: GitOptions = field(default_factory=GitOptions)
    build_args: dict[str, str] = field(default_factory=dict)
    targets: list[str] = field(default_factory=list)
    custom_platform: str = ""
    secrets: dict[str, Secret] = field(default_factory=dict)
    # output
    destinations: list[str] = field(default_factory=list)
    no_push: bool = False
    tar_path: str = ""
    oci_layout_path: str = ""
    digest_file: str = ""
    image_name_with_digest_file: str = ""
    image_name_tag_with_digest_file: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    image_format: str = ""  # "" inherit from base, "docker", "oci"
    compression: str = "gzip"
    compression_level: int = -1  # -1: the library default
    reproducible: bool = False
    # supply chain and observability (docker buildx's flags)
    sbom: bool = False
    provenance: ProvenanceOptions | None = None
    metadata_file: str = ""
    progress: str = "auto"      # auto | tty | plain | json
    # snapshotting and the filesystem
    root: str = "/"
    extract: str = "lazy"   # kiln's --extract: lazy | eager
    kaniko_dir: str = DEFAULT_KANIKO_DIR
    snapshot_mode: str = "exact"
    single_snapshot: bool = False
    ignore_var_run: bool = True
    ignore_paths: list[str] = field(default_factory=list)
    use_new_run: bool = False
    image_fs_extract_retry: int = 0
    pre_cleanup: bool = False
    cleanup: bool = False
    preserve_context: bool = False
    materialize: bool = False
    skip_unused_stages: bool = False
    force_build_metadata: bool = False
    dryrun: bool = False
    force: bool = False
    # caching
    cache: bool = False
    cache_repo: str = ""
    cache_dir: str = "/cache"
    cache_ttl: float = CACHE_TTL_DEFAULT  # seconds
    cache_copy_layers: bool = False
    cache_run_layers: bool = True
    compressed_caching: bool = True
    no_push_cache: bool = False
    skip_push_permission_check: bool = False
    # registries (push, pull, trust, mirrors, retries, credentials)
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    # what the parser noticed (deprecated spellings...), logged as warnings once logging is set up
    notices: tuple[str, ...] = ()

    @property
    def platforms(self) -> list[str]:
        """--custom-platform as a list: one image is built for each (several make an index)."""
        return [p for p in self.custom_platform.split(",") if p]


@dataclass(frozen=True)
class LoginOptions:
    """`executor login REGISTRY -u USER (-p PASSWORD | --password-stdin)` (the osscontainertools fork's)."""

    registry: str = ""
    username: str = ""
    password: str = ""
    password_stdin: bool = False
    verbosity: str = "info"
    log_format: str = "color"
    log_timestamp: bool = False
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class PushOptions:
    """`executor push PATH -d DEST...`: a docker-save tarball (a file) or an OCI image layout (a directory),
    pushed as the fork's `executor push` does, after the same push permission check as a build."""

    path: str = ""
    destinations: list[str] = field(default_factory=list)
    skip_push_permission_check: bool = False
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    verbosity: str = "info"
    log_format: str = "color"
    log_timestamp: bool = False
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class IndexOptions:
    """`executor index -d DEST... --source REF...`: one image index assembled from images already pushed (one per
    platform, each built natively by its own kiln), pushed without uploading their blobs again."""

    destinations: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    digest_file: str = ""
    image_name_with_digest_file: str = ""
    skip_push_permission_check: bool = False
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    verbosity: str = "info"
    log_format: str = "color"
    log_timestamp: bool = False
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class WarmerOptions:
    """The cache warmer's flags, snake_case, with the same resolutions as `Options`."""

    verbosity: str = "info"
    log_format: str = "color"
    log_timestamp: bool = False
    images: list[str] = field(default_factory=list)
    cache_dir: str = "/cache"
    force: bool = False
    cache_ttl: float = CACHE_TTL_DEFAULT
    custom_platform: str = ""
    dockerfile: str = ""
    build_args: dict[str, str] = field(default_factory=dict)
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    notices: tuple[str, ...] = ()

    @property
    def platforms(self) -> list[str]:
        """--custom-platform as a list: each is warmed."""
        return [p for p in self.custom_platform.split(",") if p]

"""kaniko's executor and warmer flags (kaniko 1.24 and the osscontainertools fork), one table each.

The table is the single source of truth: the scanner (`executor.cli.pflag`), the help text and the option
types (`executor.options`) all follow it. `dest` names the option field; `registry.<field>` is a field of
`executor.registry.RegistryOptions`, the registry options both commands share.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from executor.options import CACHE_TTL_DEFAULT, GitOptions

from .pflag import FlagSpec, parse_bool, parse_go_int

__all__ = ["EXECUTOR_FLAGS", "INDEX_FLAGS", "LOGIN_FLAGS", "NO_EFFECT", "PUSH_FLAGS", "WARMER_FLAGS"]

#: The kaniko flags kiln accepts that have no effect of their own in kiln, and why. `--help` shows each reason;
#: tests/test_cli/test_no_flag_dropped.py fails when an option is neither read by kiln nor listed here (a flag
#: parsed and then ignored is a bug the user cannot see), or is listed here and read after all.
NO_EFFECT: dict[str, str] = {
    "use-new-run": "kiln has one RUN implementation; its snapshots already find what a RUN changed from inode "
                   "change times (--snapshot-mode=exact)",
    "compressed-caching": "kiln's layers, cached ones too, are compressed files on disk, never held in memory",
    "preserve-context": "always on: the build context is on kiln's ignore list (or in kiln's work directory), so "
                        "switching stages or --cleanup never removes it",
    "force-build-metadata": "always on: every instruction gets its history entry, as BuildKit writes it",
    "azure-container-registry-config": "ignored by kaniko too; --credential-helpers=acr is its successor",
}


def _set_git(cur: GitOptions, value: str) -> GitOptions:
    key, sep, val = value.partition("=")
    if not sep:
        raise ValueError(f"invalid git flag, must be in the key=value format: {value}")
    if key == "branch":
        return dataclasses.replace(cur, branch=val)
    if key == "single-branch":
        return dataclasses.replace(cur, single_branch=parse_bool(val))
    if key == "depth":
        return dataclasses.replace(cur, depth=parse_go_int(val))
    if key == "recurse-submodules":
        return dataclasses.replace(cur, recurse_submodules=parse_bool(val))
    if key == "insecure-skip-tls":
        return dataclasses.replace(cur, insecure_skip_tls=parse_bool(val))
    raise ValueError(
        f"unknown git option {key!r}; expected one of branch, single-branch, depth, "
        "recurse-submodules, insecure-skip-tls"
    )


def _add_platforms(cur: str, value: str) -> str:
    """--custom-platform: one platform, or several comma-separated; repeated, the lists add up."""
    return f"{cur},{value}" if cur else value


def _f(name: str, kind: str, dest: str, default: Any, help: str, **kw: Any) -> FlagSpec:
    return FlagSpec(name=name, kind=kind, dest=dest, default=default, help=help, **kw)


_LOG_FLAGS: tuple[FlagSpec, ...] = (
    _f("verbosity", "string", "verbosity", "info",
       "Log level (trace, debug, info, warn, error, fatal, panic)", short="v"),
    _f("log-format", "string", "log_format", "color", "Log format (text, color, json)"),
    _f("log-timestamp", "bool", "log_timestamp", False, "Timestamp in log output"),
)

_REGISTRY_FLAGS: tuple[FlagSpec, ...] = (
    _f("insecure", "bool", "registry.insecure", False, "Push to insecure registry using plain HTTP"),
    _f("skip-tls-verify", "bool", "registry.skip_tls_verify", False, "Push to insecure registry ignoring TLS verify"),
    _f("insecure-pull", "bool", "registry.insecure_pull", False, "Pull from insecure registry using plain HTTP"),
    _f("skip-tls-verify-pull", "bool", "registry.skip_tls_verify_pull", False,
       "Pull from insecure registry ignoring TLS verify"),
    _f("push-retry", "int", "registry.push_retry", 0, "Number of retries for the push operation"),
    _f("push-ignore-immutable-tag-errors", "bool", "registry.push_ignore_immutable_tag_errors", False,
       "If true, known tag immutability errors are ignored and the push finishes with success."),
    _f("image-download-retry", "int", "registry.image_download_retry", 0,
       "Number of retries for downloading the remote image"),
    _f("insecure-registry", "multi", "registry.insecure_registries", [],
       "Insecure registry using plain HTTP to push and pull. Repeatable."),
    _f("skip-tls-verify-registry", "multi", "registry.skip_tls_verify_registries", [],
       "Insecure registry ignoring TLS verify to push and pull. Repeatable."),
    _f("registry-certificate", "kv", "registry.registry_certificates", {},
       "Certificate for TLS with the given registry: 'my.registry.url=/path/to/server/cert'. Repeatable."),
    _f("registry-client-cert", "kv", "registry.registry_client_certificates", {},
       "Client certificate for mTLS with the given registry: "
       "'my.registry.url=/path/to/client/cert,/path/to/client/key'. Repeatable."),
    _f("registry-map", "multikv", "registry.registry_maps", {},
       "Registry remap used as pull-through cache: 'original.registry=new.registry;other=remap'. Repeatable."),
    _f("registry-mirror", "multi", "registry.registry_mirrors", [],
       "Registry mirror to use as pull-through cache instead of docker.io. Repeatable."),
    _f("skip-default-registry-fallback", "bool", "registry.skip_default_registry_fallback", False,
       "If an image is not found on any mirror, do not fall back to the default registry."),
    _f("credential-helpers", "multi", "registry.credential_helpers", [],
       "Credential helpers to use (env, google, ecr, acr, gitlab). Repeatable; defaults to all; "
       "an empty value disables them."),
)

EXECUTOR_FLAGS: tuple[FlagSpec, ...] = (
    *_LOG_FLAGS,
    _f("force", "bool", "force", False, "Build on / although kiln is not running from its own executor image (kiln "
       "refuses otherwise: use --root DIR on a development machine)"),
    _f("dockerfile", "string", "dockerfile", "Dockerfile", "Path to the dockerfile to be built.", short="f"),
    _f("context", "string", "context", "/workspace/", "Path to the dockerfile build context.", short="c"),
    _f("context-sub-path", "string", "context_sub_path", "", "Sub path within the given context."),
    _f("bucket", "string", "bucket", "", "Name of the GCS bucket from which to access build context as tarball.",
       short="b", hidden=True),
    _f("destination", "multi", "destinations", [],
       "Registry the final image should be pushed to. Repeatable.", short="d"),
    _f("snapshot-mode", "choice", "snapshot_mode", "exact",
       "Change the file attributes inspected during snapshotting (exact, full, redo, time). kiln's default, "
       "exact, compares inode change times and hashes only what they cannot settle: as strict as full",
       choices=("exact", "full", "redo", "time")),
    _f("custom-platform", "custom", "custom_platform", "",
       "Specify the build platform if different from the current host; several (linux/amd64,linux/arm64, or "
       "repeated) build one image each and push one index (kiln)", custom=_add_platforms, metavar="string"),
    _f("build-arg", "multi", "build_args", [], "ARG values at build time (KEY=VALUE, or KEY to take it "
       "from the environment). Repeatable."),
    _f("image-fs-extract-retry", "int", "image_fs_extract_retry", 0, "Number of retries for image FS extraction"),
    _f("kaniko-dir", "string", "kaniko_dir", "",
       "Path to the kaniko directory, this takes precedence over the KANIKO_DIR environment variable.",
       env="KANIKO_DIR"),
    _f("tar-path", "string", "tar_path", "", "Path to save the image in as a tarball instead of pushing"),
    _f("single-snapshot", "bool", "single_snapshot", False, "Take a single snapshot at the end of the build."),
    _f("reproducible", "bool", "reproducible", False, "Strip timestamps out of the image to make it reproducible"),
    _f("target", "slice", "targets", None,
       "Set the target stages to build, the first in the list denotes the stage to be pushed"),
    _f("no-push", "bool", "no_push", False, "Do not push the image to the registry", env="KANIKO_NO_PUSH"),
    _f("no-push-cache", "bool", "no_push_cache", False, "Do not push the cache layers to the registry"),
    _f("cache-repo", "string", "cache_repo", "",
       "Repository to use as a cache (inferred from the destination otherwise); 'oci:PATH' writes an OCI layout"),
    _f("cache-dir", "string", "cache_dir", "/cache", "Specify a local directory to use as a cache."),
    _f("digest-file", "string", "digest_file", "", "Specify a file to save the digest of the built image to."),
    _f("image-name-with-digest-file", "string", "image_name_with_digest_file", "",
       "Specify a file to save the image name w/ digest of the built image to."),
    _f("image-name-tag-with-digest-file", "string", "image_name_tag_with_digest_file", "",
       "Specify a file to save the image name w/ image tag w/ digest of the built image to."),
    _f("oci-layout-path", "string", "oci_layout_path", "", "Path to save the OCI image layout of the built image."),
    _f("compression", "choice", "compression", "gzip", "Compression algorithm (gzip, zstd)",
       choices=("gzip", "zstd")),
    _f("image-format", "choice", "image_format", "",
       "Output image media type (docker, oci). Defaults to inheriting the format of the base image.",
       choices=("docker", "oci")),
    _f("compression-level", "int", "compression_level", -1, "Compression level"),
    _f("cache", "bool", "cache", False, "Use cache when building image"),
    _f("compressed-caching", "bool", "compressed_caching", True,
       "Compress the cached layers. Decreases build time, but increases memory usage."),
    _f("pre-cleanup", "bool", "pre_cleanup", False, "Clean the filesystem before the build",
       env="KANIKO_PRE_CLEANUP"),
    _f("cleanup", "bool", "cleanup", False, "Clean the filesystem at the end", env="KANIKO_CLEANUP"),
    _f("cache-ttl", "duration", "cache_ttl", CACHE_TTL_DEFAULT,
       "Cache timeout, requires value and unit of duration -> ex: 6h. Defaults to two weeks."),
    _f("ignore-var-run", "bool", "ignore_var_run", True,
       "Ignore /var/run directory when taking image snapshot. Set it to false to preserve /var/run/."),
    _f("label", "multi", "labels", [], "Set metadata for an image (key=value). Repeatable."),
    _f("skip-unused-stages", "bool", "skip_unused_stages", False,
       "Build only used stages (kaniko's osscontainertools fork always does)."),
    _f("use-new-run", "bool", "use_new_run", False,
       "Use the experimental run implementation for detecting changes without requiring file system snapshots."),
    _f("git", "custom", "git", GitOptions(),
       "Git context options: branch=, single-branch=, depth=, recurse-submodules=, insecure-skip-tls= "
       "(GIT_USERNAME/GIT_PASSWORD or GIT_TOKEN for private repositories; docs/git-context.md). Repeatable.",
       custom=_set_git, metavar="key=value"),
    _f("cache-copy-layers", "bool", "cache_copy_layers", False, "Caches copy layers"),
    _f("cache-run-layers", "bool", "cache_run_layers", True, "Caches run layers"),
    _f("ignore-path", "multi", "ignore_paths", [], "Ignore these paths when taking a snapshot. Repeatable."),
    _f("force-build-metadata", "bool", "force_build_metadata", False, "Force add metadata layers to build image"),
    _f("skip-push-permission-check", "bool", "skip_push_permission_check", False,
       "Skip check of the push permission"),
    _f("annotation", "kv", "annotations", {}, "Set metadata annotations for the image (key=value). Repeatable."),
    _f("preserve-context", "bool", "preserve_context", False,
       "Preserve build context across build stages", env="KANIKO_PRESERVE_CONTEXT"),
    _f("materialize", "bool", "materialize", False,
       "Guarantee the final file system matches the build target even on a 100% cache hit"),
    _f("secret", "multi", "secrets", [],
       "Build secret: id=ID,src=PATH or id=ID,env=VAR (as docker build --secret). Repeatable.",
       metavar="id=ID,src=PATH"),
    _f("dryrun", "bool", "dryrun", False, "Whether to only run a plan"),
    *_REGISTRY_FLAGS,
    # supply chain and observability: docker buildx's flags
    _f("sbom", "string", "sbom", "", "Attach an SPDX SBOM of the image as an in-toto attestation, as docker buildx "
       "--sbom (true, false; kiln scans the root itself: generator= is reserved)", no_opt_value="true"),
    _f("provenance", "string", "provenance", "", "Attach SLSA provenance as an in-toto attestation, as docker buildx "
       "--provenance: true, false, or mode=min|max[,version=v1|v0.2][,builder-id=URL][,reproducible=true]",
       no_opt_value="true"),
    _f("metadata-file", "string", "metadata_file", "", "Write the build result metadata (docker buildx's keys and "
       "kiln's build report) to a JSON file"),
    _f("progress", "choice", "progress", "auto", "Progress output: auto (tty on a terminal, else plain), tty, "
       "plain (one line per step with its duration; GitLab CI sections when GITLAB_CI is set), json (one event a "
       "line)", choices=("auto", "tty", "plain", "json")),
    # kiln's own
    _f("root", "string", "root", "/", "Root directory the image is built on (kiln); a scratch directory "
       "lets kiln run outside a container"),
    _f("extract", "choice", "extract", "lazy", "When a stage's base goes onto the root (kiln): lazy, when the "
       "first step needs its files (a stage of metadata only extracts nothing); eager, at the start of every "
       "stage. The image is the same either way", choices=("lazy", "eager")),
    # deprecated spellings
    _f("snapshotMode", "string", "snapshot_mode_deprecated", "", "Deprecated: use --snapshot-mode.",
       deprecated="Flag --snapshotMode is deprecated. Use: --snapshot-mode"),
    _f("customPlatform", "string", "custom_platform_deprecated", "", "Deprecated: use --custom-platform.",
       deprecated="Flag --customPlatform is deprecated. Use: --custom-platform"),
    _f("tarPath", "string", "tar_path", "", "Deprecated: use --tar-path.",
       deprecated="Flag --tarPath is deprecated. Use: --tar-path"),
    _f("whitelist-var-run", "bool", "ignore_var_run", True, "Deprecated: use --ignore-var-run.",
       deprecated="Flag --whitelist-var-run has been deprecated, Please use ignore-var-run instead."),
    _f("azure-container-registry-config", "string", "azure_container_registry_config", "",
       "Path to the file containing Azure container registry configuration information (ignored).",
       hidden=True),
)

WARMER_FLAGS: tuple[FlagSpec, ...] = (
    *_LOG_FLAGS,
    _f("image", "multi", "images", [], "Image to cache. Repeatable.", short="i"),
    _f("cache-dir", "string", "cache_dir", "/cache", "Directory of the cache.", short="c"),
    _f("force", "bool", "force", False, "Force cache overwriting.", short="f"),
    _f("cache-ttl", "duration", "cache_ttl", CACHE_TTL_DEFAULT, "Cache timeout in hours. Defaults to two weeks."),
    _f("insecure-pull", "bool", "registry.insecure_pull", False, "Pull from insecure registry using plain HTTP"),
    _f("skip-tls-verify-pull", "bool", "registry.skip_tls_verify_pull", False,
       "Pull from insecure registry ignoring TLS verify"),
    *(s for s in _REGISTRY_FLAGS if s.name in (
        "insecure-registry", "skip-tls-verify-registry", "registry-certificate", "registry-client-cert",
        "registry-map", "registry-mirror", "skip-default-registry-fallback")),
    _f("customPlatform", "custom", "custom_platform", "",
       "Specify the build platform if different from the current host; several (comma-separated or repeated) "
       "warm each", custom=_add_platforms, metavar="string"),
    _f("custom-platform", "custom", "custom_platform", "",
       "Same as --customPlatform (kiln accepts the executor's spelling too)", custom=_add_platforms,
       metavar="string"),
    _f("dockerfile", "string", "dockerfile", "",
       "Path to the dockerfile to be cached; each stage's base image is written to the cache-dir.", short="d"),
    _f("build-arg", "multi", "build_args", [],
       "ARG values for dynamic base images, used with --dockerfile. Repeatable."),
    _f("azure-container-registry-config", "string", "azure_container_registry_config", "",
       "Path to the file containing Azure container registry configuration information (ignored).",
       hidden=True),
)

LOGIN_FLAGS: tuple[FlagSpec, ...] = (
    *_LOG_FLAGS,
    _f("username", "string", "username", "", "Username for the registry", short="u"),
    _f("password", "string", "password", "", "Password for the registry", short="p"),
    _f("password-stdin", "bool", "password_stdin", False, "Accept the registry password via stdin"),
)

PUSH_FLAGS: tuple[FlagSpec, ...] = (
    *_LOG_FLAGS,
    *_REGISTRY_FLAGS,
    _f("destination", "multi", "destinations", [], "Registry the image should be pushed to. Repeatable.",
       short="d"),
    _f("skip-push-permission-check", "bool", "skip_push_permission_check", False,
       "Skip check of the push permission"),
)



INDEX_FLAGS: tuple[FlagSpec, ...] = (
    *_LOG_FLAGS,
    *_REGISTRY_FLAGS,
    _f("destination", "multi", "destinations", [], "Where the index is pushed (its tag). Repeatable.", short="d"),
    _f("source", "multi", "sources", [], "An image (or index) already pushed, one per platform: its manifests go "
       "into the index. Repeatable."),
    _f("digest-file", "string", "digest_file", "", "Specify a file to save the digest of the index to."),
    _f("image-name-with-digest-file", "string", "image_name_with_digest_file", "",
       "Specify a file to save the image name w/ digest of the index to."),
    _f("skip-push-permission-check", "bool", "skip_push_permission_check", False,
       "Skip check of the push permission"),
)

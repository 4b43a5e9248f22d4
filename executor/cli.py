"""kaniko's command line, parsed the way spf13/pflag parses it, into one frozen `Options`.

The flag table (`EXECUTOR_FLAGS`, `WARMER_FLAGS`) is the single source of truth: the parser, the
help text and the `Options` builder all read it. Parsing is pure: the environment and the host
platform are parameters, so every fallback is testable.

pflag rules reproduced here:
  * `--name value`, `--name=value`, `-n value`, `-nvalue`, `-n=value`;
  * a boolean never consumes the next word: `--cache true` leaves `true` as a positional argument;
    booleans take `--cache`, `--cache=<strconv.ParseBool spelling>`;
  * single-letter booleans group: `-fv debug` (warmer) is `-f -v debug`;
  * `--` ends the flags; a lone `-` is a positional argument;
  * unknown flags fail, naming the flag.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import io
import os
import platform as _platform
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

__all__ = [
    "DEFAULT_CREDENTIAL_HELPERS",
    "EXECUTOR_FLAGS",
    "WARMER_FLAGS",
    "FlagSpec",
    "GitOptions",
    "HelpRequested",
    "Options",
    "Secret",
    "UsageError",
    "VersionRequested",
    "WarmerOptions",
    "format_usage",
    "host_platform",
    "parse_bool",
    "parse_duration",
    "parse_executor_args",
    "parse_go_int",
    "parse_warmer_args",
    "validate_executor",
    "validate_warmer",
    "absolutize_paths",
    "resolve_warmer_dockerfile",
]

DEFAULT_REGISTRY = "index.docker.io"
DEFAULT_CREDENTIAL_HELPERS: tuple[str, ...] = ("env", "google", "ecr", "acr", "gitlab")
DEFAULT_KANIKO_DIR = "/kaniko"
CACHE_TTL_DEFAULT = 336 * 3600.0  # two weeks, as kaniko


class UsageError(Exception):
    """The command line is wrong; the message names the offending flag or value."""


class HelpRequested(Exception):
    """`-h`/`--help` was given; the message is the usage text."""


class VersionRequested(Exception):
    """The `version` subcommand was given."""


# --------------------------------------------------------------------------------------------
# Value types


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


# --------------------------------------------------------------------------------------------
# Go-compatible scalar parsers

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_bool(text: str) -> bool:
    """strconv.ParseBool: exactly 1 t T TRUE true True / 0 f F FALSE false False."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


_GO_INT = re.compile(r"^[+-]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)$")


def parse_go_int(text: str) -> int:
    """strconv.ParseInt(text, 0, 64) as pflag's int flags use it (0x.., 0o.., 0b.., 0.. octal)."""
    if not _GO_INT.match(text) or "__" in text or text.rstrip("_") != text:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-").replace("_", "")
    if body[:2].lower() in ("0x", "0o", "0b"):
        value = int(body, 0)
    elif len(body) > 1 and body[0] == "0":
        value = int(body, 8)
    else:
        value = int(body, 10)
    value *= sign
    if not -(2**63) <= value < 2**63:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]+)")


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration ("336h", "1h30m", "1.5s", "-2m", "0"), returned in seconds."""
    original = text
    invalid = ValueError(f'time: invalid duration "{original}"')
    sign = 1.0
    if text[:1] in ("+", "-"):
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise invalid
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match:
            raise invalid
        whole, frac, unit = match.groups()
        if not whole and not frac:
            raise invalid  # "h", ".h"
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{original}"')
        number = float(f"{whole or '0'}.{frac or '0'}")
        total += number * _DURATION_UNITS[unit]
        pos = match.end()
    return sign * total


def _split_kv(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep:
        raise ValueError(f"invalid argument value. expect key=value, got {value}")
    return key, val


def _read_csv(value: str) -> list[str]:
    """pflag's stringSlice reads the value as one CSV record ("a,b", '"a,b",c')."""
    if value == "":
        return []
    try:
        rows = list(csv.reader(io.StringIO(value), strict=True))
    except csv.Error as exc:
        raise ValueError(str(exc)) from exc
    return rows[0] if rows else []


# --------------------------------------------------------------------------------------------
# Flag kinds: each knows its initial value and how one occurrence updates it.


def _set_bool(_cur: Any, value: str) -> bool:
    return parse_bool(value)


def _set_string(_cur: Any, value: str) -> str:
    return value


def _set_int(_cur: Any, value: str) -> int:
    return parse_go_int(value)


def _set_duration(_cur: Any, value: str) -> float:
    return parse_duration(value)


def _set_multi(cur: list[str], value: str) -> list[str]:
    return [*cur, value]


def _set_slice(cur: list[str] | None, value: str) -> list[str]:
    # pflag: the first Set replaces the default, later ones append.
    return [*(cur or []), *_read_csv(value)]


def _set_kv(cur: dict[str, str], value: str) -> dict[str, str]:
    key, val = _split_kv(value)
    out = dict(cur)
    out[key] = val
    return out


def _set_multikv(cur: dict[str, list[str]], value: str) -> dict[str, list[str]]:
    out = {k: list(v) for k, v in cur.items()}
    if value == "":
        return out
    for pair in value.split(";"):
        key, val = _split_kv(pair)
        out.setdefault(key, []).append(val)
    return out


def _set_choice(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    def setter(_cur: Any, value: str) -> str:
        if value not in choices:
            raise ValueError("must be either " + " or ".join(f'"{c}"' for c in choices))
        return value

    return setter


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


def _parse_secret(value: str, env: Mapping[str, str]) -> Secret:
    ident = kind = src = env_name = ""
    for part in value.split(","):
        key, sep, val = part.partition("=")
        if not sep:
            raise ValueError(f"invalid secret format: {part!r}; expected id=ID,src=PATH or id=ID,env=VAR")
        if key == "id":
            ident = val
        elif key == "type":
            if val not in ("file", "env"):
                raise ValueError(f"invalid secret type: {val!r} (file|env)")
            kind = val
        elif key in ("src", "source"):
            src = val
        elif key == "env":
            env_name = val
        else:
            raise ValueError(f"unknown key {key!r} in secret")
    if not ident:
        raise ValueError("secret requires id=ID")
    if src and env_name:
        raise ValueError("only one of src or env may be specified")
    if kind == "file" and env_name:
        raise ValueError("env cannot be specified for file type secrets")
    if kind == "env" and src:
        env_name, src = src, ""
    if not kind:
        if env_name:
            kind = "env"
        elif src:
            kind = "file"
        elif ident in env:
            kind, env_name = "env", ident
        else:
            kind, src = "file", ident
    return Secret(id=ident, type=kind, source=env_name if kind == "env" else src)


# --------------------------------------------------------------------------------------------
# The flag table


@dataclass(frozen=True)
class FlagSpec:
    name: str
    kind: str  # bool string int duration multi slice kv multikv git secret choice
    dest: str
    default: Any
    help: str
    short: str = ""
    choices: tuple[str, ...] = ()
    env: str = ""  # environment fallback, see _apply_env
    deprecated: str = ""  # message printed when used
    hidden: bool = False

    @property
    def is_bool(self) -> bool:
        return self.kind == "bool"

    def setter(self) -> Callable[[Any, str], Any]:
        if self.kind == "choice":
            return _set_choice(self.choices)
        return _SETTERS[self.kind]


_SETTERS: dict[str, Callable[[Any, str], Any]] = {
    "bool": _set_bool,
    "string": _set_string,
    "int": _set_int,
    "duration": _set_duration,
    "multi": _set_multi,
    "slice": _set_slice,
    "kv": _set_kv,
    "multikv": _set_multikv,
    "git": _set_git,
    "secret": _set_multi,  # raw values, parsed once the environment is known
}


def _f(name: str, kind: str, dest: str, default: Any, help: str, **kw: Any) -> FlagSpec:
    return FlagSpec(name=name, kind=kind, dest=dest, default=default, help=help, **kw)


_LOG_FLAGS: tuple[FlagSpec, ...] = (
    _f("verbosity", "string", "verbosity", "info",
       "Log level (trace, debug, info, warn, error, fatal, panic)", short="v"),
    _f("log-format", "string", "log_format", "color", "Log format (text, color, json)"),
    _f("log-timestamp", "bool", "log_timestamp", False, "Timestamp in log output"),
)

_REGISTRY_FLAGS: tuple[FlagSpec, ...] = (
    _f("insecure", "bool", "insecure", False, "Push to insecure registry using plain HTTP"),
    _f("skip-tls-verify", "bool", "skip_tls_verify", False, "Push to insecure registry ignoring TLS verify"),
    _f("insecure-pull", "bool", "insecure_pull", False, "Pull from insecure registry using plain HTTP"),
    _f("skip-tls-verify-pull", "bool", "skip_tls_verify_pull", False,
       "Pull from insecure registry ignoring TLS verify"),
    _f("push-retry", "int", "push_retry", 0, "Number of retries for the push operation"),
    _f("push-ignore-immutable-tag-errors", "bool", "push_ignore_immutable_tag_errors", False,
       "If true, known tag immutability errors are ignored and the push finishes with success."),
    _f("image-download-retry", "int", "image_download_retry", 0,
       "Number of retries for downloading the remote image"),
    _f("insecure-registry", "multi", "insecure_registries", [],
       "Insecure registry using plain HTTP to push and pull. Repeatable."),
    _f("skip-tls-verify-registry", "multi", "skip_tls_verify_registries", [],
       "Insecure registry ignoring TLS verify to push and pull. Repeatable."),
    _f("registry-certificate", "kv", "registry_certificates", {},
       "Certificate for TLS with the given registry: 'my.registry.url=/path/to/server/cert'. Repeatable."),
    _f("registry-client-cert", "kv", "registry_client_certs", {},
       "Client certificate for mTLS with the given registry: "
       "'my.registry.url=/path/to/client/cert,/path/to/client/key'. Repeatable."),
    _f("registry-map", "multikv", "registry_maps", {},
       "Registry remap used as pull-through cache: 'original.registry=new.registry;other=remap'. Repeatable."),
    _f("registry-mirror", "multi", "registry_mirrors", [],
       "Registry mirror to use as pull-through cache instead of docker.io. Repeatable."),
    _f("skip-default-registry-fallback", "bool", "skip_default_registry_fallback", False,
       "If an image is not found on any mirror, do not fall back to the default registry."),
    _f("credential-helpers", "multi", "credential_helpers", [],
       "Credential helpers to use (env, google, ecr, acr, gitlab). Repeatable; defaults to all; "
       "an empty value disables them."),
)

EXECUTOR_FLAGS: tuple[FlagSpec, ...] = (
    *_LOG_FLAGS,
    _f("force", "bool", "force", False, "Force building outside of a container"),
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
    _f("custom-platform", "string", "custom_platform", "",
       "Specify the build platform if different from the current host"),
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
    _f("git", "git", "git", GitOptions(),
       "Git context options: branch=, single-branch=, depth=, recurse-submodules=, insecure-skip-tls=. Repeatable."),
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
    _f("secret", "secret", "secrets", [],
       "Build secret: id=ID,src=PATH or id=ID,env=VAR (as docker build --secret). Repeatable."),
    _f("dryrun", "bool", "dryrun", False, "Whether to only run a plan"),
    *_REGISTRY_FLAGS,
    # kiln's own
    _f("root", "string", "root", "/", "Root directory the image is built on (kiln); a scratch directory "
       "lets kiln run outside a container"),
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
    _f("insecure-pull", "bool", "insecure_pull", False, "Pull from insecure registry using plain HTTP"),
    _f("skip-tls-verify-pull", "bool", "skip_tls_verify_pull", False,
       "Pull from insecure registry ignoring TLS verify"),
    *(s for s in _REGISTRY_FLAGS if s.name in (
        "insecure-registry", "skip-tls-verify-registry", "registry-certificate", "registry-client-cert",
        "registry-map", "registry-mirror", "skip-default-registry-fallback")),
    _f("customPlatform", "string", "custom_platform", "",
       "Specify the build platform if different from the current host"),
    _f("custom-platform", "string", "custom_platform", "",
       "Same as --customPlatform (kiln accepts the executor's spelling too)"),
    _f("dockerfile", "string", "dockerfile", "",
       "Path to the dockerfile to be cached; each stage's base image is written to the cache-dir.", short="d"),
    _f("build-arg", "multi", "build_args", [],
       "ARG values for dynamic base images, used with --dockerfile. Repeatable."),
    _f("azure-container-registry-config", "string", "azure_container_registry_config", "",
       "Path to the file containing Azure container registry configuration information (ignored).",
       hidden=True),
)


# --------------------------------------------------------------------------------------------
# The options


@dataclass(frozen=True)
class Options:
    """Everything the executor was asked to do. Field names are kaniko's flags in snake_case.

    Resolved here, so consumers need not: env fallbacks (KANIKO_DIR, KANIKO_NO_PUSH,
    KANIKO_REGISTRY_MIRROR, KANIKO_REGISTRY_MAP, KANIKO_PRE_CLEANUP, KANIKO_CLEANUP,
    KANIKO_PRESERVE_CONTEXT), deprecated spellings, build args without a value (taken from the
    environment), registry mirrors (also entered in `registry_maps` under "index.docker.io", as
    kaniko does), the default platform, and the default credential helpers.
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
    # snapshotting and the filesystem
    root: str = "/"
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
    # registries
    insecure: bool = False
    skip_tls_verify: bool = False
    insecure_pull: bool = False
    skip_tls_verify_pull: bool = False
    push_retry: int = 0
    push_ignore_immutable_tag_errors: bool = False
    image_download_retry: int = 0
    skip_push_permission_check: bool = False
    insecure_registries: list[str] = field(default_factory=list)
    skip_tls_verify_registries: list[str] = field(default_factory=list)
    registry_certificates: dict[str, str] = field(default_factory=dict)
    registry_client_certs: dict[str, str] = field(default_factory=dict)
    registry_maps: dict[str, list[str]] = field(default_factory=dict)
    registry_mirrors: list[str] = field(default_factory=list)
    skip_default_registry_fallback: bool = False
    credential_helpers: list[str] = field(default_factory=lambda: list(DEFAULT_CREDENTIAL_HELPERS))
    # what the parser noticed (deprecated spellings...), logged as warnings once logging is set up
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
    insecure_pull: bool = False
    skip_tls_verify_pull: bool = False
    insecure_registries: list[str] = field(default_factory=list)
    skip_tls_verify_registries: list[str] = field(default_factory=list)
    registry_certificates: dict[str, str] = field(default_factory=dict)
    registry_client_certs: dict[str, str] = field(default_factory=dict)
    registry_maps: dict[str, list[str]] = field(default_factory=dict)
    registry_mirrors: list[str] = field(default_factory=list)
    skip_default_registry_fallback: bool = False
    custom_platform: str = ""
    dockerfile: str = ""
    build_args: dict[str, str] = field(default_factory=dict)
    notices: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# The pflag-like scanner


@dataclass
class _Parsed:
    values: dict[str, Any]
    changed: set[str]  # flag names given on the command line
    positionals: list[str]
    help: bool = False


def _initial(spec: FlagSpec) -> Any:
    d = spec.default
    if isinstance(d, list):
        return list(d)
    if isinstance(d, dict):
        return dict(d)
    return d


def _suggest(name: str, known: Mapping[str, FlagSpec]) -> str:
    visible = [n for n, s in known.items() if not s.hidden and not s.deprecated]

    def squash(text: str) -> str:
        return text.lower().replace("_", "").replace("-", "")

    exact = {squash(n): n for n in visible}.get(squash(name))
    close = [exact] if exact else difflib.get_close_matches(name, visible, n=1, cutoff=0.75)
    return f" (did you mean --{close[0]}?)" if close else ""


def _scan(specs: Sequence[FlagSpec], argv: Sequence[str]) -> _Parsed:
    by_name = {s.name: s for s in specs}
    by_short = {s.short: s for s in specs if s.short}
    values: dict[str, Any] = {}
    for s in specs:
        values.setdefault(s.dest, _initial(s))
    parsed = _Parsed(values=values, changed=set(), positionals=[])

    def apply(spec: FlagSpec, value: str, shown: str) -> None:
        try:
            values[spec.dest] = spec.setter()(values[spec.dest], value)
        except ValueError as exc:
            raise UsageError(f'invalid argument "{value}" for "{shown}" flag: {exc}') from None
        parsed.changed.add(spec.name)

    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            parsed.positionals.extend(args[i:])
            break
        if not arg.startswith("-") or arg == "-":
            parsed.positionals.append(arg)
            continue
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            if not name or name.startswith("-") or name.startswith("="):
                raise UsageError(f"bad flag syntax: {arg}")
            spec = by_name.get(name)
            if spec is None:
                if name == "help":
                    parsed.help = True
                    continue
                raise UsageError(f"unknown flag: --{name}{_suggest(name, by_name)}")
            shown = f"--{name}"
            if has_value:
                apply(spec, value, shown)
            elif spec.is_bool:
                apply(spec, "true", shown)
            elif i < len(args):
                apply(spec, args[i], shown)
                i += 1
            else:
                raise UsageError(f"flag needs an argument: --{name}")
            continue
        # shorthand group: -abc, -fvalue, -f value, -f=value
        shorts = arg[1:]
        while shorts:
            letter, shorts = shorts[0], shorts[1:]
            spec = by_short.get(letter)
            if spec is None:
                if letter == "h":
                    parsed.help = True
                    continue
                raise UsageError(f"unknown shorthand flag: '{letter}' in -{arg[1:]}")
            shown = f"-{letter}, --{spec.name}"
            if shorts.startswith("="):
                apply(spec, shorts[1:], shown)
                shorts = ""
            elif spec.is_bool:
                apply(spec, "true", shown)
            elif shorts:
                apply(spec, shorts, shown)
                shorts = ""
            elif i < len(args):
                apply(spec, args[i], shown)
                i += 1
            else:
                raise UsageError(f"flag needs an argument: '{letter}' in -{arg[1:]}")
    return parsed


# --------------------------------------------------------------------------------------------
# Resolution into Options


def host_platform(machine: str | None = None, system: str | None = None) -> str:
    """The default --custom-platform: the host's os/arch[/variant], normalised as containerd does."""
    machine = (machine if machine is not None else _platform.machine()).lower()
    system = (system if system is not None else _platform.system()).lower() or "linux"
    arch = {
        "x86_64": "amd64", "amd64": "amd64", "x86-64": "amd64",
        "aarch64": "arm64", "arm64": "arm64", "armv8l": "arm64",
        "i386": "386", "i486": "386", "i586": "386", "i686": "386",
        "armv7l": "arm/v7", "armv7": "arm/v7", "armv6l": "arm/v6", "armv5tel": "arm/v5",
        "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "mips64": "mips64",
        "loongarch64": "loong64",
    }.get(machine, machine)
    return f"{system}/{arch}"


_PLATFORM = re.compile(r"^[a-z0-9_]+(/[a-z0-9_]+(/[a-z0-9_.]+)?)?(:[A-Za-z0-9_.\-]+)?$")


def _check_platform(value: str, flag: str = "custom-platform") -> None:
    if not _PLATFORM.match(value.lower()):
        raise UsageError(
            f'invalid value "{value}" for --{flag}: expected os[/arch[/variant]], '
            "for example linux/amd64 or linux/arm64/v8"
        )


def _resolve_build_args(raw: Iterable[str], env: Mapping[str, str]) -> dict[str, str]:
    """KEY=VALUE kept; a bare KEY takes the environment's value (empty when unset), as kaniko."""
    out: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        out[key] = value if sep else env.get(key, "")
    return out


def _resolve_labels(raw: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"labels must be of the form key=value, got {item}")
        out[key] = value
    return out


def _resolve_secrets(raw: Iterable[str], env: Mapping[str, str]) -> dict[str, Secret]:
    out: dict[str, Secret] = {}
    for item in raw:
        try:
            secret = _parse_secret(item, env)
        except ValueError as exc:
            raise UsageError(f'invalid argument "{item}" for "--secret" flag: {exc}') from None
        if secret.id in out:
            raise UsageError(f'invalid argument "{item}" for "--secret" flag: secret with ID "{secret.id}" '
                             "is already defined")
        out[secret.id] = secret
    return out


def _env_bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    """kaniko's config.EnvBool: unset or unparsable -> default."""
    if key not in env:
        return default
    try:
        return parse_bool(env[key])
    except ValueError:
        return default


def _apply_registry_env(values: dict[str, Any], env: Mapping[str, str], mirror_env: bool) -> None:
    if mirror_env and "KANIKO_REGISTRY_MIRROR" in env:
        values["registry_mirrors"] = [*values["registry_mirrors"], env["KANIKO_REGISTRY_MIRROR"]]
    if "KANIKO_REGISTRY_MAP" in env:
        try:
            values["registry_maps"] = _set_multikv(values["registry_maps"], env["KANIKO_REGISTRY_MAP"])
        except ValueError as exc:
            raise UsageError(f"invalid KANIKO_REGISTRY_MAP environment variable: {exc}") from None
    for mirror in values["registry_mirrors"]:
        values["registry_maps"] = _set_multikv(values["registry_maps"], f"{DEFAULT_REGISTRY}={mirror}")


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise UsageError(f'invalid value "{value}" for --{name}: must be one of {", ".join(choices)}')


def _check_logging(values: dict[str, Any]) -> None:
    values["verbosity"] = values["verbosity"].lower()  # logrus.ParseLevel ignores case
    _check_choice("verbosity", values["verbosity"],
                  ("panic", "fatal", "error", "warn", "warning", "info", "debug", "trace"))
    _check_choice("log-format", values["log_format"], ("text", "color", "json"))


def _prologue(specs: Sequence[FlagSpec], argv: Sequence[str], prog: str) -> _Parsed:
    parsed = _scan(specs, argv)
    if parsed.help:
        raise HelpRequested(format_usage(prog, specs))
    return parsed


def parse_executor_args(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    platform_default: str | None = None,
) -> Options:
    """Parse the executor's command line (without the program name) into `Options`.

    Raises UsageError (bad flags or values, unknown flags, stray arguments), HelpRequested or
    VersionRequested. `env` defaults to os.environ; `platform_default` to the host platform.
    """
    env = os.environ if env is None else env
    parsed = _prologue(EXECUTOR_FLAGS, argv, "executor")
    if parsed.positionals:
        if parsed.positionals == ["version"]:
            raise VersionRequested()
        if parsed.positionals[0] == "help":  # cobra's implicit help command
            raise HelpRequested(format_usage("executor", EXECUTOR_FLAGS))
        raise UsageError(f'unknown command "{parsed.positionals[0]}" for "executor"')
    v = parsed.values
    notices: list[str] = []
    for spec in EXECUTOR_FLAGS:
        if spec.deprecated and spec.name in parsed.changed:
            notices.append(spec.deprecated)
    if "azure-container-registry-config" in parsed.changed:
        notices.append("--azure-container-registry-config is ignored by kiln; use --credential-helpers=acr")

    # deprecated spellings that kaniko applies after parsing when non-empty
    dep_mode = v.pop("snapshot_mode_deprecated")
    if dep_mode:
        _check_choice("snapshotMode", dep_mode, ("full", "redo", "time"))
        v["snapshot_mode"] = dep_mode
    dep_platform = v.pop("custom_platform_deprecated")
    if dep_platform:
        v["custom_platform"] = dep_platform
    v.pop("azure_container_registry_config")

    # environment fallbacks
    if "kaniko-dir" not in parsed.changed or not v["kaniko_dir"]:
        v["kaniko_dir"] = env.get("KANIKO_DIR") or v["kaniko_dir"] or DEFAULT_KANIKO_DIR
    if "KANIKO_NO_PUSH" in env:  # kaniko lets the variable win over the flag
        try:
            v["no_push"] = parse_bool(env["KANIKO_NO_PUSH"])
        except ValueError:
            raise UsageError(
                f'invalid value "{env["KANIKO_NO_PUSH"]}" for KANIKO_NO_PUSH environment variable: '
                "use true or false"
            ) from None
    for name, key in (("pre-cleanup", "KANIKO_PRE_CLEANUP"), ("cleanup", "KANIKO_CLEANUP"),
                      ("preserve-context", "KANIKO_PRESERVE_CONTEXT")):
        if name not in parsed.changed:
            v[name.replace("-", "_")] = _env_bool(env, key, False)
    _apply_registry_env(v, env, mirror_env=True)

    _check_logging(v)
    if not v["custom_platform"]:
        v["custom_platform"] = platform_default or host_platform()
    _check_platform(v["custom_platform"])
    if v["targets"] is None:
        v["targets"] = []
    v["build_args"] = _resolve_build_args(v["build_args"], env)
    v["labels"] = _resolve_labels(v["labels"])
    v["secrets"] = _resolve_secrets(v["secrets"], env)
    if "credential-helpers" in parsed.changed:
        v["credential_helpers"] = [h for h in v["credential_helpers"] if h]
    else:
        v["credential_helpers"] = list(DEFAULT_CREDENTIAL_HELPERS)
    if not v["root"]:
        raise UsageError("--root must not be empty; use --root / or a scratch directory")
    v["notices"] = tuple(notices)
    return Options(**v)


def parse_warmer_args(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    platform_default: str | None = None,
) -> WarmerOptions:
    """Parse the warmer's command line into `WarmerOptions` (see parse_executor_args)."""
    env = os.environ if env is None else env
    parsed = _prologue(WARMER_FLAGS, argv, "warmer")
    v = parsed.values
    notices: list[str] = []
    if parsed.positionals:
        # cobra accepts and ignores stray words on a command without subcommands
        notices.append(f"ignoring unexpected arguments: {' '.join(parsed.positionals)}")
    if "azure-container-registry-config" in parsed.changed:
        notices.append("--azure-container-registry-config is ignored by kiln")
    v.pop("azure_container_registry_config")
    _apply_registry_env(v, env, mirror_env=False)
    _check_logging(v)
    if not v["custom_platform"]:
        v["custom_platform"] = platform_default or host_platform()
    _check_platform(v["custom_platform"], "customPlatform")
    v["build_args"] = _resolve_build_args(v["build_args"], env)
    v["notices"] = tuple(notices)
    return WarmerOptions(**v)


# --------------------------------------------------------------------------------------------
# Help


def format_usage(prog: str, specs: Sequence[FlagSpec]) -> str:
    lines = [f"Usage:\n  {prog} [flags]\n", "Flags:"]
    rows: list[tuple[str, str]] = []
    for s in sorted(specs, key=lambda s: s.name.lower()):
        if s.hidden or s.deprecated:
            continue
        short = f"-{s.short}, " if s.short else "    "
        kind = "" if s.is_bool else {"multi": " stringArray", "kv": " key=value", "multikv": " key=value",
                                     "slice": " strings", "duration": " duration", "int": " int",
                                     "secret": " id=ID,src=PATH", "git": " key=value"}.get(s.kind, " string")
        default = "" if s.default in ("", [], {}, None, False) or s.kind == "git" else f" (default {s.default})"
        if s.kind == "duration":
            default = " (default 336h0m0s)"
        env = f" [env {s.env}]" if s.env else ""
        rows.append((f"  {short}--{s.name}{kind}", f"{s.help}{default}{env}"))
    rows.append(("  -h, --help", f"help for {prog}"))
    width = max(len(r[0]) for r in rows) + 3
    lines.extend(f"{left.ljust(width)}{right}" for left, right in rows)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Cross-flag checks kaniko makes before building


def validate_executor(opts: Options) -> None:
    """kaniko's checks between flags, made before anything touches the filesystem.

    Raises UsageError with kaniko's wording (context and Dockerfile existence are checked by the
    build, which may first have to fetch a remote context).
    """
    if not opts.no_push and not opts.destinations:
        raise UsageError("you must provide --destination, or use --no-push")
    if opts.image_format == "docker" and opts.compression == "zstd":
        raise UsageError("--compression=zstd cannot be used with --image-format=docker, the Docker schema2 "
                         "format has no zstd layer media type, use --image-format=oci")
    if opts.tar_path and opts.image_format == "oci":
        raise UsageError("--tar-path writes a Docker schema2 tarball and cannot be used with "
                         "--image-format=oci, use --oci-layout-path to write an OCI image")
    if opts.tar_path and opts.compression == "zstd":
        raise UsageError("--compression=zstd cannot be used with --tar-path, the Docker schema2 tarball has no "
                         "zstd layer media type, use --oci-layout-path for zstd layers")
    if opts.cache and opts.no_push and not opts.no_push_cache and not opts.cache_repo:
        raise UsageError("cache flags invalid: if using cache with --no-push, specify cache repo with --cache-repo")
    if not opts.context and not opts.bucket:
        raise UsageError("please specify a path to the build context with the --context flag or a bucket "
                         "with the --bucket flag")
    if not opts.destinations and opts.image_name_with_digest_file:
        raise UsageError("you must provide --destination if setting --image-name-with-digest-file")
    if not opts.destinations and opts.image_name_tag_with_digest_file:
        raise UsageError("you must provide --destination if setting --image-name-tag-with-digest-file")
    for secret in opts.secrets.values():
        if secret.type == "file" and not secret.source:
            raise UsageError(f'secret "{secret.id}" has no source; use --secret id={secret.id},src=PATH')


def validate_warmer(opts: WarmerOptions) -> None:
    """kaniko's warmer check: something to cache."""
    if not opts.images and not opts.dockerfile:
        raise UsageError("you must select at least one image to cache or a dockerfilepath to parse")


# --------------------------------------------------------------------------------------------
# Paths relative to where the executor was started (kaniko's resolveRelativePaths)

_URL = re.compile(r"^https?://")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _absolute(path: str, cwd: str) -> str:
    if not path or _URL.match(path) or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(cwd, path))


def absolutize_paths(opts: Options, cwd: str) -> Options:
    """Make the local paths the user gave relative to `cwd` absolute, as kaniko does before it
    changes to `/`: context (unless it names a remote scheme such as git://, gs://, s3://, tar://,
    dir://), cache dir, tar path, digest files, OCI layout path, kaniko dir and root. The
    Dockerfile is left alone: kaniko looks for it relative to the working directory first and
    the context second, which the build does once the context is fetched."""
    context = opts.context if _SCHEME.match(opts.context) else _absolute(opts.context, cwd)
    return dataclasses.replace(
        opts,
        context=context,
        cache_dir=_absolute(opts.cache_dir, cwd),
        tar_path=_absolute(opts.tar_path, cwd),
        digest_file=_absolute(opts.digest_file, cwd),
        image_name_with_digest_file=_absolute(opts.image_name_with_digest_file, cwd),
        image_name_tag_with_digest_file=_absolute(opts.image_name_tag_with_digest_file, cwd),
        oci_layout_path=_absolute(opts.oci_layout_path, cwd),
        kaniko_dir=_absolute(opts.kaniko_dir, cwd),
        root=_absolute(opts.root, cwd),
    )


def resolve_warmer_dockerfile(opts: WarmerOptions, cwd: str) -> WarmerOptions:
    """The warmer's check: a local --dockerfile must exist; it is made absolute."""
    if not opts.dockerfile or _URL.match(opts.dockerfile):
        return opts
    path = _absolute(opts.dockerfile, cwd)
    if not os.path.exists(path):
        raise UsageError(f"error validating dockerfile path: {opts.dockerfile} does not exist; please provide "
                         "a valid path to a Dockerfile with --dockerfile")
    return dataclasses.replace(opts, dockerfile=path, cache_dir=_absolute(opts.cache_dir, cwd))

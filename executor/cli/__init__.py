"""kaniko's command line into typed options: `parse_executor_args` -> `executor.options.Options`,
`parse_warmer_args` -> `executor.options.WarmerOptions`, then the cross-flag checks kaniko makes before
building (`validate_*`) and the paths made absolute (`absolutize_paths`).

Parsing is pure: the environment and the host platform are parameters, so every fallback is testable.
`pflag` holds the scanner and Go's scalar parsers, `flags` the flag tables.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import re
import sys
from typing import Any, Callable, Iterable, Mapping, Sequence

from executor.image import host_platform as _host
from executor.options import (CACHE_TTL_DEFAULT, DEFAULT_CREDENTIAL_HELPERS, DEFAULT_KANIKO_DIR, GitOptions,
                              IndexOptions, LoginOptions, Options, ProvenanceOptions, PushOptions, Secret,
                              WarmerOptions)
from executor.registry.options import RegistryOptions

from .flags import EXECUTOR_FLAGS, INDEX_FLAGS, LOGIN_FLAGS, NO_EFFECT, PUSH_FLAGS, WARMER_FLAGS
from .pflag import (FlagSpec, HelpRequested, Parsed, UsageError, VersionRequested, format_usage, parse_bool,
                    parse_duration, parse_go_int, scan, set_multikv)

__all__ = [
    "CACHE_TTL_DEFAULT", "DEFAULT_CREDENTIAL_HELPERS", "EXECUTOR_FLAGS", "WARMER_FLAGS", "FlagSpec", "GitOptions",
    "HelpRequested", "Options", "Secret", "UsageError", "VersionRequested", "WarmerOptions", "format_usage",
    "host_platform", "parse_bool", "parse_duration", "parse_executor_args", "parse_go_int", "parse_login_args",
    "parse_push_args", "parse_index_args", "IndexOptions", "LoginOptions", "PushOptions", "SUBCOMMANDS",
    "parse_warmer_args", "validate_executor", "validate_warmer", "absolutize_paths",
    "resolve_warmer_dockerfile",
]

DEFAULT_REGISTRY = "index.docker.io"


def host_platform(machine: str | None = None, system: str | None = None) -> str:
    """The default --custom-platform: the host's os/arch[/variant] (executor.image's host platform)."""
    return str(_host(machine, system))


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


_PLATFORM = re.compile(r"^[a-z0-9_]+(/[a-z0-9_]+(/[a-z0-9_.]+)?)?(:[A-Za-z0-9_.\-]+)?$")


def _check_platform(value: str, flag: str = "custom-platform") -> None:
    """One platform, or a comma-separated list of them (kiln builds one image each)."""
    platforms = value.split(",")
    for platform in platforms:
        if not _PLATFORM.match(platform.lower()):
            raise UsageError(
                f'invalid value "{platform}" for --{flag}: expected os[/arch[/variant]], '
                "for example linux/amd64 or linux/arm64/v8 (several: linux/amd64,linux/arm64)"
            )
    if len(set(platforms)) != len(platforms):
        raise UsageError(f'invalid value "{value}" for --{flag}: a platform is named twice')


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


def _registry_options(values: dict[str, Any], env: Mapping[str, str], parsed: Parsed, mirror_env: bool,
                      kaniko_dir: str) -> RegistryOptions:
    """The `registry.*` values (both commands' registry flags) as one RegistryOptions, with kaniko's
    environment fallbacks: KANIKO_REGISTRY_MIRROR (executor only), KANIKO_REGISTRY_MAP, mirrors entered in
    the map under index.docker.io, the default credential helpers."""
    reg = {key[len("registry."):]: values.pop(key) for key in [k for k in values if k.startswith("registry.")]}
    reg.setdefault("registry_mirrors", [])
    reg.setdefault("registry_maps", {})
    if mirror_env and "KANIKO_REGISTRY_MIRROR" in env:
        reg["registry_mirrors"] = [*reg["registry_mirrors"], env["KANIKO_REGISTRY_MIRROR"]]
    if "KANIKO_REGISTRY_MAP" in env:
        try:
            reg["registry_maps"] = set_multikv(reg["registry_maps"], env["KANIKO_REGISTRY_MAP"])
        except ValueError as exc:
            raise UsageError(f"invalid KANIKO_REGISTRY_MAP environment variable: {exc}") from None
    for mirror in reg["registry_mirrors"]:
        reg["registry_maps"] = set_multikv(reg["registry_maps"], f"{DEFAULT_REGISTRY}={mirror}")
    if "credential-helpers" in parsed.changed:
        reg["credential_helpers"] = [h for h in reg["credential_helpers"] if h]
    else:
        reg["credential_helpers"] = list(DEFAULT_CREDENTIAL_HELPERS)
    pairs = {}
    for host, value in reg.pop("registry_client_certificates", {}).items():
        cert, sep, key = value.partition(",")
        if not sep or not cert or not key:
            raise UsageError(f'invalid argument "{host}={value}" for "--registry-client-cert" flag: expected '
                             "my.registry.url=/path/to/client/cert,/path/to/client/key")
        pairs[host] = (cert, key)
    reg["registry_client_certificates"] = pairs
    reg["additional_ca_bundle"] = _additional_ca_bundle(kaniko_dir)
    return RegistryOptions(**reg)


def _additional_ca_bundle(kaniko_dir: str) -> str:
    """kaniko's extra CA bundle, trusted besides the system CAs when it exists."""
    return os.path.join(kaniko_dir, "ssl", "certs", "additional-ca-cert-bundle.crt")


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise UsageError(f'invalid value "{value}" for --{name}: must be one of {", ".join(choices)}')


def _check_logging(values: dict[str, Any]) -> None:
    values["verbosity"] = values["verbosity"].lower()  # logrus.ParseLevel ignores case
    _check_choice("verbosity", values["verbosity"],
                  ("panic", "fatal", "error", "warn", "warning", "info", "debug", "trace"))
    _check_choice("log-format", values["log_format"], ("text", "color", "json"))


def _prologue(specs: Sequence[FlagSpec], argv: Sequence[str], prog: str) -> Parsed:
    parsed = scan(specs, argv)
    if parsed.help:
        raise HelpRequested(format_usage(prog, specs, NO_EFFECT))
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
            raise HelpRequested(format_usage("executor", EXECUTOR_FLAGS, NO_EFFECT))
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
    v["registry"] = _registry_options(v, env, parsed, mirror_env=True, kaniko_dir=v["kaniko_dir"])

    _check_logging(v)
    if not v["custom_platform"]:
        v["custom_platform"] = platform_default or host_platform()
    _check_platform(v["custom_platform"])
    if v["targets"] is None:
        v["targets"] = []
    v["build_args"] = _resolve_build_args(v["build_args"], env)
    v["labels"] = _resolve_labels(v["labels"])
    v["secrets"] = _resolve_secrets(v["secrets"], env)
    if not v["root"]:
        raise UsageError("--root must not be empty; use --root / or a scratch directory")
    v["sbom"] = _parse_sbom(v["sbom"])
    v["provenance"] = _parse_provenance(v["provenance"])
    v["notices"] = tuple(notices)
    return Options(**v)


def _attest_fields(flag: str, value: str) -> dict[str, str]:
    """buildx's attestation value: CSV fields key=value (BuildKit's frontend/attestations Parse)."""
    try:
        fields = next(csv.reader([value]))
    except (csv.Error, StopIteration):
        raise UsageError(f'invalid argument "{value}" for "--{flag}" flag: not a CSV list of key=value') from None
    out = {}
    for field in fields:
        key, sep, val = field.partition("=")
        if not key.strip():
            raise UsageError(f'invalid argument "{value}" for "--{flag}" flag: empty key in {field!r}')
        out[key.strip()] = val.strip() if sep else ""
    return out


def _parse_sbom(value: str) -> bool:
    """--sbom (buildx's: true/false, or generator=IMAGE)."""
    if value == "":
        return False
    try:
        return parse_bool(value)
    except ValueError:
        pass
    fields = _attest_fields("sbom", value)
    if "generator" in fields:
        raise UsageError(f'--sbom={value}: kiln makes the SBOM itself from the root it built; a generator image '
                         '(BuildKit\'s scanner protocol) is not supported yet: use --sbom')
    unknown = sorted(k for k in fields if k != "disabled")
    if unknown:
        raise UsageError(f'--sbom={value}: unknown key(s) {", ".join(unknown)} (kiln accepts true, false)')
    return not parse_bool(fields.get("disabled") or "false")


def _parse_provenance(value: str) -> ProvenanceOptions | None:
    """--provenance (buildx's: true/false, or mode=min|max,version=v1|v0.2,builder-id=URL,reproducible=BOOL);
    BuildKit's defaults: mode max, SLSA v1."""
    if value == "":
        return None
    try:
        return ProvenanceOptions() if parse_bool(value) else None
    except ValueError:
        pass
    fields = _attest_fields("provenance", value)
    if fields.get("disabled") and parse_bool(fields["disabled"]):
        return None
    mode = {"full": "max"}.get(fields.get("mode", "max"), fields.get("mode", "max"))
    if mode not in ("min", "max"):
        raise UsageError(f'--provenance={value}: invalid mode "{fields["mode"]}" (min or max)')
    version = fields.get("version", "v1")
    if version not in ("v1", "v0.2"):
        raise UsageError(f'--provenance={value}: invalid provenance SLSA version "{version}" (v1 or v0.2)')
    reproducible = False
    if fields.get("reproducible"):
        try:
            reproducible = parse_bool(fields["reproducible"])
        except ValueError:
            raise UsageError(f'--provenance={value}: reproducible={fields["reproducible"]} is not a boolean') \
                from None
    unknown = sorted(set(fields) - {"mode", "version", "builder-id", "reproducible", "disabled"})
    if unknown:
        raise UsageError(f'--provenance={value}: unknown key(s) {", ".join(unknown)} (mode, version, builder-id, '
                         'reproducible)')
    return ProvenanceOptions(mode=mode, version=version, builder_id=fields.get("builder-id", ""),
                             reproducible=reproducible)


#: the executor's subcommands besides the build itself (the osscontainertools fork's)
SUBCOMMANDS = ("login", "push", "index")


def parse_login_args(argv: Sequence[str], env: Mapping[str, str] | None = None,
                     stdin: Callable[[], str] | None = None) -> LoginOptions:
    """`executor login <registry> -u USER (-p PASSWORD | --password-stdin)`, with the fork's checks.
    `stdin` reads the password for --password-stdin (default: sys.stdin)."""
    parsed, registry = _one_argument(LOGIN_FLAGS, argv, "executor login", "<registry>")
    v = parsed.values
    if not v["username"]:
        raise UsageError("username required")
    if not v["password"] and not v["password_stdin"]:
        raise UsageError("a password must be supplied via --password or --password-stdin")
    if v["password"] and v["password_stdin"]:
        raise UsageError("only one of --password or --password-stdin may be specified")
    if v["password_stdin"]:
        text = (stdin or sys.stdin.read)()
        v["password"] = text.removesuffix("\n").removesuffix("\r")
        if not v["password"]:
            raise UsageError("password is blank")
    notices = ("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",) \
        if "password" in parsed.changed else ()
    return LoginOptions(registry=registry, notices=notices, **v)


def parse_push_args(argv: Sequence[str], env: Mapping[str, str] | None = None) -> PushOptions:
    """`executor push <path> -d DEST... [registry flags] [--skip-push-permission-check]`."""
    env = os.environ if env is None else env
    parsed, path = _one_argument(PUSH_FLAGS, argv, "executor push", "<path>")
    v = parsed.values
    if not v["destinations"]:
        raise UsageError("at least one --destination is required")
    v["registry"] = _registry_options(v, env, parsed, mirror_env=True,
                                      kaniko_dir=env.get("KANIKO_DIR") or DEFAULT_KANIKO_DIR)
    return PushOptions(path=path, **v)


def parse_index_args(argv: Sequence[str], env: Mapping[str, str] | None = None) -> IndexOptions:
    """`executor index -d DEST... --source REF... [registry flags] [--digest-file F]` (kiln's own subcommand: the
    native fan-out's last step)."""
    env = os.environ if env is None else env
    parsed = _prologue(INDEX_FLAGS, argv, "executor index")
    _check_logging(parsed.values)
    if parsed.positionals:
        raise UsageError(f"unknown command \"{parsed.positionals[0]}\" for \"executor index\" (name the images "
                         "with --source)")
    v = parsed.values
    if not v["destinations"]:
        raise UsageError("at least one --destination is required")
    if not v["sources"]:
        raise UsageError("at least one --source is required (an image per platform, already pushed)")
    v["registry"] = _registry_options(v, env, parsed, mirror_env=True,
                                      kaniko_dir=env.get("KANIKO_DIR") or DEFAULT_KANIKO_DIR)
    return IndexOptions(**v)


def _one_argument(specs: Sequence[FlagSpec], argv: Sequence[str], prog: str, what: str) -> tuple[Parsed, str]:
    """A subcommand's flags and its one argument (cobra's ExactArgs(1))."""
    parsed = _prologue(specs, argv, prog)
    _check_logging(parsed.values)
    if len(parsed.positionals) != 1:
        raise UsageError(f"accepts 1 arg(s), received {len(parsed.positionals)}: {prog} {what}")
    return parsed, parsed.positionals[0]


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
    v["registry"] = _registry_options(v, env, parsed, mirror_env=False,
                                      kaniko_dir=env.get("KANIKO_DIR") or DEFAULT_KANIKO_DIR)
    _check_logging(v)
    if not v["custom_platform"]:
        v["custom_platform"] = platform_default or host_platform()
    _check_platform(v["custom_platform"], "customPlatform")
    v["build_args"] = _resolve_build_args(v["build_args"], env)
    v["notices"] = tuple(notices)
    return WarmerOptions(**v)


# --------------------------------------------------------------------------------------------


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
    if (opts.sbom or opts.provenance) and opts.image_format == "docker":
        raise UsageError("--sbom and --provenance attach attestations in an OCI image index, which a Docker schema2 "
                         "image cannot have (BuildKit refuses them with oci-mediatypes=false): drop "
                         "--image-format=docker")
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
    kaniko_dir = _absolute(opts.kaniko_dir, cwd)
    return dataclasses.replace(
        opts,
        context=context,
        cache_dir=_absolute(opts.cache_dir, cwd),
        tar_path=_absolute(opts.tar_path, cwd),
        digest_file=_absolute(opts.digest_file, cwd),
        image_name_with_digest_file=_absolute(opts.image_name_with_digest_file, cwd),
        image_name_tag_with_digest_file=_absolute(opts.image_name_tag_with_digest_file, cwd),
        oci_layout_path=_absolute(opts.oci_layout_path, cwd),
        metadata_file=_absolute(opts.metadata_file, cwd),
        kaniko_dir=kaniko_dir,
        root=_absolute(opts.root, cwd),
        registry=dataclasses.replace(opts.registry, additional_ca_bundle=_additional_ca_bundle(kaniko_dir)),
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

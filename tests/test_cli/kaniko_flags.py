"""kaniko's flags as declared in its sources, for tests (this folder, deploy manifests...) to check against.

Read from:
  * GoogleContainerTools/kaniko @ 236ba5690eda (2025-06-03): cmd/executor/cmd/root.go, cmd/warmer/cmd/root.go
  * osscontainertools/kaniko @ 6bcc934434e3 (2026-08-22), the maintained fork, same files

Each entry: (name, short, type, default, origin). `type` is the pflag kind:
  bool, string, int, duration, stringArray (kaniko's repeatable multiArg), stringSlice,
  keyValue (repeatable key=value map), multiKeyValue (key=value;key=value), git, secret,
  compression, imageFormat.
`default` is what the flag holds before any argument (durations in seconds).
`origin`: "both", "upstream" (only GoogleContainerTools) or "fork" (only osscontainertools).
Deprecated spellings are in EXECUTOR_DEPRECATED with the flag they stand for.
Environment fallbacks are in EXECUTOR_ENV / WARMER_ENV.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class KanikoFlag(NamedTuple):
    name: str
    short: str
    type: str
    default: Any
    origin: str = "both"


TWO_WEEKS = 336 * 3600.0

EXECUTOR_FLAGS: tuple[KanikoFlag, ...] = (
    KanikoFlag("verbosity", "v", "string", "info"),
    KanikoFlag("log-format", "", "string", "color"),
    KanikoFlag("log-timestamp", "", "bool", False),
    KanikoFlag("force", "", "bool", False),
    KanikoFlag("dockerfile", "f", "string", "Dockerfile"),
    KanikoFlag("context", "c", "string", "/workspace/"),
    KanikoFlag("context-sub-path", "", "string", ""),
    KanikoFlag("bucket", "b", "string", ""),  # hidden
    KanikoFlag("destination", "d", "stringArray", []),
    KanikoFlag("snapshot-mode", "", "string", "full"),
    KanikoFlag("custom-platform", "", "string", ""),  # kaniko then defaults it to the host platform
    KanikoFlag("build-arg", "", "stringArray", []),
    KanikoFlag("insecure", "", "bool", False),
    KanikoFlag("skip-tls-verify", "", "bool", False),
    KanikoFlag("insecure-pull", "", "bool", False),
    KanikoFlag("skip-tls-verify-pull", "", "bool", False),
    KanikoFlag("push-retry", "", "int", 0),
    KanikoFlag("push-ignore-immutable-tag-errors", "", "bool", False),
    KanikoFlag("image-fs-extract-retry", "", "int", 0),
    KanikoFlag("image-download-retry", "", "int", 0),
    # upstream defaults to /kaniko; the fork to "" then KANIKO_DIR, then the executable's directory
    KanikoFlag("kaniko-dir", "", "string", "/kaniko"),
    KanikoFlag("tar-path", "", "string", ""),
    KanikoFlag("single-snapshot", "", "bool", False),
    KanikoFlag("reproducible", "", "bool", False),
    # upstream: a single string; the fork: a string slice (the first names the stage pushed)
    KanikoFlag("target", "", "stringSlice", []),
    KanikoFlag("no-push", "", "bool", False),
    KanikoFlag("no-push-cache", "", "bool", False),
    KanikoFlag("cache-repo", "", "string", ""),
    KanikoFlag("cache-dir", "", "string", "/cache"),
    KanikoFlag("digest-file", "", "string", ""),
    KanikoFlag("image-name-with-digest-file", "", "string", ""),
    KanikoFlag("image-name-tag-with-digest-file", "", "string", ""),
    KanikoFlag("oci-layout-path", "", "string", ""),
    KanikoFlag("compression", "", "compression", ""),  # empty: gzip
    KanikoFlag("image-format", "", "imageFormat", "", "fork"),  # empty: inherit from the base image
    KanikoFlag("compression-level", "", "int", -1),
    KanikoFlag("cache", "", "bool", False),
    KanikoFlag("compressed-caching", "", "bool", True),
    KanikoFlag("pre-cleanup", "", "bool", False, "fork"),
    KanikoFlag("cleanup", "", "bool", False),
    KanikoFlag("cache-ttl", "", "duration", TWO_WEEKS),
    KanikoFlag("insecure-registry", "", "stringArray", []),
    KanikoFlag("skip-tls-verify-registry", "", "stringArray", []),
    KanikoFlag("registry-certificate", "", "keyValue", {}),
    KanikoFlag("registry-client-cert", "", "keyValue", {}),
    KanikoFlag("registry-map", "", "multiKeyValue", {}),
    KanikoFlag("registry-mirror", "", "stringArray", []),
    KanikoFlag("skip-default-registry-fallback", "", "bool", False),
    KanikoFlag("credential-helpers", "", "stringArray", [], "fork"),
    KanikoFlag("ignore-var-run", "", "bool", True),
    KanikoFlag("label", "", "stringArray", []),
    KanikoFlag("skip-unused-stages", "", "bool", False),  # deprecated no-op in the fork
    KanikoFlag("use-new-run", "", "bool", False),
    KanikoFlag("git", "", "git", None),
    KanikoFlag("cache-copy-layers", "", "bool", False),
    KanikoFlag("cache-run-layers", "", "bool", True),
    KanikoFlag("ignore-path", "", "stringArray", []),
    KanikoFlag("force-build-metadata", "", "bool", False),  # deprecated no-op in the fork
    KanikoFlag("skip-push-permission-check", "", "bool", False),
    KanikoFlag("annotation", "", "keyValue", {}, "fork"),
    KanikoFlag("preserve-context", "", "bool", False, "fork"),
    KanikoFlag("materialize", "", "bool", False, "fork"),
    KanikoFlag("secret", "", "secret", {}, "fork"),
    KanikoFlag("dryrun", "", "bool", False, "fork"),
    # deprecated spellings (see EXECUTOR_DEPRECATED)
    KanikoFlag("snapshotMode", "", "string", ""),
    KanikoFlag("customPlatform", "", "string", ""),
    KanikoFlag("tarPath", "", "string", ""),
    KanikoFlag("whitelist-var-run", "", "bool", True),
)

# deprecated spelling -> the flag it stands for
EXECUTOR_DEPRECATED: dict[str, str] = {
    "snapshotMode": "snapshot-mode",
    "customPlatform": "custom-platform",
    "tarPath": "tar-path",
    "whitelist-var-run": "ignore-var-run",
}

# environment variable -> the flag it feeds
EXECUTOR_ENV: dict[str, str] = {
    "KANIKO_DIR": "kaniko-dir",  # the flag wins
    "KANIKO_NO_PUSH": "no-push",  # the variable wins (applied after parsing)
    "KANIKO_REGISTRY_MIRROR": "registry-mirror",  # appended
    "KANIKO_REGISTRY_MAP": "registry-map",  # appended
    "KANIKO_PRE_CLEANUP": "pre-cleanup",  # default of the flag (fork)
    "KANIKO_CLEANUP": "cleanup",  # default of the flag (fork)
    "KANIKO_PRESERVE_CONTEXT": "preserve-context",  # default of the flag (fork)
}

WARMER_FLAGS: tuple[KanikoFlag, ...] = (
    KanikoFlag("verbosity", "v", "string", "info"),
    KanikoFlag("log-format", "", "string", "color"),
    KanikoFlag("log-timestamp", "", "bool", False),
    KanikoFlag("image", "i", "stringArray", []),
    KanikoFlag("cache-dir", "c", "string", "/cache"),
    KanikoFlag("force", "f", "bool", False),
    KanikoFlag("cache-ttl", "", "duration", TWO_WEEKS),
    KanikoFlag("insecure-pull", "", "bool", False),
    KanikoFlag("skip-tls-verify-pull", "", "bool", False),
    KanikoFlag("insecure-registry", "", "stringArray", []),
    KanikoFlag("skip-tls-verify-registry", "", "stringArray", []),
    KanikoFlag("registry-certificate", "", "keyValue", {}),
    KanikoFlag("registry-client-cert", "", "keyValue", {}),
    KanikoFlag("registry-map", "", "multiKeyValue", {}),
    KanikoFlag("registry-mirror", "", "stringArray", []),
    KanikoFlag("skip-default-registry-fallback", "", "bool", False),
    KanikoFlag("customPlatform", "", "string", ""),  # the warmer's only spelling in kaniko
    KanikoFlag("dockerfile", "d", "string", ""),
    KanikoFlag("build-arg", "", "stringArray", []),
)

WARMER_ENV: dict[str, str] = {
    "KANIKO_REGISTRY_MAP": "registry-map",
}

# kiln's additions to the executor (not in kaniko)
KILN_EXECUTOR_ADDITIONS: tuple[KanikoFlag, ...] = (
    KanikoFlag("root", "", "string", "/", "kiln"),
)

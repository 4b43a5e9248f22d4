"""Everything the registry client can be told, filled by the CLI from kaniko's flags."""
from __future__ import annotations

import ipaddress
import os
import tempfile
import re
from dataclasses import dataclass, field

from .reference import DOCKER_HUB, registry_host

from .auth import DEFAULT_HELPERS as DEFAULT_CREDENTIAL_HELPERS  # kaniko's default: all of them
_COMBINED: dict[str, str] = {}


def combined_ca_bundle(additional: str) -> str:
    """A bundle file with the system CAs (requests' default, or $REQUESTS_CA_BUNDLE / $SSL_CERT_FILE) and
    `additional`, written once per process."""
    if additional not in _COMBINED:
        from requests.utils import DEFAULT_CA_BUNDLE_PATH

        system = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or DEFAULT_CA_BUNDLE_PATH
        fd, path = tempfile.mkstemp(prefix="kiln-ca-", suffix=".pem")
        with os.fdopen(fd, "wb") as out:
            for source in (system, additional):
                with open(source, "rb") as f:
                    out.write(f.read().rstrip(b"\n") + b"\n")
        _COMBINED[additional] = path
    return _COMBINED[additional]


@dataclass
class RegistryOptions:
    """The registry flags (TLS, plain HTTP, certificates, mirrors, retries...) as the executor and the warmer share
    them; the registry client is made from it."""
    #: --insecure: push to registries over plain HTTP
    insecure: bool = False
    #: --insecure-pull: pull from registries over plain HTTP
    insecure_pull: bool = False
    #: --insecure-registry (repeatable): these registries may use plain HTTP, push and pull
    insecure_registries: list[str] = field(default_factory=list)
    #: --skip-tls-verify: do not verify TLS certificates when pushing
    skip_tls_verify: bool = False
    #: --skip-tls-verify-pull: do not verify TLS certificates when pulling
    skip_tls_verify_pull: bool = False
    #: --skip-tls-verify-registry (repeatable): never verify TLS for these registries
    skip_tls_verify_registries: list[str] = field(default_factory=list)
    #: --registry-certificate host=path (repeatable): a CA bundle to trust for that registry
    registry_certificates: dict[str, str] = field(default_factory=dict)
    #: --registry-client-cert host=cert.pem,key.pem: mutual TLS
    registry_client_certificates: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: --registry-mirror (repeatable): tried in order for docker.io images, then docker.io itself
    registry_mirrors: list[str] = field(default_factory=list)
    #: --registry-map orig=mirror;... (repeatable, and KANIKO_REGISTRY_MAP): mirrors per registry, tried in order;
    #: --registry-mirror entries are also listed here under index.docker.io, as kaniko does
    registry_maps: dict[str, list[str]] = field(default_factory=dict)
    #: --skip-default-registry-fallback: with mirrors, never fall back to docker.io
    skip_default_registry_fallback: bool = False
    #: --credential-helpers (repeatable): env, google, ecr, acr, gitlab; [] turns them off
    credential_helpers: list[str] = field(default_factory=lambda: list(DEFAULT_CREDENTIAL_HELPERS))
    #: --push-ignore-immutable-tag-errors: a registry refusing to overwrite an immutable tag is not an error
    push_ignore_immutable_tag_errors: bool = False
    #: --push-retry: whole-destination retries after a failed push (kaniko's default: 0)
    push_retry: int = 0
    #: --image-download-retry: whole-image retries after a failed pull (kaniko's default: 0)
    image_download_retry: int = 0
    #: retries of one HTTP request on connection errors, 5xx and 429, with exponential backoff
    transport_retries: int = 3
    #: first backoff in seconds; doubled each retry (a Retry-After header wins)
    retry_backoff: float = 1.0
    #: upper bound of one backoff wait
    retry_backoff_max: float = 30.0
    #: upload blobs in PATCH chunks of this many bytes; None: one monolithic PUT
    chunk_size: int | None = None
    #: blobs pushed or pulled in parallel (go-containerregistry uses 4; 2 cores here)
    jobs: int = 3
    #: directory holding config.json; None: $DOCKER_CONFIG, /kaniko/.docker, ~/.docker
    docker_config_dir: str | None = None
    #: seconds to wait for a connection, and for each read of an answer
    connect_timeout: float = 30.0
    timeout: float = 300.0
    user_agent: str = "kiln/0.1 (go-containerregistry compatible)"
    #: kaniko's extra CA bundle (<kaniko dir>/ssl/certs/additional-ca-cert-bundle.crt), trusted besides the
    #: system CAs when it exists
    additional_ca_bundle: str | None = None

    # ---- per registry decisions --------------------------------------------------------------
    def allows_http(self, registry: str, push: bool) -> bool:
        host = registry_host(registry)
        if push and self.insecure or not push and self.insecure_pull:
            return True
        return host in {registry_host(r) for r in self.insecure_registries}

    def verify_tls(self, registry: str, push: bool) -> bool | str:
        """False (skip), True (system CAs) or the path of a CA bundle.

        kaniko's `/kaniko/ssl/certs/additional-ca-cert-bundle.crt` (`additional_ca_bundle`) is trusted on
        top of the system CAs: the answer is then a bundle holding both."""
        host = registry_host(registry)
        if push and self.skip_tls_verify or not push and self.skip_tls_verify_pull:
            return False
        if host in {registry_host(r) for r in self.skip_tls_verify_registries}:
            return False
        for name, path in self.registry_certificates.items():
            if registry_host(name) == host:
                return path
        if self.additional_ca_bundle and os.path.isfile(self.additional_ca_bundle):
            return combined_ca_bundle(self.additional_ca_bundle)
        return True

    def client_certificate(self, registry: str) -> tuple[str, str] | None:
        host = registry_host(registry)
        for name, pair in self.registry_client_certificates.items():
            if registry_host(name) == host:
                return pair
        return None

    def pull_registries(self, registry: str) -> list[str]:
        """Where to look for an image of `registry`, in order: its --registry-map entries (and, for Docker
        Hub, the --registry-mirror ones), then the registry itself unless --skip-default-registry-fallback
        (kaniko's RetrieveRemoteImage). A map key names a registry as written (`quay.io`, `gcr.io`); Docker
        Hub is `index.docker.io` (kaniko's key) or `docker.io`.

        A mirror may carry a path ("mirror.example/dockerhub"): the repository is looked up under it.
        """
        host = registry_host(registry)
        keys = {registry, host} | ({DOCKER_HUB, "index.docker.io"} if registry == DOCKER_HUB else set())
        mapped: list[str] = []
        for key, targets in self.registry_maps.items():
            if key in keys or registry_host(key) == host:
                mapped.extend(targets)
        if registry == DOCKER_HUB:
            mapped.extend(self.registry_mirrors)
        mirrors: list[str] = []
        for m in mapped:
            m = re.sub(r"^[a-z]+://", "", m.strip()).rstrip("/")
            if m and m not in mirrors:
                mirrors.append(m)
        if not mirrors:
            return [registry]
        return mirrors + ([] if self.skip_default_registry_fallback else [registry])


def is_local(registry: str) -> bool:
    """localhost, loopback and private addresses: tried over HTTP after HTTPS fails, as ggcr does."""
    host = registry_host(registry)
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:host.index("]")]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private

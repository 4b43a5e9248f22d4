"""Image references parsed as docker does: `[registry/]repository[:tag][@digest]`."""
from __future__ import annotations

import re
from dataclasses import dataclass

from executor.image import digest as _digest

DOCKER_HUB = "docker.io"
#: The API host for Docker Hub (the one go-containerregistry and kaniko talk to and print).
DOCKER_HUB_API = "index.docker.io"
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_COMPONENT_RE = re.compile(rf"^{_COMPONENT}$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")
_MAX_NAME = 255


class ReferenceError(ValueError):
    pass


@dataclass(frozen=True)
class Reference:
    """An image reference as docker parses it ("busybox" is docker.io/library/busybox:latest): registry, repository,
    and a tag, a digest or both."""
    registry: str            # "docker.io", "127.0.0.1:5000", "ghcr.io"
    repository: str          # "library/busybox"
    tag: str | None = None   # None when only a digest was given
    digest: str | None = None

    @classmethod
    def parse(cls, text: str, default_tag: bool = True) -> "Reference":
        """Parse like docker: "busybox" -> docker.io/library/busybox:latest.

        "name:tag@digest" keeps both; the digest wins when pulling. `default_tag=False` leaves
        tag None when neither tag nor digest was given.
        """
        original = text
        if not text or text != text.strip():
            raise ReferenceError(f"invalid reference {original!r}: empty or surrounded by whitespace")
        digest = None
        if "@" in text:
            text, _, digest = text.partition("@")
            if "@" in digest:
                raise ReferenceError(f"invalid reference {original!r}: more than one '@'")
            try:
                _digest.validate(digest)
            except _digest.DigestError as e:
                raise ReferenceError(f"invalid reference {original!r}: {e}") from None
        tag = None
        slash = text.rfind("/")
        colon = text.rfind(":")
        if colon > slash:
            text, tag = text[:colon], text[colon + 1:]
            if not _TAG_RE.match(tag):
                raise ReferenceError(f"invalid reference {original!r}: tag {tag!r} must match "
                                     "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
        registry, repository = _split_domain(text, original)
        if len(registry) + 1 + len(repository) > _MAX_NAME:
            raise ReferenceError(f"invalid reference {original!r}: repository name longer than {_MAX_NAME}")
        for comp in repository.split("/"):
            if not _COMPONENT_RE.match(comp):
                if comp.lower() != comp and _COMPONENT_RE.match(comp.lower()):
                    raise ReferenceError(f"invalid reference {original!r}: repository name must be lowercase")
                raise ReferenceError(f"invalid reference {original!r}: path component {comp!r} must be lowercase "
                                     "letters and digits separated by '.', '_', '__' or '-'")
        if tag is None and digest is None and default_tag:
            tag = DEFAULT_TAG
        return cls(registry, repository, tag, digest)

    # ---- views -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """registry/repository, docker style: "docker.io/library/busybox"."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What goes after /manifests/: the digest if there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def api_host(self) -> str:
        """The host:port the registry API is served from."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def kaniko_name(self) -> str:
        """registry/repository as kaniko prints it (go-containerregistry: "index.docker.io/library/busybox")."""
        return f"{self.api_host}/{self.repository}"

    def with_digest(self, digest: str) -> "Reference":
        return Reference(self.registry, self.repository, self.tag, digest)

    def with_tag(self, tag: str | None) -> "Reference":
        return Reference(self.registry, self.repository, tag, self.digest)

    def in_repository(self, repository: str) -> "Reference":
        return Reference(self.registry, repository, self.tag, self.digest)

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s

    def familiar(self) -> str:
        """Short form as docker prints it: "busybox:latest", "user/app:1", "ghcr.io/x/y:1"."""
        s = str(self)
        first = self.repository.split("/", 1)[0]
        looks_like_host = "." in first or ":" in first or first == "localhost"
        if self.registry == DOCKER_HUB and not looks_like_host:
            s = s[len(DOCKER_HUB) + 1:]
            if s.startswith("library/") and self.repository.count("/") == 1:
                s = s[len("library/"):]
        return s


def _split_domain(text: str, original: str) -> tuple[str, str]:
    first, sep, rest = text.partition("/")
    if sep and (("." in first or ":" in first or first == "localhost") or first.lower() != first):
        registry = first
        if not _DOMAIN_RE.match(registry):
            raise ReferenceError(f"invalid reference {original!r}: registry {registry!r} is not a valid host[:port]")
        if ":" in registry and not registry.startswith("["):
            port = registry.rsplit(":", 1)[1]
            if not port.isdigit():
                raise ReferenceError(f"invalid reference {original!r}: port of {registry!r} is not a number")
        repository = rest
    else:
        registry, repository = DOCKER_HUB, text
    if not repository:
        raise ReferenceError(f"invalid reference {original!r}: no repository name")
    if registry in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = "library/" + repository
    return registry, repository


def registry_host(name: str) -> str:
    """Normalise a registry name given on the command line ("index.docker.io", "https://x/v1/") to a host."""
    host = re.sub(r"^[a-z]+://", "", name.strip()).split("/", 1)[0]
    if host in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"):
        return DOCKER_HUB
    return host

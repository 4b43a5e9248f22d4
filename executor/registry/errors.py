"""Registry errors that name the registry, repository, phase and last HTTP status."""
from __future__ import annotations

import json


class RegistryError(Exception):
    """`PHASE REGISTRY/REPOSITORY: DETAIL (HTTP STATUS)`. `reason` is the registry's own words for a refused
    request (`manifest unknown`), or why it could not be reached; "" when there are none."""

    def __init__(self, registry: str, repository: str, phase: str, detail: str, status: int | None = None,
                 reason: str = ""):
        self.registry = registry
        self.repository = repository
        self.phase = phase
        self.status = status
        self.detail = detail
        self.reason = reason
        where = f"{registry}/{repository}" if repository else registry
        # a 200 whose content was wrong (a corrupt blob) says nothing more about what failed
        status_text = f" (HTTP {status})" if status is not None and not 200 <= status < 300 else ""
        super().__init__(f"{phase} {where}: {detail}{status_text}")

    def with_message(self, message: str) -> "RegistryError":
        """This error reading `message` (what the user is told); the attributes keep the request's detail."""
        self.args = (message,)
        return self


class UnauthorizedError(RegistryError):
    pass


class UnreachableError(RegistryError):
    """The registry could not be reached at all (refused, unknown host, timed out, TLS failed): one line,
    `cannot reach registry HOST (REASON) for REFERENCE`; the library's text is logged at debug level."""

    def __init__(self, registry: str, repository: str, phase: str, reason: str, reference: str = ""):
        self.reference = reference or (f"{registry}/{repository}" if repository else "")
        RegistryError.__init__(self, registry, repository, phase, reason, reason=reason)
        target = f" for {self.reference}" if self.reference else ""
        self.args = (f"cannot reach registry {registry} ({reason}){target}",)

    def for_reference(self, reference: str) -> "UnreachableError":
        """The same error, naming the full reference (with its tag) the caller was after."""
        return UnreachableError(self.registry, self.repository, self.phase, self.reason, reference)


_TLS_HINT = "use --registry-certificate host=ca.pem, or --skip-tls-verify*"


def connection_reason(error: BaseException) -> str:
    """Why a connection failed, in a few words: `connection refused`, `unknown host`, `timed out`,
    `connection reset`, `TLS: certificate verify failed`... (the exception chain is searched for the OS
    error or TLS error under requests' and urllib3's wrappers)."""
    import socket
    import ssl

    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"TLS: {e.verify_message or 'certificate verify failed'}; {_TLS_HINT}"
        if isinstance(e, ssl.SSLError):
            if e.reason == "WRONG_VERSION_NUMBER":
                return "TLS: the registry does not speak TLS there"
            return f"TLS: {(e.reason or 'handshake failed').lower().replace('_', ' ')}"
        if isinstance(e, socket.gaierror):
            return "unknown host"
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, ConnectionResetError):
            return "connection reset"
        if isinstance(e, (TimeoutError, socket.timeout)):
            return "timed out"
        if isinstance(e, OSError) and e.strerror:
            return e.strerror.lower()
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
    text = str(error)
    for needle, reason in (("Connection refused", "connection refused"), ("Name or service not known", "unknown host"),
                           ("Temporary failure in name resolution", "unknown host"), ("timed out", "timed out"),
                           ("Connection reset", "connection reset"),
                           ("CERTIFICATE_VERIFY_FAILED", f"TLS: certificate verify failed; {_TLS_HINT}"),
                           ("WRONG_VERSION_NUMBER", "TLS: the registry does not speak TLS there")):
        if needle in text:
            return reason
    return text.splitlines()[0][:120] if text else error.__class__.__name__


class NotFoundError(RegistryError):
    """HTTP 404. Pulling an image the user named, it reads `image not found in REGISTRY (REASON)` (see
    `image_not_found`): the caller names the reference; the request that failed is logged at debug level."""

    def image_not_found(self) -> RegistryError:
        """This error as the user reads it when the tag or digest they named is not in the registry."""
        err = NotFoundError(self.registry, self.repository, self.phase, self.detail, self.status, self.reason)
        return err.with_message(f"image not found in {self.registry} ({self.reason or f'HTTP {self.status}'})")


def registry_words(body: bytes | str | None) -> str:
    """The messages of a distribution-style JSON error body (`manifest unknown`), without the codes; ""
    when the body has none."""
    if not body:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    try:
        errors = json.loads(body).get("errors") or []
    except (ValueError, AttributeError):
        return ""
    words = [str(e.get("message") or e.get("code") or "").strip() for e in errors if isinstance(e, dict)]
    return "; ".join(w for w in words if w)


def describe_body(body: bytes | str | None) -> str:
    """The registry's error codes and messages from a distribution-style JSON error body."""
    if not body:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(body)
        errors = data.get("errors") or []
        parts = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors if isinstance(e, dict)]
        if parts:
            return "; ".join(parts)
        if "details" in data or "error" in data:
            return str(data.get("details") or data.get("error"))
    except (ValueError, AttributeError):
        pass
    return body.strip()[:200]

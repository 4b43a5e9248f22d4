"""HTTP to one registry: scheme discovery (/v2/ ping), TLS settings, auth challenges, bearer tokens cached per
scope, retries with exponential backoff on connection errors, 5xx and 429 (Retry-After honoured)."""
from __future__ import annotations

import base64
import email.utils
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterable
from urllib.parse import urljoin, urlsplit

import requests
import requests.adapters
import requests.utils
import urllib3

from . import auth
from .errors import (NotFoundError, RegistryError, UnauthorizedError, UnreachableError, connection_reason,
                     describe_body, registry_words)
from .options import RegistryOptions, is_local
from .reference import DOCKER_HUB, DOCKER_HUB_API

log = logging.getLogger(__name__)

Body = bytes | Callable[[], BinaryIO | bytes] | None
#: OpenSSL's reasons for a handshake answered by something that is not TLS (1.1/3.0, 3.2+, 3.x)
_NOT_TLS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST",
            "UNKNOWN_PROTOCOL", "RECORD_LENGTH_MISMATCH"}
_TOKEN_MARGIN = 10.0  # seconds: a token this close to expiry is fetched anew
_DEFAULT_TOKEN_LIFETIME = 60  # the token spec's default when expires_in is missing


@dataclass
class Challenge:
    """A registry's `WWW-Authenticate` challenge (distribution spec, token authentication): Basic or Bearer and its
    parameters."""
    scheme: str              # "basic" | "bearer"
    params: dict[str, str]   # realm, service, scope, error


@dataclass
class _Token:
    """A bearer token from a registry's token service, cached per set of scopes until shortly before it expires."""
    value: str
    expires_at: float


def parse_challenge(header: str) -> Challenge | None:
    """`Bearer realm="https://auth",service="reg",scope="repository:x:pull"` -> Challenge."""
    if not header:
        return None
    m = re.match(r"\s*(\w+)\s*(.*)", header)
    if not m:
        return None
    params = {k.lower(): v for k, v in re.findall(r'(\w+)\s*=\s*"([^"]*)"', m.group(2))}
    params.update({k.lower(): v for k, v in re.findall(r'(\w+)\s*=\s*([^",\s]+)', m.group(2))
                   if k.lower() not in params})
    return Challenge(m.group(1).lower(), params)


def repository_scope(repository: str, actions: str) -> str:
    return f"repository:{repository}:{actions}"


def parse_token_answer(data: Any) -> tuple[str, float]:
    """(token, lifetime in seconds) from a token server's JSON: `token` or `access_token`, `expires_in`
    (60 when absent or unusable, as the token spec says)."""
    if not isinstance(data, dict):
        return "", float(_DEFAULT_TOKEN_LIFETIME)
    value = data.get("token") or data.get("access_token") or ""
    try:
        expires_in = float(data.get("expires_in") or _DEFAULT_TOKEN_LIFETIME)
    except (TypeError, ValueError):
        expires_in = float(_DEFAULT_TOKEN_LIFETIME)
    if expires_in <= 0:
        expires_in = float(_DEFAULT_TOKEN_LIFETIME)
    return str(value), expires_in


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# CA bundles as read before the build's first RUN (executor.floor): a RUN may remove /kaniko/ssl later
_HELD_CA: dict[str, str] = {}


def hold_ca(options: RegistryOptions) -> None:
    """Read every CA bundle a registry of this build may be verified with into memory now: the default bundle
    (requests' own, or $REQUESTS_CA_BUNDLE), --registry-certificate files, kaniko's additional bundle (combined
    with the default one). `_HeldCAAdapter` verifies with these once their file is gone."""
    import os

    from requests.utils import DEFAULT_CA_BUNDLE_PATH

    paths = [DEFAULT_CA_BUNDLE_PATH, os.environ.get("REQUESTS_CA_BUNDLE") or "", os.environ.get("CURL_CA_BUNDLE") or "",
             *options.registry_certificates.values()]
    verify = options.verify_tls("kiln.invalid", push=True)   # writes kaniko's combined bundle, when there is one
    if isinstance(verify, str):
        paths.append(verify)
    for path in paths:
        if path and os.path.isfile(path):
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    _HELD_CA[path] = f.read()
            except OSError:
                pass


class _HeldCAAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, verifying with the held copy of a CA bundle whose file a RUN removed (requests itself
    would refuse: "Could not find a suitable TLS CA certificate bundle")."""

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        from requests.utils import DEFAULT_CA_BUNDLE_PATH

        path = DEFAULT_CA_BUNDLE_PATH if verify is True else verify
        if url.lower().startswith("https") and isinstance(path, str) and path in _HELD_CA:
            import os

            if not os.path.isfile(path):
                super().cert_verify(conn, url, False, cert)   # client certificate, no CA file
                conn.cert_reqs = "CERT_REQUIRED"
                conn.ca_certs = conn.ca_cert_dir = None
                conn.ca_cert_data = _HELD_CA[path]
                return
        super().cert_verify(conn, url, verify, cert)


class Transport:
    """Requests to one registry host, either for pulling or for pushing (TLS and HTTP options differ)."""

    def __init__(self, registry: str, options: RegistryOptions, push: bool,
                 credentials: auth.Credentials | None = None):
        self.registry = registry
        self.host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        self.options = options
        self.push = push
        self._credentials = credentials
        self.session = requests.Session()
        self.session.mount("https://", _HeldCAAdapter())
        self.session.verify = options.verify_tls(registry, push)
        if self.session.verify is False:
            log.warning("TLS certificates of %s are not verified (%s)", registry,
                        "--skip-tls-verify" if push else "--skip-tls-verify-pull or --skip-tls-verify-registry")
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        cert = options.client_certificate(registry)
        if cert:
            self.session.cert = cert
        self.session.headers["User-Agent"] = options.user_agent
        self.base: str | None = None
        self.challenge: Challenge | None = None
        self._tokens: dict[frozenset[str], _Token] = {}
        self._lock = threading.RLock()
        #: upload sessions opened and not used (the push permission check's), by repository: the first upload
        #: to that repository takes it instead of a POST of its own
        self._spare_uploads: dict[str, str] = {}

    def learn_from(self, other: "Transport") -> None:
        """Take the scheme and auth challenge `other` found for the same registry, when this transport would
        try the same schemes with the same TLS settings (its ping would learn nothing new)."""
        if other.base is not None and other._schemes() == self._schemes() and \
                other.session.verify == self.session.verify and other.session.cert == self.session.cert:
            with self._lock:
                self.base, self.challenge = other.base, other.challenge
                self._credentials = self._credentials or other._credentials
                if other.session.headers.get("User-Agent") == self.session.headers.get("User-Agent"):
                    # same TLS settings and headers: one connection pool per registry, so pulling and pushing
                    # reuse the connections (and TLS sessions) the other opened
                    self.session.close()
                    self.session = other.session

    def keep_spare_upload(self, repository: str, location: str) -> None:
        with self._lock:
            self._spare_uploads.setdefault(repository, location)

    def take_spare_upload(self, repository: str) -> str | None:
        with self._lock:
            return self._spare_uploads.pop(repository, None)

    # ---- credentials and scheme --------------------------------------------------------------
    @property
    def credentials(self) -> auth.Credentials:
        if self._credentials is None:
            self._credentials = auth.resolve(self.registry, self.options.docker_config_dir,
                                             self.options.credential_helpers, self.session.verify)
        return self._credentials

    def _schemes(self) -> list[str]:
        schemes = ["https"]
        if self.options.allows_http(self.registry, self.push) or is_local(self.registry):
            schemes.append("http")
        return schemes

    def ping(self, repository: str = "") -> None:
        """GET /v2/ over HTTPS, then HTTP when allowed: learn the scheme and the auth challenge."""
        with self._lock:
            if self.base is not None:
                return
            errors: list[str] = []
            unreachable: list[str] = []
            schemes = self._schemes()
            if len(schemes) > 1 and not self._speaks_tls():
                # a plain-HTTP registry: no verifying TLS context is built (loading the CA bundle alone costs
                # ~20 ms) and no failed handshake made; what HTTPS would have said is kept for the error
                unreachable.append("https: TLS: the registry does not speak TLS")
                schemes = schemes[1:]
            for scheme in schemes:
                url = f"{scheme}://{self.host}/v2/"
                try:
                    # 5xx/429 are retried; connection errors only on the last scheme tried (an HTTP-only
                    # registry refuses the TLS handshake at once and must not cost a backoff)
                    resp = self._send_with_retries("GET", url, phase="ping", repository=repository, headers={},
                                                   body=None, stream=False, allow_redirects=True, timeout_retry=True,
                                                   retry_connection=scheme == schemes[-1])
                except UnreachableError as e:
                    unreachable.append(f"{scheme}: {e.reason}")
                    continue
                except RegistryError as e:
                    errors.append(f"{scheme}: {e.detail}")
                    continue
                if resp.status_code == 200:
                    self.challenge = None
                elif resp.status_code == 401:
                    self.challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
                else:
                    errors.append(f"{scheme}: GET {url} answered HTTP {resp.status_code}")
                    continue
                self.base = f"{scheme}://{self.host}"
                log.debug("registry %s speaks %s, auth %s", self.registry, scheme,
                          self.challenge.scheme if self.challenge else "none")
                return
            hint = "" if "http" in schemes else "plain HTTP not allowed: use --insecure, --insecure-pull or " \
                "--insecure-registry"
            tls = [u for u in unreachable if u.startswith("https: TLS: ") and "certificate" in u]
            if tls:
                # the registry speaks TLS and its certificate is the problem: what plain HTTP answered
                # (400, "client sent an HTTP request to an HTTPS server") does not matter
                raise RegistryError(self.registry, repository, "ping", tls[0])
            if unreachable and not errors:
                reasons = {u.split(": ", 1)[1] for u in unreachable}
                reason = reasons.pop() if len(reasons) == 1 else "; ".join(unreachable)
                if reason in ("unknown host", "timed out"):
                    hint = ""       # plain HTTP would not find the host either
                raise UnreachableError(self.registry, repository, "ping", "; ".join(filter(None, (reason, hint))))
            raise RegistryError(self.registry, repository, "ping", "; ".join(errors + unreachable) +
                                (f" ({hint})" if hint else ""))

    def _speaks_tls(self) -> bool:
        """Whether the registry answers a TLS handshake, asked before HTTPS is tried on a registry that may also
        speak plain HTTP. HTTPS stays first, as go-containerregistry's ping has it (transport/ping.go tries
        "https", then "http" for an insecure or local registry): this only learns cheaply, with a context that
        loads no CA bundle and verifies nothing, that a plain-HTTP server answers the ClientHello with a
        protocol error. Anything else (a handshake that completes, a refused or reset connection, a proxy in
        between, a client certificate to present) answers True: the real HTTPS attempt then decides, as before."""
        import socket
        import ssl

        if self.session.cert or requests.utils.get_environ_proxies(f"https://{self.host}/v2/"):
            return True
        try:
            parts = urlsplit(f"//{self.host}")
            host, port = parts.hostname or self.host, parts.port or 443
        except ValueError:
            return True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            # a short timeout: a host that does not answer within it is left to the real attempts (and their own
            # timeouts), so an unreachable registry costs at most this much more than before
            with socket.create_connection((host, port), timeout=min(self.options.connect_timeout, 2.0)) as raw:
                with context.wrap_socket(raw, server_hostname=host):
                    return True
        except ssl.SSLError as e:
            # what OpenSSL says when the answer to a ClientHello is not a TLS record (a plain-HTTP server's
            # "HTTP/1.1 400 Bad Request"); a TLS alert (a client certificate required, no common cipher) or a
            # hang-up is a TLS server's answer, left to the real attempt
            if str(e.reason or "").upper() not in _NOT_TLS:
                return True
            log.debug("registry %s answered a TLS handshake with %s: plain HTTP", self.registry, e.reason)
            return False
        except (OSError, ValueError):
            return True

    def url(self, path: str) -> str:
        if path.startswith("http://") or path.startswith("https://"):
            return path
        assert self.base is not None
        return urljoin(self.base + "/", path.lstrip("/")) if not path.startswith("/") else self.base + path

    # ---- authorization -----------------------------------------------------------------------
    def _authorization(self, scopes: Iterable[str], repository: str) -> str | None:
        ch = self.challenge
        if ch is None:
            return None
        creds = self.credentials
        if ch.scheme == "basic":
            if creds.anonymous:
                return None
            raw = f"{creds.username}:{creds.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        if ch.scheme == "bearer":
            if creds.registry_token:
                return "Bearer " + creds.registry_token
            return "Bearer " + self._token(frozenset(scopes), repository)
        raise RegistryError(self.registry, repository, "token", f"unsupported auth scheme {ch.scheme!r}")

    def _token(self, scopes: frozenset[str], repository: str) -> str:
        with self._lock:
            tok = self._tokens.get(scopes)
            if tok and tok.expires_at > time.monotonic():
                return tok.value
            tok = self._fetch_token(scopes, repository)
            self._tokens[scopes] = tok
            return tok.value

    def invalidate_tokens(self, scopes: Iterable[str] | None = None) -> None:
        with self._lock:
            if scopes is None:
                self._tokens.clear()
            else:
                self._tokens.pop(frozenset(scopes), None)

    def _fetch_token(self, scopes: frozenset[str], repository: str) -> _Token:
        assert self.challenge is not None
        realm = self.challenge.params.get("realm")
        if not realm:
            raise RegistryError(self.registry, repository, "token", "the Bearer challenge has no realm")
        service = self.challenge.params.get("service", "")
        creds = self.credentials
        scope_list = sorted(scopes)
        if creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token, "service": service,
                    "client_id": "kiln", "scope": " ".join(scope_list)}
            resp = self._send_with_retries("POST", realm, "token", repository, headers={}, body=None,
                                           data=form, stream=False, allow_redirects=True, timeout_retry=True)
        else:
            params: list[tuple[str, str]] = [("service", service)] if service else []
            params += [("scope", s) for s in scope_list]
            headers = {}
            if not creds.anonymous:
                headers["Authorization"] = "Basic " + base64.b64encode(
                    f"{creds.username}:{creds.password}".encode()).decode()
            resp = self._send_with_retries("GET", realm, "token", repository, headers=headers, body=None,
                                           params=params, stream=False, allow_redirects=True, timeout_retry=True)
        if resp.status_code != 200:
            who = ("anonymously" + creds.origin[len("anonymous"):] if creds.anonymous
                   else f"as {creds.username or 'token user'} ({creds.origin})")
            raise UnauthorizedError(self.registry, repository, "token",
                                    f"token server {realm} refused scope {' '.join(scope_list)} {who}: "
                                    f"{describe_body(resp.content)}", resp.status_code)
        try:
            data = resp.json()
        except ValueError:
            raise RegistryError(self.registry, repository, "token", f"token server {realm} answered non-JSON",
                                resp.status_code) from None
        value, expires_in = parse_token_answer(data)
        if not value:
            raise RegistryError(self.registry, repository, "token",
                                f"token server {realm} answered without 'token' or 'access_token'", resp.status_code)
        log.debug("token for %s scopes %s, expires in %ss", self.registry, scope_list, expires_in)
        return _Token(value, time.monotonic() + expires_in - min(_TOKEN_MARGIN, expires_in / 10))

    # ---- requests ----------------------------------------------------------------------------
    def request(self, method: str, path: str, *, phase: str, repository: str, scopes: Iterable[str],
                expect: Iterable[int], headers: dict[str, str] | None = None, body: Body = None,
                stream: bool = False, allow_redirects: bool = True, params: Any = None) -> requests.Response:
        """One API call with auth, one re-authentication on 401 and transport retries.

        `body` is bytes or a callable that opens a fresh stream (so a retry can send it again).
        A status outside `expect` raises RegistryError (NotFoundError for 404, UnauthorizedError for 401/403).
        """
        self.ping(repository)
        scopes = list(scopes)
        expect = set(expect)
        reauthenticated = False
        while True:
            hdrs = dict(headers or {})
            authz = self._authorization(scopes, repository)
            if authz:
                hdrs["Authorization"] = authz
            resp = self._send_with_retries(method, self.url(path), phase, repository, hdrs, body, stream=stream,
                                           allow_redirects=allow_redirects, params=params, timeout_retry=True)
            if resp.status_code == 401 and not reauthenticated:
                # Expired token, a registry that wants auth after all, or a scope the token lacks.
                reauthenticated = True
                new = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
                if new is not None:
                    self.challenge = new
                self.invalidate_tokens(scopes)
                resp.close()
                log.debug("%s %s: 401, authenticating again", phase, self.registry)
                continue
            if resp.status_code in expect:
                return resp
            detail = describe_body(resp.content) or resp.reason or "unexpected answer"
            words = registry_words(resp.content)
            resp.close()
            log.debug("%s %s %s: HTTP %d: %s", phase, method, self.url(path).split("?")[0], resp.status_code, detail)
            if resp.status_code in (401, 403):
                creds = self.credentials
                who = (creds.origin or "anonymous") if creds.anonymous else f"user {creds.username!r} from {creds.origin}"
                raise UnauthorizedError(self.registry, repository, phase,
                                        f"{method} {path.split('?')[0]} denied ({who}): {detail}", resp.status_code,
                                        words)
            if resp.status_code == 404:
                raise NotFoundError(self.registry, repository, phase, f"{method} {path.split('?')[0]}: {detail}",
                                    resp.status_code, words)
            raise RegistryError(self.registry, repository, phase, f"{method} {path.split('?')[0]}: {detail}",
                                resp.status_code, words)

    def _send_with_retries(self, method: str, url: str, phase: str, repository: str, headers: dict[str, str],
                           body: Body, stream: bool, allow_redirects: bool, timeout_retry: bool,
                           params: Any = None, data: Any = None, retry_connection: bool = True) -> requests.Response:
        retries = max(0, self.options.transport_retries) if timeout_retry else 0
        attempt = 0
        while True:
            payload = body() if callable(body) else body
            if data is not None:
                payload = data
            try:
                resp = self.session.request(method, url, headers=headers, data=payload, stream=stream,
                                            allow_redirects=allow_redirects, params=params,
                                            timeout=(self.options.connect_timeout, self.options.timeout),
                                            # explicit: a session-level value loses to $REQUESTS_CA_BUNDLE
                                            verify=self.session.verify)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
                # ChunkedEncodingError: the connection broke while an answer's body was read (a reset
                # mid-body of a manifest or token answer); as retryable as a reset before the answer
                reason = _timeout_reason(e) or connection_reason(e)
                log.debug("%s %s %s: %s", phase, method, url.split("?")[0], e)
                if attempt < retries and retry_connection and not isinstance(e, requests.exceptions.SSLError):
                    self._sleep(attempt, None, phase, reason)
                    attempt += 1
                    continue
                if isinstance(e, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ReadTimeout)) or \
                        payload is not None:
                    # it was reached: the connection broke while a request or an answer was under way
                    raise RegistryError(self.registry, repository, phase,
                                        f"{method} {url.split('?')[0]} failed: {reason}") from None
                raise UnreachableError(self.registry, repository, phase, reason) from None
            except requests.RequestException as e:
                log.debug("%s %s %s: %s", phase, method, url.split("?")[0], e)
                raise RegistryError(self.registry, repository, phase,
                                    f"{method} {url.split('?')[0]} failed: {connection_reason(e)}") from None
            finally:
                if hasattr(payload, "close") and payload is not data:
                    payload.close()
            if (resp.status_code == 429 or resp.status_code >= 500) and attempt < retries:
                wait = retry_after_seconds(resp.headers.get("Retry-After"))
                resp.close()
                self._sleep(attempt, wait, phase, f"HTTP {resp.status_code}")
                attempt += 1
                continue
            return resp

    def _sleep(self, attempt: int, retry_after: float | None, phase: str, why: str) -> None:
        wait = retry_after if retry_after is not None else self.options.retry_backoff * (2 ** attempt)
        wait = min(wait, self.options.retry_backoff_max)
        log.warning("%s %s: %s; retrying in %.1fs", phase, self.registry, why, wait)
        time.sleep(wait)


def _timeout_reason(e: Exception) -> str:
    """requests' timeouts in words: which of connecting or waiting for the answer took too long."""
    if isinstance(e, requests.exceptions.ConnectTimeout):
        return "timed out while connecting"
    if isinstance(e, requests.Timeout):
        return "timed out waiting for the answer"
    return ""


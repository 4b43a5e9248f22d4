"""A small Docker registry token server (distribution's ``auth.token`` protocol) for the test rig.

Runs as its own process: ``python3 tokenserver.py CONFIG.json``. It listens on 127.0.0.1 over HTTPS
(port 0 unless configured), prints the port it got on stdout, then serves until killed.

Policy: anonymous clients may pull any repository not under ``private/``; everything else (push,
delete, pull of ``private/...``, the catalog) needs valid credentials; wrong credentials get 401.
Tokens are RS256 JWTs signed with ``openssl dgst`` and carry the signing certificate in ``x5c``.

Endpoints (any path):
  GET  ?service=S&scope=...&scope=...[&offline_token=true]   with optional HTTP basic auth
  POST form grant_type=password (username, password) | refresh_token (refresh_token),
       scope (space separated), service, client_id, access_type=offline for a refresh token.
Every request is logged as one JSON line (method, grant_type, scopes, account, granted, status).
"""
from __future__ import annotations

import base64
import binascii
import hmac
import http.server
import json
import logging
import secrets
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

log = logging.getLogger("kiln.rig.tokenserver")

PRIVATE_PREFIX = "private/"


@dataclass
class TokenServerConfig:
    tls_cert: str
    tls_key: str
    signing_cert: str
    signing_key: str
    service: str
    issuer: str
    users: dict[str, str]           # account -> password
    log_path: str
    expires_in: int = 300
    port: int = 0
    #: refresh tokens issued elsewhere (ACR's /oauth2/exchange stand-in) -> the account they stand for
    refresh_tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str) -> "TokenServerConfig":
        with open(path) as f:
            return cls(**json.load(f))


@dataclass
class _State:
    config: TokenServerConfig
    x5c: list[str]
    refresh_tokens: dict[str, str] = field(default_factory=dict)   # refresh token -> account
    lock: threading.Lock = field(default_factory=threading.Lock)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _pem_to_der_b64(pem_path: str) -> str:
    with open(pem_path) as f:
        lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith("-----")]
    return "".join(lines)   # base64 (standard alphabet) of the DER, as x5c wants


def sign_jwt(claims: dict, x5c: list[str], key_path: str) -> str:
    header = {"typ": "JWT", "alg": "RS256", "x5c": x5c}
    signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + _b64url(json.dumps(claims, separators=(",", ":")).encode()))
    proc = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_path],
                          input=signing_input.encode(), capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl dgst -sign with {key_path} failed: {proc.stderr.decode()}")
    return signing_input + "." + _b64url(proc.stdout)


def parse_scope(scope: str) -> dict | None:
    """``repository:name:pull,push`` -> resource dict; the name may contain ':' only before a port."""
    parts = scope.split(":")
    if len(parts) < 3:
        return None
    rtype, actions, name = parts[0], parts[-1], ":".join(parts[1:-1])
    return {"type": rtype, "name": name, "actions": [a for a in actions.split(",") if a]}


def grant(resource: dict, account: str | None) -> dict:
    """The subset of the requested actions this account gets on the resource."""
    allowed: list[str] = []
    for action in resource["actions"]:
        if resource["type"] == "repository":
            if action == "pull" and (account or not resource["name"].startswith(PRIVATE_PREFIX)):
                allowed.append(action)
            elif action in ("push", "delete", "*") and account:
                allowed.append(action)
        elif resource["type"] == "registry" and resource["name"] == "catalog" and account:
            allowed.append(action)
    return {"type": resource["type"], "name": resource["name"], "actions": allowed}


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "kiln-test-tokenserver/1"
    state: _State  # set on the subclass made in serve()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        log.debug("%s " + format, self.address_string(), *args)

    # --- helpers -----------------------------------------------------------------------------
    def _reply(self, status: int, body: dict, extra_headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _record(self, entry: dict) -> None:
        entry = {"time": time.time(), **entry}
        with self.state.lock, open(self.state.config.log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def _check_password(self, username: str, password: str) -> bool:
        expected = self.state.config.users.get(username)
        return expected is not None and hmac.compare_digest(expected, password)

    def _issue(self, entry: dict, account: str | None, scopes: list[str], service: str,
               want_refresh: bool, refresh_token: str | None = None) -> None:
        cfg = self.state.config
        if service and service != cfg.service:
            entry.update(status=400, error=f"unknown service {service!r}")
            self._record(entry)
            self._reply(400, {"errors": [{"code": "UNSUPPORTED", "message": f"unknown service {service!r}"}]})
            return
        granted = []
        for scope in scopes:
            resource = parse_scope(scope)
            if resource is not None:
                granted.append(grant(resource, account))
        now = int(time.time())
        claims = {"iss": cfg.issuer, "sub": account or "", "aud": cfg.service, "exp": now + cfg.expires_in,
                  "nbf": now - 30, "iat": now, "jti": secrets.token_hex(12),
                  "access": [g for g in granted if g["actions"]]}
        token = sign_jwt(claims, self.state.x5c, cfg.signing_key)
        body = {"token": token, "access_token": token, "expires_in": cfg.expires_in,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                "scope": " ".join(scopes)}
        if account and (want_refresh or refresh_token):
            if refresh_token is None:
                refresh_token = secrets.token_urlsafe(24)
                with self.state.lock:
                    self.state.refresh_tokens[refresh_token] = account
            body["refresh_token"] = refresh_token
        entry.update(status=200, account=account, granted=granted)
        self._record(entry)
        self._reply(200, body)

    def _unauthorized(self, entry: dict, why: str) -> None:
        entry.update(status=401, error=why)
        self._record(entry)
        self._reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": why}]},
                    {"WWW-Authenticate": 'Basic realm="kiln-test-tokenserver"'})

    # --- verbs -------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
        entry = {"method": "GET", "grant_type": None, "scopes": scopes, "account": None,
                 "basic_auth": False}
        account = None
        header = self.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            entry["basic_auth"] = True
            try:
                username, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return self._unauthorized(entry, "malformed basic authorization header")
            entry["account"] = username
            if not self._check_password(username, password):
                return self._unauthorized(entry, f"wrong credentials for {username!r}")
            account = username
        want_refresh = query.get("offline_token", ["false"])[0].lower() == "true"
        self._issue(entry, account, scopes, query.get("service", [""])[0], want_refresh)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        first = lambda k: form.get(k, [""])[0]  # noqa: E731
        scopes = [s for value in form.get("scope", []) for s in value.split(" ") if s]
        grant_type = first("grant_type")
        entry = {"method": "POST", "grant_type": grant_type, "scopes": scopes, "account": None,
                 "client_id": first("client_id")}
        if grant_type == "password":
            username = first("username")
            entry["account"] = username
            if not self._check_password(username, first("password")):
                return self._unauthorized(entry, f"wrong credentials for {username!r}")
            self._issue(entry, username, scopes, first("service"), first("access_type") == "offline")
        elif grant_type == "refresh_token":
            refresh = first("refresh_token")
            with self.state.lock:
                account = self.state.refresh_tokens.get(refresh)
            if account is None:
                return self._unauthorized(entry, "unknown refresh token")
            entry["account"] = account
            self._issue(entry, account, scopes, first("service"), True, refresh_token=refresh)
        else:
            entry.update(status=400, error=f"unsupported grant_type {grant_type!r}")
            self._record(entry)
            self._reply(400, {"error": "unsupported_grant_type"})


def serve(config: TokenServerConfig) -> None:
    state = _State(config=config, x5c=[_pem_to_der_b64(config.signing_cert)],
                   refresh_tokens=dict(config.refresh_tokens))
    handler = type("Handler", (_Handler,), {"state": state})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", config.port), handler)
    httpd.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(config.tls_cert, config.tls_key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    sys.stdout.write(f"{httpd.server_address[1]}\n")
    sys.stdout.flush()
    httpd.serve_forever()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: tokenserver.py CONFIG.json\n")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    serve(TokenServerConfig.load(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

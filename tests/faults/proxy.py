"""A fault-injecting HTTP proxy in front of a real registry (and, for the token flavour, its token server).

Clients talk plain HTTP to ``127.0.0.1:PORT``; the proxy forwards each request to the upstream registry
(HTTP or HTTPS with the rig's CA) and relays the answer, unless a ``Fault`` rule matches the request:

* ``status``       answer ``status`` (500/502/503/429...) with optional ``Retry-After`` and ``body``, without
  forwarding
* ``reset_upload`` read ``nbytes`` of the request body, then reset the connection (RST)
* ``reset_download`` forward, send the headers and ``nbytes`` of the answer's body, then reset
* ``stall``        accept the request, then send nothing for ``seconds`` and close
* ``stall_download`` forward, send the headers and ``nbytes`` of the body, then nothing for ``seconds``
* ``expire_token`` forward without the ``Authorization`` header: the registry's own 401 and challenge, as for
  a token that expired early
* ``not_found``    answer 404 with a distribution error body (a HEAD that lies about an existing blob)
* ``drop_answer``  forward (the registry acts on the request), then reset instead of relaying the answer
* ``corrupt``      forward, then flip one byte of the answer's body (a blob whose digest does not match)
* ``throttle``     forward, then send the answer's body at ``rate`` bytes a second (a slow link)

A rule matches on method and a regular expression searched in the path; ``skip`` lets the first matching
requests through untouched, ``times`` bounds how many get the fault (None: all). The Bearer challenge's
realm is rewritten to ``/_token`` on the proxy, so token requests pass through the proxy too.
Every request is recorded in ``log`` as (method, path, what happened).
"""
from __future__ import annotations

import http.client
import logging
import re
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade", "content-length"}
TOKEN_PREFIX = "/_token"
_MAX_BODY = 256 << 20


@dataclass
class Fault:
    action: str                  # status | reset_upload | reset_download | stall | stall_download | expire_token
    #                              | not_found | corrupt
    method: str | None = None    # None: any method
    path: str = ""               # regular expression searched in the path (query included)
    times: int | None = 1        # how many matching requests get the fault; None: every one
    skip: int = 0                # matching requests let through before the fault starts
    status: int = 503
    retry_after: str | None = None
    nbytes: int = 0
    seconds: float = 0.0
    body: bytes = b""            # status: the answer's body (default: a distribution UNAVAILABLE error)
    rate: int = 0                # throttle: bytes a second
    matched: int = 0             # matching requests so far
    fired: int = 0               # faults delivered so far

    def wants(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        if not re.search(self.path, path):
            return False
        self.matched += 1
        if self.matched <= self.skip:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.fired += 1
        return True


@dataclass
class Upstream:
    scheme: str
    host: str
    ca_path: str | None = None

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.ca_path)
            return http.client.HTTPSConnection(self.host, timeout=timeout, context=ctx)
        return http.client.HTTPConnection(self.host, timeout=timeout)


@dataclass
class FaultProxy:
    upstream: Upstream
    token_upstream: str | None = None            # the real token realm URL (token flavour)
    faults: list[Fault] = field(default_factory=list)
    log: list[tuple[str, str, str]] = field(default_factory=list)
    host: str = ""
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- rules -------------------------------------------------------------------------------
    def add(self, action: str, method: str | None = None, path: str = "", **kwargs) -> Fault:
        fault = Fault(action, method, path, **kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.log.clear()

    def pick(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.wants(method, path):
                    return fault
        return None

    def record(self, method: str, path: str, what: str) -> None:
        with self._lock:
            self.log.append((method, path, what))

    def requests(self, method: str | None = None, path: str = "") -> list[tuple[str, str, str]]:
        with self._lock:
            return [r for r in self.log if (method is None or r[0] == method) and re.search(path, r[1])]

    # ---- life --------------------------------------------------------------------------------
    def start(self) -> "FaultProxy":
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        log.info("fault proxy %s -> %s://%s", self.host, self.upstream.scheme, self.upstream.host)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ref(self, repo_tag: str) -> str:
        return f"{self.host}/{repo_tag}"


class _Server(ThreadingHTTPServer):
    block_on_close = False   # a stalled handler must not hold up stop()

    def handle_error(self, request, client_address) -> None:
        # a client that gave up (timeout, reset on purpose) is expected here: no traceback on stderr
        log.debug("fault proxy: request from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"
    timeout = 60

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        log.debug("proxy: " + format, *args)

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # ---- the request ---------------------------------------------------------------------------
    def _read_body(self, limit: int | None = None) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ValueError("body too large for the fault proxy")
        return self.rfile.read(length if limit is None else min(limit, length))

    def _reset(self) -> None:
        """Close with RST: the client sees 'connection reset by peer'."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        owner = self.owner
        method, path = self.command, self.path
        fault = owner.pick(method, path)
        what = fault.action if fault else "forward"
        if fault and fault.action == "reset_upload":
            self._read_body(fault.nbytes)
            owner.record(method, path, "reset_upload")
            self._reset()
            return
        body = self._read_body()
        if fault and fault.action == "status":
            headers = {"Content-Type": "application/json"}
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            owner.record(method, path, f"status {fault.status}")
            self._answer(fault.status, headers,
                         fault.body or b'{"errors":[{"code":"UNAVAILABLE","message":"injected by the fault proxy"}]}')
            return
        if fault and fault.action == "stall":
            owner.record(method, path, "stall")
            time.sleep(fault.seconds)
            self.close_connection = True
            return
        if fault and fault.action == "not_found":
            owner.record(method, path, "not_found")
            self._answer(404, {"Content-Type": "application/json"},
                         b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}')
            return
        try:
            # an expired token: the registry itself answers, as it would to a request without a valid token
            status, headers, data = self._forward(method, path, body,
                                                  strip_auth=bool(fault and fault.action == "expire_token"))
        except OSError as e:
            owner.record(method, path, f"upstream error {e}")
            self._answer(502, {}, b"fault proxy: upstream unreachable")
            return
        if fault and fault.action == "expire_token":
            owner.record(method, path, f"expire_token {status}")
            self._answer(status, headers, data)
            return
        if fault and fault.action == "drop_answer":   # the registry did the work; the answer is lost
            owner.record(method, path, f"drop_answer {status}")
            self._reset()
            return
        if fault and fault.action == "corrupt" and data:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
        if fault and fault.action in ("reset_download", "stall_download"):
            owner.record(method, path, fault.action)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:fault.nbytes])
            self.wfile.flush()
            if fault.action == "stall_download":
                time.sleep(fault.seconds)
            self._reset()
            return
        if fault and fault.action == "throttle" and fault.rate > 0 and method != "HEAD":
            owner.record(method, path, f"throttle {status}")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            step = max(1, fault.rate // 10)
            for offset in range(0, len(data), step):
                self.wfile.write(data[offset:offset + step])
                self.wfile.flush()
                time.sleep(0.1)
            return
        owner.record(method, path, f"{what} {status}")
        self._answer(status, headers, data)

    def _forward(self, method: str, path: str, body: bytes,
                 strip_auth: bool = False) -> tuple[int, dict[str, str], bytes]:
        owner = self.owner
        if path.startswith(TOKEN_PREFIX) and owner.token_upstream:
            real = urlsplit(owner.token_upstream)
            target = Upstream(real.scheme, real.netloc, owner.upstream.ca_path)
            upstream_path = real.path + path[len(TOKEN_PREFIX):]
        else:
            target, upstream_path = owner.upstream, path
        drop = _HOP | {"host"} | ({"authorization"} if strip_auth else set())
        headers = {k: v for k, v in self.headers.items() if k.lower() not in drop}
        headers["Host"] = owner.host if target is owner.upstream else target.host
        headers["X-Forwarded-Proto"] = "http"
        headers["Connection"] = "close"
        if body or method in ("PUT", "POST", "PATCH"):
            headers["Content-Length"] = str(len(body))
        conn = target.connection(timeout=30)
        try:
            conn.request(method, upstream_path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read() if method != "HEAD" else b""
            out = {}
            for name, value in resp.getheaders():
                if name.lower() in _HOP:
                    if name.lower() == "content-length" and method == "HEAD":
                        out["Content-Length"] = value
                    continue
                out[name] = self._rewrite(name, value)
            return resp.status, out, data
        finally:
            conn.close()

    def _rewrite(self, name: str, value: str) -> str:
        owner = self.owner
        up = owner.upstream
        value = value.replace(f"{up.scheme}://{up.host}", f"http://{owner.host}")
        if name.lower() == "www-authenticate" and owner.token_upstream:
            value = value.replace(owner.token_upstream, f"http://{owner.host}{TOKEN_PREFIX}")
        return value

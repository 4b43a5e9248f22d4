"""A forwarding HTTP proxy on 127.0.0.1 in front of a real (plain) rig registry that injects faults the
registry itself cannot produce: 5xx/429 answers, a 416 after a PATCH was stored, redirects of blob GETs
to another host, a Basic challenge. Everything else is the real registry's answer."""
from __future__ import annotations

import http.server
import threading
from dataclasses import dataclass, field
from typing import Callable

import requests

# rule(method, path, proxy) -> None (forward untouched) or an action
Rule = Callable[[str, str, "FaultProxy"], "Action | None"]


@dataclass
class Action:
    status: int = 0                       # answer this status instead of forwarding
    headers: dict[str, str] = field(default_factory=dict)
    forward_first: bool = False           # forward to the registry, then answer `status` anyway


class FaultProxy:
    def __init__(self, upstream: str, rule: Rule | None = None, hostname: str = "127.0.0.1",
                 require_basic: bool = False):
        self.upstream = upstream          # "http://127.0.0.1:PORT"
        self.rule = rule
        self.require_basic = require_basic
        self.requests: list[tuple[str, str, str | None]] = []   # method, path, Authorization header
        self.session = requests.Session()
        self.session.trust_env = False
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.requests.append((self.command, self.path, self.headers.get("Authorization")))
                if proxy.require_basic and self.path == "/v2/" and not self.headers.get("Authorization"):
                    return self._answer(401, {"WWW-Authenticate": 'Basic realm="proxy"'}, b"")
                action = proxy.rule(self.command, self.path, proxy) if proxy.rule else None
                if action and not action.forward_first:
                    return self._answer(action.status, action.headers, b"")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization")}
                headers["Host"] = proxy.host
                resp = proxy.session.request(self.command, proxy.upstream + self.path, headers=headers, data=body,
                                             allow_redirects=False)
                if action:  # the registry did the work; the client hears `status` (with the new Location)
                    keep = {k: v for k, v in resp.headers.items() if k.lower() == "location"}
                    return self._answer(action.status, {**keep, **action.headers}, b"")
                out = {k: v for k, v in resp.headers.items()
                       if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")}
                self._answer(resp.status_code, out, resp.content if self.command != "HEAD" else b"",
                             length=resp.headers.get("Content-Length") if self.command == "HEAD" else None)

            def _answer(self, status, headers, body, length=None):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", length if length is not None else str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"{hostname}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

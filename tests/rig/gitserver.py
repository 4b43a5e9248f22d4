"""A real git smart-HTTP server for tests: Debian's `git http-backend` behind a small CGI bridge on 127.0.0.1.

* `start_git_server(root, users=..., private=("private/",), pki=None)` -> `GitServer`. Repositories live under
  `root` as `NAME.git` (bare); every one is exported (`GIT_HTTP_EXPORT_ALL`). A repository whose path starts
  with one of `private` needs HTTP basic auth: `users` maps user -> password (a token sent as the user name
  with an empty password, as GitHub takes it, is the entry `TOKEN: ""`); anything else gets 401 with a
  `WWW-Authenticate: Basic` challenge. With `pki` the server speaks HTTPS with the rig's certificate (signed
  by the session CA, which no client trusts unless told).
* Every request is recorded (`GitServer.requests()`): method, path, the user that was let in, status, the
  request body (for `git-upload-pack`: the pkt-lines a client sent, so a test sees its `want` and `deepen`
  lines) and the bytes sent back.
* `SourceRepo` makes repositories with the `git` CLI (commits, branches, tags, submodule gitlinks) and
  publishes them into the server's root.

The bridge runs the CGI once per request (`subprocess.run`), buffering the answer: fine for test-sized
repositories.
"""
from __future__ import annotations

import base64
import binascii
import gzip
import hmac
import logging
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from .tls import TestPKI

log = logging.getLogger(__name__)

REALM = "kiln git rig"
_GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "kiln rig", "GIT_AUTHOR_EMAIL": "rig@kiln.test",
            "GIT_COMMITTER_NAME": "kiln rig", "GIT_COMMITTER_EMAIL": "rig@kiln.test"}


def http_backend() -> str:
    """Path of `git http-backend` (Debian: /usr/lib/git-core/git-http-backend)."""
    exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True, check=True).stdout.strip()
    path = os.path.join(exec_path, "git-http-backend")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is missing: install Debian's git package (scripts/setup.sh does)")
    return path


def pkt_lines(data: bytes) -> list[bytes]:
    """The payloads of a pkt-line stream (flush, delim and response-end packets are left out)."""
    out, i = [], 0
    while i + 4 <= len(data):
        try:
            size = int(data[i:i + 4], 16)
        except ValueError:
            break
        if size < 4:
            i += 4
            continue
        out.append(data[i + 4:i + size])
        i += size
    return out


@dataclass(frozen=True)
class GitRequest:
    method: str
    path: str            # the path without the query, e.g. /private/app.git/git-upload-pack
    query: str
    user: str | None     # the basic-auth user let in (None: a public repository, or refused)
    status: int
    body: bytes          # the request body, un-gzipped
    sent: int            # bytes of the response body
    git_protocol: str    # the Git-Protocol header ("version=2")

    @property
    def lines(self) -> list[bytes]:
        return [line.rstrip(b"\n") for line in pkt_lines(self.body)]

    @property
    def wants(self) -> list[str]:
        """The object ids the client asked for (`want <oid>` lines)."""
        return [line.split()[1].decode() for line in self.lines if line.startswith(b"want ")]

    @property
    def deepen(self) -> int | None:
        """N of a `deepen N` line, None without one."""
        for line in self.lines:
            if line.startswith(b"deepen "):
                return int(line.split()[1])
        return None


@dataclass
class GitServer:
    root: str
    scheme: str
    host: str                                   # 127.0.0.1:PORT
    users: dict[str, str] = field(default_factory=dict)      # user -> password ("" for a token)
    private: tuple[str, ...] = ("private/",)
    ca_path: str | None = None                  # the CA that signed the HTTPS certificate
    _requests: list[GitRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    def url(self, repo: str) -> str:
        """`private/app` -> `http(s)://127.0.0.1:PORT/private/app.git`."""
        return f"{self.scheme}://{self.host}/{repo.removesuffix('.git')}.git"

    def is_private(self, path: str) -> bool:
        return path.lstrip("/").startswith(self.private)

    def requests(self, repo: str | None = None) -> list[GitRequest]:
        """Recorded requests, oldest first; `repo` ("private/app") keeps those of one repository."""
        with self._lock:
            found = list(self._requests)
        if repo is not None:
            prefix = "/" + repo.removesuffix(".git") + ".git/"
            found = [r for r in found if r.path.startswith(prefix)]
        return found

    def fetches(self, repo: str | None = None) -> list[GitRequest]:
        """The `git-upload-pack` POSTs that asked for objects (the ones holding `want` lines)."""
        return [r for r in self.requests(repo)
                if r.method == "POST" and r.path.endswith("/git-upload-pack") and r.wants]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def record(self, request: GitRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def authorize(self, header: str | None) -> str | None:
        """The user of a valid `Authorization: Basic` header, else None."""
        if not header or not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        expected = self.users.get(user)
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            return None
        return user

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


class _Handler(BaseHTTPRequestHandler):
    server_version = "kiln-git-rig/1"
    protocol_version = "HTTP/1.0"        # one request per connection: the answer ends when it is closed

    def setup(self) -> None:
        context = getattr(self.server, "tls_context", None)
        if context is not None:
            self.request = context.wrap_socket(self.request, server_side=True)
        super().setup()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        log.debug("git server: " + format, *args)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        git: GitServer = self.server.git      # type: ignore[attr-defined]
        split = urlsplit(self.path)
        path = unquote(split.path)
        body = self._read_body()
        encoding = self.headers.get("Content-Encoding", "")
        plain_body = gzip.decompress(body) if encoding == "gzip" and body else body
        protocol = self.headers.get("Git-Protocol", "")
        user = None
        if git.is_private(path):
            user = git.authorize(self.headers.get("Authorization"))
            if user is None:
                message = b"authentication required\n"
                self.send_response(401)
                self.send_header("WWW-Authenticate", f'Basic realm="{REALM}"')
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(message)))
                self.end_headers()
                self.wfile.write(message)
                git.record(GitRequest(self.command, path, split.query, None, 401, plain_body, len(message),
                                      protocol))
                return
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": git.root, **_GIT_ENV,
            "GIT_PROJECT_ROOT": git.root, "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_SOFTWARE": self.server_version,
            "REQUEST_METHOD": self.command, "PATH_INFO": path, "QUERY_STRING": split.query,
            "REMOTE_ADDR": self.client_address[0], "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
        }
        if user is not None:
            env["REMOTE_USER"] = user
        if protocol:
            env["HTTP_GIT_PROTOCOL"] = protocol
        if encoding:
            env["HTTP_CONTENT_ENCODING"] = encoding
        proc = subprocess.run([self.server.backend], input=body, env=env,  # type: ignore[attr-defined]
                              capture_output=True)
        head, sep, payload = proc.stdout.partition(b"\r\n\r\n")
        if not sep:
            head, sep, payload = proc.stdout.partition(b"\n\n")
        status, headers = 200, []
        for raw in head.splitlines():
            name, _, value = raw.decode("latin-1").partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        if proc.returncode != 0 and not sep:
            status, headers, payload = 500, [("Content-Type", "text/plain")], proc.stderr
        self.send_response(status)
        for name, value in headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        if proc.stderr:
            log.debug("git http-backend %s %s: %s", self.command, path, proc.stderr.decode(errors="replace"))
        git.record(GitRequest(self.command, path, split.query, user, status, plain_body, len(payload), protocol))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001 - socketserver's signature
        log.debug("git server: a connection from %s failed", client_address, exc_info=True)


@dataclass(frozen=True)
class GitUsers:
    """Credentials a rig git server takes: a user with a password, and a token (sent as the user name with an
    empty password, as GitHub takes a personal access token). Random per session, so a test can search logs
    and images for them."""

    username: str
    password: str
    token: str

    @classmethod
    def random(cls) -> "GitUsers":
        return cls(f"kiln-{secrets.token_hex(3)}", f"pw-{secrets.token_urlsafe(12)}", f"tok_{secrets.token_hex(16)}")

    def as_users(self) -> dict[str, str]:
        return {self.username: self.password, self.token: ""}


def start_git_server(root: str, *, users: dict[str, str] | None = None, private: tuple[str, ...] = ("private/",),
                     pki: TestPKI | None = None) -> GitServer:
    """A running server on 127.0.0.1 (a free port) serving the bare repositories under `root`."""
    os.makedirs(root, exist_ok=True)
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.backend = http_backend()          # type: ignore[attr-defined]
    httpd.tls_context = None                # type: ignore[attr-defined]
    if pki is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.server_cert, pki.server_key)
        httpd.tls_context = context         # type: ignore[attr-defined]
    server = GitServer(root=root, scheme="https" if pki else "http", host=f"127.0.0.1:{httpd.server_address[1]}",
                       users=dict(users or {}), private=private, ca_path=pki.ca_cert if pki else None,
                       _httpd=httpd)
    httpd.git = server                      # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, name=f"git-server-{server.host}", daemon=True).start()
    log.info("git server on %s://%s serving %s", server.scheme, server.host, root)
    return server


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (for unreachable-server tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SourceRepo:
    """A repository made with the `git` CLI in a work tree, published as `SERVER_ROOT/NAME.git`.

    Commit times are fixed (2024-01-01 plus one second per commit) so object ids do not depend on the clock.
    """

    def __init__(self, server_root: str, name: str, workdir: str, branch: str = "main"):
        self.name = name.removesuffix(".git")
        self.work = os.path.join(workdir, self.name.replace("/", "_"))
        self.bare = os.path.join(server_root, self.name + ".git")
        self._tick = 0
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        self.git("init", "-q", "-b", branch)
        self.git("config", "core.autocrlf", "false")

    def git(self, *args: str, cwd: str | None = None) -> str:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.work, **_GIT_ENV,
               "GIT_AUTHOR_DATE": f"{1704067200 + self._tick} +0000",
               "GIT_COMMITTER_DATE": f"{1704067200 + self._tick} +0000"}
        proc = subprocess.run(["git", *args], cwd=cwd or self.work, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} in {cwd or self.work} failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def commit(self, files: dict[str, str | bytes | None], message: str = "change") -> str:
        """Write (or, for None, delete) files, commit everything, return the commit id."""
        for name, content in files.items():
            path = os.path.join(self.work, name)
            if content is None:
                self.git("rm", "-q", "-r", "--cached", "--ignore-unmatch", name)
                if os.path.isdir(path):
                    shutil.rmtree(path)
                elif os.path.lexists(path):
                    os.unlink(path)
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content.encode() if isinstance(content, str) else content)
        self.git("add", "-A")
        self._tick += 1
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def branch(self, name: str, start: str = "HEAD") -> None:
        self.git("branch", "-f", name, start)

    def checkout(self, name: str) -> None:
        self.git("checkout", "-q", name)

    def tag(self, name: str, target: str = "HEAD", message: str | None = None) -> None:
        self.git("tag", *(["-a", "-m", message] if message else []), name, target)

    def ref(self, name: str, target: str = "HEAD") -> None:
        """A ref outside refs/heads and refs/tags (refs/pull/1/head, refs/changes/...)."""
        self.git("update-ref", name, target)

    def submodule(self, path: str, url: str, commit: str, name: str | None = None) -> None:
        """Record a submodule: a gitlink at `path` pointing at `commit`, and its `.gitmodules` entry (commit
        afterwards)."""
        name = name or path
        os.makedirs(os.path.join(self.work, path), exist_ok=True)   # an empty directory: not checked out
        self.git("config", "-f", ".gitmodules", f"submodule.{name}.path", path)
        self.git("config", "-f", ".gitmodules", f"submodule.{name}.url", url)
        self.git("update-index", "--add", "--cacheinfo", f"160000,{commit},{path}")
        self.git("add", ".gitmodules")

    def publish(self) -> str:
        """Mirror every ref into the server's bare repository (made on first use); returns its path."""
        if not os.path.isdir(self.bare):
            os.makedirs(self.bare)
            self.git("init", "-q", "--bare", "-b", self.git("symbolic-ref", "--short", "HEAD"), self.bare)
        self.git("push", "-q", "--force", "--mirror", self.bare)
        return self.bare

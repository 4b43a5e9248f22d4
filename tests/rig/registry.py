"""Real registries for tests: Debian's ``docker-registry`` (distribution 2.8) on 127.0.0.1.

Three flavours:
  * ``plain``  HTTP, no auth.
  * ``basic``  HTTPS (our own CA) + htpasswd basic auth.
  * ``token``  HTTPS + bearer tokens from :mod:`tests.rig.tokenserver` (anonymous pull except
               ``private/...``; pushes and private pulls need credentials).
"""
from __future__ import annotations

import base64
import ctypes
import ctypes.util
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import yaml

from .tls import TestPKI

log = logging.getLogger(__name__)

FLAVOURS = ("plain", "basic", "token")
TOKEN_SERVICE = "kiln-test-registry"
TOKEN_ISSUER = "kiln-test-token-server"
_TOKENSERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tokenserver.py")


@dataclass
class Registry:
    flavour: str               # "plain" | "basic" | "token"
    host: str                  # "127.0.0.1:PORT"
    scheme: str                # "http" | "https"
    ca_path: str | None        # PEM of the self-signed CA (TLS flavours)
    username: str | None       # valid credentials (None for plain)
    password: str | None
    docker_config_dir: str     # a dir holding config.json with this registry's credentials ("auths")
    log_path: str              # the registry's own log (tests grep it, e.g. for cross-repo mounts)
    token_log_path: str | None  # token server's request log (token flavour)
    cert_dir: str | None = None        # a dir holding only ca.crt (containers' --cert-dir layout)
    token_realm: str | None = None     # the token server's URL (token flavour)
    storage_dir: str = ""              # the registry's filesystem storage root

    def url(self, path: str = "") -> str:
        return f"{self.scheme}://{self.host}{path}"

    def ref(self, repo_tag: str) -> str:
        """``"app:1"`` -> ``"127.0.0.1:PORT/app:1"``."""
        return f"{self.host}/{repo_tag}"

    def skopeo_args(self, prefix: str = "dest", anonymous: bool = False) -> list[str]:
        """TLS and credential flags for skopeo; prefix "src"/"dest" for copy, "" for inspect."""
        p = f"--{prefix}-" if prefix else "--"
        if self.scheme == "http":
            args = [f"{p}tls-verify=false"]
        else:
            args = [f"{p}tls-verify=true", f"{p}cert-dir={self.cert_dir}"]
        if self.username and not anonymous:
            args.append(f"{p}creds={self.username}:{self.password}")
        else:
            args.append(f"{p}no-creds")
        return args

    def token_log(self) -> list[dict]:
        """The token server's request log, one dict per request (token flavour)."""
        if not self.token_log_path or not os.path.exists(self.token_log_path):
            return []
        with open(self.token_log_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def read_log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()


@dataclass
class RunningRegistry:
    registry: Registry
    processes: list[subprocess.Popen] = field(default_factory=list)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            stop_process(proc)


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Stop one process we started, by its PID: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the test session dies without tearing down."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, what: str, log_path: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening on "
                               f"127.0.0.1:{port}; see {log_path}:\n{_tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.005)
    stop_process(proc)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s; see {log_path}")


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _htpasswd(path: str, username: str, password: str) -> None:
    proc = subprocess.run(["htpasswd", "-Bbn", username, password], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"htpasswd -Bbn failed: {proc.stderr.strip()}")
    with open(path, "w") as f:
        f.write(proc.stdout.strip() + "\n")


def _write_docker_config(directory: str, host: str, username: str | None, password: str | None) -> None:
    os.makedirs(directory, exist_ok=True)
    auths: dict[str, dict] = {}
    if username:
        auths[host] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump({"auths": auths}, f, indent=2)


def _start_token_server(workdir: str, pki: TestPKI, username: str, password: str,
                        expires_in: int, extra_users: dict[str, str] | None = None,
                        refresh_tokens: dict[str, str] | None = None) -> tuple[subprocess.Popen, str, str]:
    token_log = os.path.join(workdir, "token-requests.jsonl")
    stderr_log = os.path.join(workdir, "tokenserver.log")
    config_path = os.path.join(workdir, "tokenserver.json")
    with open(config_path, "w") as f:
        json.dump({"tls_cert": pki.server_cert, "tls_key": pki.server_key,
                   "signing_cert": pki.token_cert, "signing_key": pki.token_key,
                   "service": TOKEN_SERVICE, "issuer": TOKEN_ISSUER,
                   "users": {**(extra_users or {}), username: password}, "refresh_tokens": refresh_tokens or {},
                   "log_path": token_log, "expires_in": expires_in}, f)
    open(token_log, "w").close()
    with open(stderr_log, "wb") as err:
        proc = subprocess.Popen([sys.executable, _TOKENSERVER, config_path], stdout=subprocess.PIPE,
                                stderr=err, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    line = proc.stdout.readline().decode().strip() if proc.stdout else ""
    if not line.isdigit():
        stop_process(proc)
        raise RuntimeError(f"token server did not report its port; see {stderr_log}:\n{_tail(stderr_log)}")
    return proc, f"https://127.0.0.1:{line}/token", token_log


def start_registry(flavour: str, workdir: str, pki: TestPKI | None = None, username: str = "kiln",
                   password: str | None = None, token_expires_in: int = 300,
                   extra_users: dict[str, str] | None = None,
                   refresh_tokens: dict[str, str] | None = None) -> RunningRegistry:
    """Start one registry of ``flavour`` with all its state under ``workdir``; caller stops it.

    Token flavour: ``extra_users`` (account -> password) are accepted besides ``username``, ``refresh_tokens``
    (token -> account) as if the token server had issued them (the cloud stand-ins' credentials)."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown registry flavour {flavour!r}; expected one of {FLAVOURS}")
    if flavour != "plain" and pki is None:
        raise ValueError(f"the {flavour} registry needs a TestPKI (tests.rig.tls.make_pki)")
    os.makedirs(workdir, exist_ok=True)
    storage = os.path.join(workdir, "storage")
    os.makedirs(storage, exist_ok=True)
    log_path = os.path.join(workdir, "registry.log")
    processes: list[subprocess.Popen] = []
    user = pwd = None
    token_log = token_realm = None
    config: dict = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": storage}, "delete": {"enabled": True},
                    "maintenance": {"uploadpurging": {"enabled": False}}},
        "http": {"secret": secrets.token_hex(16), "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }
    if flavour != "plain":
        assert pki is not None
        user, pwd = username, password or f"pw-{secrets.token_hex(6)}"
        config["http"]["tls"] = {"certificate": pki.server_cert, "key": pki.server_key}
    if flavour == "basic":
        htpasswd = os.path.join(workdir, "htpasswd")
        _htpasswd(htpasswd, user, pwd)  # type: ignore[arg-type]
        config["auth"] = {"htpasswd": {"realm": "kiln-test-registry", "path": htpasswd}}
    elif flavour == "token":
        assert pki is not None
        proc, token_realm, token_log = _start_token_server(workdir, pki, user, pwd,  # type: ignore[arg-type]
                                                           token_expires_in, extra_users, refresh_tokens)
        processes.append(proc)
        config["auth"] = {"token": {"realm": token_realm, "service": TOKEN_SERVICE,
                                    "issuer": TOKEN_ISSUER, "rootcertbundle": pki.ca_cert}}
    last_error: Exception | None = None
    for _attempt in range(3):   # a free port may be taken between probe and bind: retry
        port = free_port()
        config["http"]["addr"] = f"127.0.0.1:{port}"
        config_path = os.path.join(workdir, "config.yml")
        with open(config_path, "w") as f:
            yaml.safe_dump(config, f)
        with open(log_path, "ab") as logf:
            proc = subprocess.Popen(["docker-registry", "serve", config_path], stdout=logf,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    preexec_fn=_die_with_parent)
        try:
            _wait_listening(port, proc, f"docker-registry ({flavour})", log_path)
        except RuntimeError as e:
            last_error = e
            continue
        processes.append(proc)
        host = f"127.0.0.1:{port}"
        docker_config_dir = os.path.join(workdir, "docker-config")
        _write_docker_config(docker_config_dir, host, user, pwd)
        registry = Registry(
            flavour=flavour, host=host, scheme="http" if flavour == "plain" else "https",
            ca_path=pki.ca_cert if pki and flavour != "plain" else None, username=user, password=pwd,
            docker_config_dir=docker_config_dir, log_path=log_path, token_log_path=token_log,
            cert_dir=pki.cert_dir if pki and flavour != "plain" else None, token_realm=token_realm,
            storage_dir=storage)
        log.info("%s registry on %s (pid %d), log %s", flavour, host, proc.pid, log_path)
        return RunningRegistry(registry=registry, processes=processes)
    for proc in reversed(processes):
        stop_process(proc)
    raise RuntimeError(f"could not start the {flavour} registry: {last_error}")

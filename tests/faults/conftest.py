"""Fixtures of the fault suite: a fault proxy per test in front of the rig's registries, registry clients
with a fast retry policy, fresh images (a random layer on busybox) and kiln runs through the sandbox."""
from __future__ import annotations

import base64
import gzip
import io
import json
import os
import secrets
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from executor.image import Image, Layer
from executor.image.config import HistoryEntry
from executor.registry import RegistryClient, RegistryOptions
from tests.faults.proxy import FaultProxy, Upstream
from tests.rig.registry import Registry

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SANDBOX = os.path.join(REPO, "tests", "rig", "sandbox.py")


@pytest.fixture
def plain_proxy(plain_registry: Registry) -> Iterator[FaultProxy]:
    proxy = FaultProxy(Upstream("http", plain_registry.host)).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def token_proxy(token_registry: Registry, tmp_path) -> Iterator[FaultProxy]:
    proxy = FaultProxy(Upstream("https", token_registry.host, token_registry.ca_path),
                       token_upstream=token_registry.token_realm).start()
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    auth = base64.b64encode(f"{token_registry.username}:{token_registry.password}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {proxy.host: {"auth": auth}}}))
    proxy.docker_config_dir = str(config_dir)  # type: ignore[attr-defined]
    yield proxy
    proxy.stop()


def fast_options(proxy: FaultProxy, **overrides) -> RegistryOptions:
    """Options for a client of the proxy: plain HTTP allowed, short backoff and timeouts."""
    values = dict(insecure_registries=[proxy.host], retry_backoff=0.05, retry_backoff_max=2.0,
                  transport_retries=3, connect_timeout=2.0, timeout=5.0,
                  docker_config_dir=getattr(proxy, "docker_config_dir", None))
    values.update(overrides)
    return RegistryOptions(**values)


@pytest.fixture
def make_client(tmp_path) -> Iterator[Callable[..., RegistryClient]]:
    clients: list[RegistryClient] = []

    def make(proxy: FaultProxy, **overrides) -> RegistryClient:
        blob_dir = tmp_path / f"blobs-{len(clients)}"
        client = RegistryClient(fast_options(proxy, **overrides), blob_dir=str(blob_dir))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def random_layer(directory: str, size: int = 256 << 10) -> Layer:
    """A gzip layer holding one file of random bytes (never in any registry before)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = secrets.token_bytes(size)
        info = tarfile.TarInfo("random.bin")
        info.size, info.mtime, info.mode = len(data), 1704067200, 0o644
        tar.addfile(info, io.BytesIO(data))
    path = os.path.join(directory, f"layer-{secrets.token_hex(4)}.tar.gz")
    with open(path, "wb") as f:
        f.write(gzip.compress(raw.getvalue(), mtime=0))
    return Layer.from_file(path)


@pytest.fixture
def fresh_image(base_images, plain_registry: Registry, tmp_path) -> Callable[[], Image]:
    """busybox amd64 (pulled straight from the plain registry) plus a new random layer."""
    def make() -> Image:
        client = RegistryClient(RegistryOptions(insecure_registries=[plain_registry.host]),
                                blob_dir=str(tmp_path / "base-blobs"))
        image = client.pull(base_images.busybox_amd64, fetch_layers=True)
        client.close()
        image = image.copy()
        image.raw_manifest = None
        image.append_layer(random_layer(str(tmp_path)), HistoryEntry(created_by="fault suite: random layer"))
        return image
    return make


def kiln_argv(context: str, root: str, kaniko_dir: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "executor", "--context", context, "--root", root, "--kaniko-dir", kaniko_dir,
            "--log-format", "text", *args]


def kiln_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_REGISTRY", "DOCKER_CONFIG"))}
    env["PYTHONPATH"] = REPO
    env.update(extra or {})
    return env


class Running:
    """kiln started in the sandbox as PID 1 of a fresh PID namespace (as in a container), not waited for.

    ``unshare --kill-child`` SIGKILLs the namespace's PID 1, and so every process in it, when unshare dies;
    ``signal()`` sends a signal to kiln itself (PID 1 inside), found as unshare's child.
    """

    def __init__(self, argv: list[str], writable: list[str], env: dict[str, str]):
        config = json.dumps({"writable": [os.path.realpath(p) for p in writable], "cwd": REPO})
        cmd = ["unshare", "--mount", "--propagation", "private", "--pid", "--mount-proc", "--kill-child", "--",
               sys.executable, SANDBOX, config, "--", *argv]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     errors="replace", start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"kiln ended ({self.proc.returncode}) before {what}:\n{self.output[-4000:]}")
            time.sleep(0.05)
        raise AssertionError(f"no {what} within {timeout}s:\n{self.output[-4000:]}")

    def saw(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def kiln_pid(self) -> int:
        """kiln's host pid: unshare's child (retried briefly while unshare forks)."""
        for _ in range(100):
            try:
                with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                    children = f.read().split()
            except FileNotFoundError:
                children = []
            if children:
                return int(children[0])
            time.sleep(0.05)
        raise AssertionError("kiln's process not found under unshare")

    def signal(self, signum: int) -> None:
        if signum == signal.SIGKILL:
            os.kill(self.proc.pid, signal.SIGKILL)   # unshare dies; --kill-child takes the namespace with it
        else:
            os.kill(self.kiln_pid(), signum)

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._reader.join(5)
        return code

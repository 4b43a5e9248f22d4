"""A private dockerd for the parity suite: started by hand on a unix socket, stopped by PID."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass

log = logging.getLogger("kiln.parity.dockerd")

DOCKER = "/usr/bin/docker"     # /usr/local/bin/docker is a client without BuildKit


@dataclass
class Dockerd:
    workdir: str
    socket: str
    proc: subprocess.Popen
    storage_driver: str

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def docker(self, *args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
        env = {**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_CONFIG": os.path.join(self.workdir, "client")}
        return subprocess.run([DOCKER, "-H", self.host, *args], capture_output=True, text=True, env=env,
                              timeout=timeout, **kwargs)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        _unmount_below(self.workdir)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _unmount_below(path: str) -> None:
    """Whatever dockerd left mounted under its directories (normally nothing after a clean stop)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(path + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _start(workdir: str, driver: str) -> Dockerd:
    for sub in ("data", "exec", "client"):
        os.makedirs(os.path.join(workdir, sub), exist_ok=True)
    config = os.path.join(workdir, "daemon.json")
    with open(config, "w") as f:
        json.dump({}, f)        # no config from /etc
    socket = os.path.join(workdir, "docker.sock")
    logf = open(os.path.join(workdir, "dockerd.log"), "wb")
    proc = subprocess.Popen(
        ["dockerd", "--host", f"unix://{socket}", "--data-root", os.path.join(workdir, "data"),
         "--exec-root", os.path.join(workdir, "exec"), "--pidfile", os.path.join(workdir, "dockerd.pid"),
         "--config-file", config, "--iptables=false", "--ip-masq=false", "--bridge=none",
         "--storage-driver", driver],
        stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    logf.close()
    daemon = Dockerd(workdir, socket, proc, driver)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if os.path.exists(socket) and daemon.docker("version", timeout=10).returncode == 0:
            return daemon
        time.sleep(0.2)
    daemon.stop()
    with open(os.path.join(workdir, "dockerd.log"), errors="replace") as f:
        tail = f.read()[-3000:]
    raise RuntimeError(f"dockerd ({driver}) did not come up:\n{tail}")


def start_dockerd() -> Dockerd:
    """dockerd with overlay2, or vfs when overlay2 cannot start; data under /tmp."""
    last: Exception | None = None
    for driver in ("overlay2", "vfs"):
        workdir = tempfile.mkdtemp(prefix="kiln-parity-dockerd-", dir="/tmp")
        try:
            daemon = _start(workdir, driver)
        except RuntimeError as e:
            log.warning("%s", e)
            last = e
            continue
        info = json.loads(daemon.docker("info", "--format", "{{json .RegistryConfig}}").stdout or "{}")
        cidrs = info.get("InsecureRegistryCIDRs") or []
        if "127.0.0.0/8" not in [c if isinstance(c, str) else f"{c.get('IP')}/{c.get('Mask')}" for c in cidrs]:
            log.warning("dockerd does not list 127.0.0.0/8 as insecure: %s", cidrs)
        log.info("dockerd %s up on %s (pid %d)", driver, daemon.socket, daemon.proc.pid)
        return daemon
    raise RuntimeError(f"dockerd could not start: {last}")

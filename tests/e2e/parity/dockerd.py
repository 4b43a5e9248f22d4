"""A private dockerd for the parity suite: Debian's docker unpacked by scripts/docker-reference.sh (Debian 13's
docker.io 26.1.5 + docker-buildx 0.13.1 unless KILN_PARITY_DOCKER names another unpacked root, e.g.
/opt/kiln-docker/sid), started by hand on a unix socket with its own data-root and exec-root, stopped by PID.
It uses the machine's containerd and runc."""
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

DEFAULT_ROOT = "/opt/kiln-docker/trixie"
DOCKERD = "usr/sbin/dockerd"
DOCKER = "usr/bin/docker"
PLUGINS = "usr/libexec/docker/cli-plugins"      # docker-buildx: `docker build` goes through it


def reference_root() -> str:
    """The unpacked docker the suite compares with (scripts/docker-reference.sh made it)."""
    root = os.environ.get("KILN_PARITY_DOCKER") or DEFAULT_ROOT
    missing = [p for p in (DOCKERD, DOCKER, os.path.join(PLUGINS, "docker-buildx"))
               if not os.access(os.path.join(root, p), os.X_OK)]
    if missing:
        raise RuntimeError(f"the parity suite's docker is not unpacked in {root} (missing {', '.join(missing)}): "
                           "run `bash scripts/setup.sh` (or `bash scripts/docker-reference.sh SUITE`)")
    return root


@dataclass
class Dockerd:
    workdir: str
    socket: str
    proc: subprocess.Popen
    storage_driver: str
    root: str               # the unpacked docker (usr/sbin/dockerd, usr/bin/docker, the buildx plugin)
    version: str = ""       # the engine's version, e.g. "26.1.5+dfsg1"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def docker(self, *args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
        env = {**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_CONFIG": os.path.join(self.workdir, "client")}
        return subprocess.run([os.path.join(self.root, DOCKER), "-H", self.host, *args], capture_output=True, text=True, env=env,
                              timeout=timeout, **kwargs)

    def stop(self) -> None:
        if self.proc.poll() is not None:     # it died during the session: say why before its log goes
            try:
                with open(os.path.join(self.workdir, "dockerd.log"), errors="replace") as f:
                    tail = f.read()[-4000:]
            except OSError:
                tail = "(no log)"
            log.error("dockerd %s exited with status %s during the session:\n%s", self.version,
                      self.proc.returncode, tail)
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


def _start(workdir: str, driver: str, root: str) -> Dockerd:
    for sub in ("data", "exec", "client"):
        os.makedirs(os.path.join(workdir, sub), exist_ok=True)
    config = os.path.join(workdir, "daemon.json")
    with open(config, "w") as f:
        json.dump({}, f)        # no config from /etc
    with open(os.path.join(workdir, "client", "config.json"), "w") as f:
        json.dump({"cliPluginsExtraDirs": [os.path.join(root, PLUGINS)]}, f)
    env = {**os.environ, "PATH": f"{os.path.join(root, 'usr/sbin')}:{os.path.join(root, 'usr/bin')}:"
                                 f"{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}
    socket = os.path.join(workdir, "docker.sock")
    logf = open(os.path.join(workdir, "dockerd.log"), "wb")
    proc = subprocess.Popen(
        [os.path.join(root, DOCKERD), "--host", f"unix://{socket}", "--data-root", os.path.join(workdir, "data"),
         "--exec-root", os.path.join(workdir, "exec"), "--pidfile", os.path.join(workdir, "dockerd.pid"),
         "--config-file", config, "--iptables=false", "--ip-masq=false", "--bridge=none",
         "--storage-driver", driver],
        stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    logf.close()
    daemon = Dockerd(workdir, socket, proc, driver, root)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if os.path.exists(socket):
            probe = daemon.docker("version", "--format", "{{.Server.Version}}", timeout=10)
            if probe.returncode == 0:
                daemon.version = probe.stdout.strip()
                return daemon
        time.sleep(0.2)
    daemon.stop()
    with open(os.path.join(workdir, "dockerd.log"), errors="replace") as f:
        tail = f.read()[-3000:]
    raise RuntimeError(f"dockerd ({driver}) did not come up:\n{tail}")


def start_dockerd(root: str | None = None) -> Dockerd:
    """dockerd with overlay2, or vfs when overlay2 cannot start; data under /tmp."""
    root = root or reference_root()
    last: Exception | None = None
    for driver in ("overlay2", "vfs"):
        workdir = tempfile.mkdtemp(prefix="kiln-parity-dockerd-", dir="/tmp")
        try:
            daemon = _start(workdir, driver, root)
        except RuntimeError as e:
            log.warning("%s", e)
            last = e
            continue
        info = json.loads(daemon.docker("info", "--format", "{{json .RegistryConfig}}").stdout or "{}")
        cidrs = info.get("InsecureRegistryCIDRs") or []
        if "127.0.0.0/8" not in [c if isinstance(c, str) else f"{c.get('IP')}/{c.get('Mask')}" for c in cidrs]:
            log.warning("dockerd does not list 127.0.0.0/8 as insecure: %s", cidrs)
        buildx = daemon.docker("buildx", "version")
        if buildx.returncode != 0:
            daemon.stop()
            raise RuntimeError(f"the buildx plugin of {root} does not run: {buildx.stderr.strip()}")
        log.info("dockerd %s (%s, %s) up on %s (pid %d)", daemon.version, buildx.stdout.strip(), driver,
                 daemon.socket, daemon.proc.pid)
        return daemon
    raise RuntimeError(f"dockerd could not start: {last}")

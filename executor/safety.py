"""Refuse to build on `/` outside a container.

Building on root `/` extracts the base image over this machine's files and later wipes everything
that is not on the ignore list. That is what kiln is for inside a throwaway container, and a
disaster on a workstation. So, like kaniko's `checkContained`, the executor looks for signs of a
container and refuses unless it finds one or `--force` is given. A `--root` other than `/` is
always allowed: nothing outside that directory is touched.

Every input is a parameter (where the marker files are looked up, the PID, the environment), so
the check is testable anywhere. `main` reads the lookup prefix from `KILN_CONTAINER_PROBE_ROOT`
(default `/`), which exists for tests: pointing it at an empty directory makes a container look
like a bare host. It can only hide markers or show fake ones, which is no more than `--force`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "PROBE_ROOT_ENV",
    "UnsafeRootError",
    "Verdict",
    "check_root",
    "container_evidence",
    "is_host_root",
]

log = logging.getLogger(__name__)

PROBE_ROOT_ENV = "KILN_CONTAINER_PROBE_ROOT"

# files whose mere presence says "container"
_MARKER_FILES = (
    (".dockerenv", "/.dockerenv exists (Docker)"),
    ("run/.containerenv", "/run/.containerenv exists (Podman)"),
    ("var/run/secrets/kubernetes.io/serviceaccount", "a Kubernetes service account is mounted"),
    ("__runsc_containers__", "/__runsc_containers__ exists (gVisor)"),
)
# cgroup paths naming a container runtime
_RUNTIME_WORDS = re.compile(r"docker|kubepods|containerd|libpod|podman|lxc|crio|cri-o|garden|kube|machine\.slice/libpod")
_CGROUP_FILES = ("proc/1/cgroup", "proc/self/cgroup")


class UnsafeRootError(Exception):
    """Building on `/` was refused; the message says why and what to do."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of `check_root`: `contained` is the evidence found (None when none was)."""

    root: str
    host_root: bool
    contained: str | None
    forced: bool


def _read(path: str, limit: int = 1 << 16) -> str:
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            return fh.read(limit)
    except OSError:
        return ""


def container_evidence(probe_root: str = "/", pid: int | None = None,
                       env: Mapping[str, str] | None = None) -> str | None:
    """Why this process looks like it runs in a container, or None when nothing says so.

    `probe_root` is prepended to the marker paths (/.dockerenv, /run/.containerenv, the k8s
    service account, /proc/1/cgroup, /proc/self/cgroup, /run/systemd/container, /proc/mounts).
    """
    pid = os.getpid() if pid is None else pid
    env = os.environ if env is None else env

    def at(rel: str) -> str:
        return os.path.join(probe_root, rel)

    if pid == 1:
        return "kiln is PID 1"
    for rel, why in _MARKER_FILES:
        if os.path.lexists(at(rel)):
            return why
    for rel in _CGROUP_FILES:
        text = _read(at(rel))
        match = _RUNTIME_WORDS.search(text)
        if match:
            return f"/{rel} names a container runtime ({match.group(0)})"
    runtime = _read(at("run/systemd/container")).strip()
    if runtime:
        return f"/run/systemd/container says {runtime!r}"
    if env.get("KUBERNETES_SERVICE_HOST"):
        return "KUBERNETES_SERVICE_HOST is set"
    if env.get("container"):
        return f"the container environment variable is {env['container']!r}"
    if os.path.exists(at("proc/vz")) and not os.path.exists(at("proc/bc")):
        return "/proc/vz without /proc/bc (OpenVZ)"
    if re.search(r"^\S+ / overlay ", _read(at("proc/mounts"), 1 << 20), re.MULTILINE):
        return "/ is an overlay mount"
    return None


def is_host_root(root: str) -> bool:
    """Whether `root` is this machine's `/` (after symlinks, `//`, `/.`, `..`)."""
    try:
        real = os.path.realpath(root)
    except (OSError, ValueError):
        real = os.path.normpath(root)
    if real == "/":
        return True
    try:
        return os.path.samefile(real, "/")
    except OSError:
        return False


def check_root(root: str, force: bool, *, probe_root: str = "/", pid: int | None = None,
               env: Mapping[str, str] | None = None) -> Verdict:
    """Allow the build, or raise UnsafeRootError.

    Allowed when the root is not `/`, when a container is detected, or when `force` is set
    (then a warning is logged).
    """
    host_root = is_host_root(root)
    if not host_root:
        return Verdict(root=root, host_root=False, contained=None, forced=force)
    evidence = container_evidence(probe_root, pid, env)
    if evidence:
        log.debug("Building on / inside a container: %s", evidence)
        return Verdict(root=root, host_root=True, contained=evidence, forced=force)
    if force:
        log.warning("kiln is being run outside of a container with --root /. This can have dangerous effects "
                    "on your system: the base image is extracted over it and other files are deleted.")
        return Verdict(root=root, host_root=True, contained=None, forced=True)
    raise UnsafeRootError(
        "refusing to build on / : kiln does not appear to run inside a container (not PID 1, no /.dockerenv, "
        "no /run/.containerenv, no container cgroup in /proc/1/cgroup, no KUBERNETES_SERVICE_HOST or "
        "container environment variable). Building on / extracts the base image over this machine's files "
        "and deletes the rest. Run kiln in a container, or pass --root DIR with an empty scratch directory to "
        "build there, or --force if you are sure you want to continue."
    )

"""kiln in its own container: what a build on `/` needs of it, checked before anything is fetched, and how kiln
keeps the build's RUN steps away from itself.

A build on `/` unpacks base images over the container's root file system and runs RUN steps in it, as the
container's root: the container must run as uid 0 (``runAsUser: 0``; with ``hostUsers: false`` that uid is an
unprivileged one on the node) and its root file system must be writable (``readOnlyRootFilesystem: false``;
no volume can stand in for `/`). Either refusal is one line saying what to change, not an error deep in the
first extraction.

kiln is PID 1 of that container and holds what a RUN must not have: registry credentials in memory and in its
environment (GitLab's CI_REGISTRY_PASSWORD), the open files of its work. A RUN runs as the same root with the
same capabilities, so the kernel would let it ptrace kiln, read /proc/1/mem and /proc/1/environ and open
files through /proc/1/fd and /proc/1/root. ``guard_kiln_process`` makes kiln non-dumpable
(prctl PR_SET_DUMPABLE 0): each of those then takes CAP_SYS_PTRACE, which the container does not have.
"""
from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4


class ContainerError(Exception):
    """kiln's container cannot hold a build on `/`; the message says which setting to change."""


def check_build_container(root: str, kiln_dir: str) -> None:
    """Raise ContainerError when a build on `root` (the container's `/`) cannot work in this container."""
    if os.path.realpath(root) != "/":
        return
    euid = os.geteuid()
    if euid != 0:
        raise ContainerError(
            f"kiln runs as uid {euid}, but a build on / unpacks images over the container's files and runs RUN "
            "steps as their users: run the container as root (securityContext runAsUser: 0, runAsNonRoot: false; "
            "with hostUsers: false that root is an unprivileged uid on the node)")
    try:
        read_only = bool(os.statvfs("/").f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise ContainerError(
            "the container's root file system is read-only (readOnlyRootFilesystem: true): a build on / unpacks "
            f"the base image over it and snapshots it, and no volume can stand in for /. Set "
            f"readOnlyRootFilesystem: false (kiln's own files under {kiln_dir} stay in that root too)")


def guard_kiln_process() -> bool:
    """Make this process non-dumpable, so a RUN (same uid, same capabilities) cannot ptrace it or read its memory,
    environment, open files or root through /proc/1. True when it took effect."""
    libc = ctypes.CDLL(None, use_errno=True)
    zero = ctypes.c_ulong(0)
    if libc.prctl(ctypes.c_int(PR_SET_DUMPABLE), zero, zero, zero, zero) != 0:
        log.warning("cannot make kiln non-dumpable (prctl: %s): RUN steps could ptrace it",
                    os.strerror(ctypes.get_errno()))
        return False
    log.debug("kiln is not dumpable: RUN steps cannot ptrace it or read /proc/%d/{mem,environ,fd,root}", os.getpid())
    return True

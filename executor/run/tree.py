"""Finding and signalling the processes a RUN command left behind."""

from __future__ import annotations

import logging
import os
import signal

from executor.run import pid1

log = logging.getLogger(__name__)


def pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def pids_in_namespace_of(pid: int) -> list[int]:
    """Every process in the PID namespace whose init is ``pid`` (seen from outside)."""
    ns = pid_namespace(pid)
    if ns is None or ns == pid_namespace(os.getpid()):
        return []
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and pid_namespace(int(entry)) == ns:
            found.append(int(entry))
    return found


def kill(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def killpg(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def group_members(pgid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = pid1._stat_fields(int(entry))
            if fields and fields[2] == pgid and fields[0] != "Z":
                found.append(int(entry))
    return found


def stragglers(known: set[int]) -> list[int]:
    """Children of this process (adopted orphans included) that are not in ``known``."""
    return [pid for pid in pid1.child_pids() if pid not in known]


def reap(pid: int) -> None:
    """Collect an adopted straggler's status (it may already be reaped by pid1's handler)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)

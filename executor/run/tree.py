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
            fields = pid1.stat_fields(int(entry))
            if fields and fields[2] == pgid and fields[0] != "Z":
                found.append(int(entry))
    return found


def stragglers(known: set[int]) -> list[int]:
    """Orphans of a RUN re-parented to this process: children not in ``known`` (those existing
    before the RUN), not registered with ``pid1.protect``, and not in our own process group (a
    child kiln itself started meanwhile, e.g. a credential helper, stays in it; a RUN's processes
    never are: the command starts in its own group)."""
    own_group = os.getpgrp()
    found = []
    for pid in pid1.child_pids():
        if pid in known or pid1.is_protected(pid):
            continue
        fields = pid1.stat_fields(pid)
        if fields and fields[2] == own_group:
            continue
        found.append(pid)
    return found


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

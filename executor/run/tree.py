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
    except ProcessLookupError:
        return False
    except PermissionError:
        return kill_as_owner(pid, sig)


def killpg(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:   # every member runs as another user: one by one, each as its owner
        return any([kill_as_owner(pid, sig) for pid in group_members(pgid)])


def real_uid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def kill_as_owner(pid: int, sig: int) -> bool:
    """Signal a process of another user without CAP_KILL.

    kill(2) lets a sender whose real or effective uid is the target's real or saved uid signal it; any
    other target takes CAP_KILL. kiln is root with CAP_SETUID (a RUN as the Dockerfile's USER needs it
    anyway), so a forked child of kiln takes the target's uid and sends the signal: the container needs no
    CAP_KILL to end what a RUN as another user left running, or to stop it on SIGTERM. The child only makes
    system calls (setresuid, kill, _exit): nothing of the parent's threads' state is touched after fork."""
    uid = real_uid(pid)
    if uid is None or uid == os.geteuid():
        return False
    with pid1.spawn_guard():      # not reaped by the PID 1 reaper before we wait for it
        child = os.fork()
        if child == 0:
            code = 1
            try:
                os.setresuid(uid, uid, uid)
                os.kill(pid, sig)
                code = 0
            finally:
                os._exit(code)
        pid1.protect(child)
    try:
        _, status = os.waitpid(child, 0)
    except ChildProcessError:
        return False
    finally:
        pid1.release(child)
    ok = os.waitstatus_to_exitcode(status) == 0
    log.debug("signal %s to pid %d (uid %d) from a child with its uid: %s", signal_name(sig), pid, uid,
              "sent" if ok else "failed")
    return ok


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

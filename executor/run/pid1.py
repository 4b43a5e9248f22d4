"""PID 1 duties: reaping orphans and turning SIGTERM/SIGINT into a prompt, clean cancellation.

In production kiln is PID 1 of its container, so every process a RUN leaves behind is re-parented to
it and must be reaped, and the container runtime stops a build with SIGTERM (then SIGKILL after its
own grace period). ``supervise()`` installs both behaviours for the duration of a build::

    with pid1.supervise():
        build()          # raises BuildCancelled on SIGTERM/SIGINT

Reaping never steals a status someone is waiting for: children spawned through ``spawn_guard()`` +
``protect()`` (which ``executor.run.process`` does for every RUN) are left to their owner; zombies in
kiln's own process group (children other kiln code started, e.g. a credential helper, waited for from
another thread) are only collected after ``OWN_CHILD_GRACE_SECONDS``; the rest (orphans of RUN
commands, which always run in a process group of their own) are collected at once, by pid, never
with ``waitpid(-1)``.

On the first SIGTERM/SIGINT the registered cancel hooks run (``process.run`` registers one that
sends SIGTERM to the running command's process tree) and ``BuildCancelled`` is raised in the main
thread; ``run()`` then gives the tree ``GRACE_SECONDS`` before SIGKILL. A second signal escalates to
SIGKILL at once and does not raise again, so cleanup code is not interrupted twice.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

GRACE_SECONDS = 3.0
OWN_CHILD_GRACE_SECONDS = 5.0
PR_SET_CHILD_SUBREAPER = 36


class BuildCancelled(BaseException):
    """The build was asked to stop (SIGTERM/SIGINT). A BaseException so ``except Exception`` in retry
    loops does not swallow it; exit with ``exit_code`` (128 + signal number)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"build cancelled by {signal.Signals(signum).name}")


_lock = threading.RLock()
_protected: set[int] = set()
_spawn_depth = 0
_reap_pending = False
_deferred_signal: int | None = None
_own_group_zombies: dict[int, float] = {}  # pid -> when first seen as a zombie
_cancel_hooks: list[Callable[[bool], None]] = []
_cancelled_by: int | None = None
_escalations = 0
_active = False


def cancelled() -> int | None:
    """The signal that cancelled the build, or None."""
    return _cancelled_by


def escalated() -> bool:
    """True once a second signal asked for immediate termination."""
    return _escalations > 1


@contextlib.contextmanager
def spawn_guard() -> Iterator[None]:
    """Hold off reaping and cancellation while a child is being spawned and registered: it cannot
    be reaped between fork and ``protect``, and ``BuildCancelled`` cannot leave a started child
    unknown to its owner. A signal that arrives meanwhile takes effect when the block ends."""
    global _spawn_depth, _deferred_signal
    with _lock:
        _spawn_depth += 1
    try:
        yield
    finally:
        with _lock:
            _spawn_depth -= 1
            outermost = _spawn_depth == 0
        if outermost and _reap_pending:
            reap_orphans()
        if outermost and _deferred_signal is not None:
            signum, _deferred_signal = _deferred_signal, None
            _on_terminate(signum, None)


def uninterrupted() -> contextlib.AbstractContextManager[None]:
    """Hold off cancellation (and reaping) while a step that must not be left half done runs, e.g.
    putting a RUN's mount content in place or taking it out again: a SIGTERM/SIGINT that arrives
    meanwhile raises ``BuildCancelled`` when the block ends. The same mechanism as ``spawn_guard``."""
    return spawn_guard()


def protect(pid: int) -> None:
    """Mark a child as owned: the reaper will not collect its exit status."""
    with _lock:
        _protected.add(pid)


def is_protected(pid: int) -> bool:
    with _lock:
        return pid in _protected


def release(pid: int) -> None:
    with _lock:
        _protected.discard(pid)


def add_cancel_hook(hook: Callable[[bool], None]) -> None:
    """``hook(force)`` is called from the signal handler: force=False on the first signal (be
    graceful), True on a later one (kill now). It must only send signals."""
    with _lock:
        _cancel_hooks.append(hook)


def remove_cancel_hook(hook: Callable[[bool], None]) -> None:
    with _lock:
        if hook in _cancel_hooks:
            _cancel_hooks.remove(hook)


def child_pids() -> list[int]:
    """Direct children of this process (including adopted orphans)."""
    me = os.getpid()
    pids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{me}/task")
    except OSError:
        tasks = []
    found_children_files = False
    for tid in tasks:
        try:
            with open(f"/proc/{me}/task/{tid}/children") as f:
                found_children_files = True
                pids.extend(int(p) for p in f.read().split())
        except (OSError, ValueError):
            continue
    if found_children_files:
        return pids
    for entry in os.listdir("/proc"):  # kernels without /proc/PID/task/TID/children
        if entry.isdigit() and stat_fields(int(entry))[1:2] == [me]:
            pids.append(int(entry))
    return pids


def stat_fields(pid: int) -> list:
    """[state, ppid, pgid] from /proc/PID/stat, or [] when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return []
    rest = data[data.rfind(b")") + 2 :].split()
    return [rest[0].decode(), int(rest[1]), int(rest[2])]


def process_state(pid: int) -> str | None:
    fields = stat_fields(pid)
    return fields[0] if fields else None


def reap_orphans() -> list[int]:
    """Collect every zombie child that nobody owns. Returns the reaped pids."""
    global _reap_pending
    with _lock:
        if _spawn_depth:
            _reap_pending = True
            return []
        _reap_pending = False
        protected = set(_protected)
    reaped = []
    now = time.monotonic()
    own_group = os.getpgrp()
    live = set()
    for pid in child_pids():
        fields = stat_fields(pid)
        if pid in protected or not fields or fields[0] != "Z":
            continue
        live.add(pid)
        if fields[2] == own_group:
            # kiln's own child (RUN commands never are in kiln's group): its owner may be about to
            # wait for it from another thread; only collect it when nobody did for a while
            first_seen = _own_group_zombies.setdefault(pid, now)
            if now - first_seen < OWN_CHILD_GRACE_SECONDS:
                continue
        try:
            got, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if got:
            reaped.append(pid)
    for pid in list(_own_group_zombies):
        if pid not in live or pid in reaped:
            # pop: SIGCHLD's handler runs this function again on this thread, possibly in the middle of this
            # loop, and may have dropped the pid already (seen once in the test suite as a KeyError)
            _own_group_zombies.pop(pid, None)
    if reaped:
        log.debug("reaped orphaned processes %s", reaped)
    return reaped


def _on_sigchld(signum: int, frame: object) -> None:
    reap_orphans()


def _on_terminate(signum: int, frame: object) -> None:
    global _cancelled_by, _escalations, _deferred_signal
    if _spawn_depth:
        _deferred_signal = signum
        return
    _escalations += 1
    first = _cancelled_by is None
    if first:
        _cancelled_by = signum
        log.warning("received %s: stopping the build", signal.Signals(signum).name)
    else:
        log.warning("received %s again: killing the running command now", signal.Signals(signum).name)
    with _lock:
        hooks = list(_cancel_hooks)
    for hook in hooks:     # said before they act: what they do (a RUN's tree stopped) comes after
        try:
            hook(not first)
        except Exception:  # noqa: BLE001 - a failing hook must not block cancellation
            log.exception("cancel hook failed")
    if first:
        raise BuildCancelled(signum)


def _set_subreaper(on: bool) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        zero = ctypes.c_ulong(0)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(int(on)), zero, zero, zero) == 0
    except OSError:
        return False


@contextlib.contextmanager
def supervise(subreaper: bool = True) -> Iterator[None]:
    """Reap orphans and turn SIGTERM/SIGINT into ``BuildCancelled`` while the block runs.

    Must be entered from the main thread. When this process is not PID 1, ``subreaper`` makes it the
    child subreaper so orphans of RUN commands are re-parented here as they would be to PID 1.
    """
    global _active, _cancelled_by, _escalations
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("pid1.supervise() must be entered from the main thread")
    became_subreaper = False
    if subreaper and os.getpid() != 1:
        became_subreaper = _set_subreaper(True)
        if not became_subreaper:
            log.debug("could not become a child subreaper; orphans go to the real PID 1")
    previous = {
        sig: signal.signal(sig, handler)
        for sig, handler in (
            (signal.SIGCHLD, _on_sigchld),
            (signal.SIGTERM, _on_terminate),
            (signal.SIGINT, _on_terminate),
        )
    }
    _active = True
    _cancelled_by, _escalations = None, 0
    try:
        reap_orphans()
        yield
    finally:
        _active = False
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reap_orphans()
        if became_subreaper:
            _set_subreaper(False)


def active() -> bool:
    """True inside ``supervise()``."""
    return _active

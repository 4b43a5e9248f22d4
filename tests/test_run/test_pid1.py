"""pid1: cancellation with SIGTERM/SIGINT, and reaping that leaves owned children alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from executor.run import pid1
from tests.test_run.conftest import mountinfo_mentions, processes_with, tree_listing, unique_number

DRIVER = os.path.join(os.path.dirname(__file__), "driver.py")
# A hang guard for a cancelled RUN, not a speed target. Measured here (2 cores shared, load average 3 to 8),
# from the signal to the driver's exit: a shell that ignores SIGTERM (PID 1 of its namespace, or trap '')
# 3.03-3.11 s (SIGKILL after pid1.GRACE_SECONDS = 3); a shell that handles it 0.06-0.40 s; a second signal
# 0.37 s (0.3 s of it the test's own pause). 20 s is 6.4x the slowest. The RUN's /started appears 0.19-0.41 s
# after the driver starts: wait_for's 10 s is 24x that. The 5 s loops below wait for what takes milliseconds
# here: a zombie of `sh -c exit N` (5 ms at most in 20 tries), the RUN's sleep gone after kiln's SIGKILL (0.05 s).
HANG_GUARD = 20.0
SIGKILLED = "the running command did not end within 3s of SIGTERM: SIGKILL"


def wait_for(path: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def cancel_run(bbroot: str, script: str, sig: int) -> tuple[int, str]:
    proc = subprocess.Popen([sys.executable, DRIVER, bbroot, script], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(os.path.join(bbroot, "started"))
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=HANG_GUARD)
        return proc.returncode, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_cancels_a_long_run_and_ends_its_tree(bbroot):
    before = tree_listing(bbroot)
    n = unique_number()
    rc, out = cancel_run(bbroot, f"sleep {n}1 & touch /started; sleep {n}2; sleep {n}3", signal.SIGTERM)
    assert rc == 128 + signal.SIGTERM, out
    # the shell is PID 1 of the RUN's namespace and has no TERM handler: it ignores SIGTERM, SIGKILL ends it
    assert out.splitlines() == ["executor.run.pid1: received SIGTERM: stopping the build",
                                "executor.run.process: stopping the running command (SIGTERM, SIGKILL after 3s)",
                                "out: Terminated",       # the background sleep's end, reported by the shell
                                f"executor.run.process: {SIGKILLED}", "cancelled"], out
    assert processes_with(f"sleep {n}") == []
    assert mountinfo_mentions(bbroot) == []
    assert tree_listing(bbroot) - before == {"started"}


def test_sigint_cancels_a_command_that_ignores_sigterm(bbroot):
    # the command traps TERM and keeps going: SIGKILL after the grace period ends it
    n = unique_number()
    script = f"trap '' TERM; sleep {n} & touch /started; while :; do sleep 1; done"
    rc, out = cancel_run(bbroot, script, signal.SIGINT)
    assert rc == 128 + signal.SIGINT, out
    assert out.splitlines() == ["executor.run.pid1: received SIGINT: stopping the build",
                                "executor.run.process: stopping the running command (SIGTERM, SIGKILL after 3s)",
                                f"executor.run.process: {SIGKILLED}", "cancelled"], out
    assert processes_with(f"sleep {n}") == []
    assert mountinfo_mentions(bbroot) == []


def test_sigterm_reaches_a_command_that_handles_it(bbroot):
    script = "trap 'echo got-term; exit 0' TERM; touch /started; while :; do sleep 0.1; done"
    rc, out = cancel_run(bbroot, script, signal.SIGTERM)
    assert rc == 128 + signal.SIGTERM
    assert "out: got-term" in out and "cancelled" in out
    assert SIGKILLED not in out, out  # it ended on SIGTERM, no SIGKILL needed


def test_reaper_leaves_protected_children_and_collects_others():
    with pid1.spawn_guard():
        owned = subprocess.Popen(["sh", "-c", "exit 5"])
        pid1.protect(owned.pid)
    stray = subprocess.Popen(["sh", "-c", "exit 6"], process_group=0)  # as a RUN's orphan would be
    try:
        deadline = time.monotonic() + 5
        while {pid1.process_state(owned.pid), pid1.process_state(stray.pid)} != {"Z"}:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        reaped = pid1.reap_orphans()
        assert stray.pid in reaped and owned.pid not in reaped
        assert owned.wait(timeout=5) == 5  # its status was not stolen
    finally:
        pid1.release(owned.pid)


def test_reaping_is_deferred_while_spawning():
    stray = subprocess.Popen(["true"], process_group=0)
    deadline = time.monotonic() + 5
    while pid1.process_state(stray.pid) != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pid1.spawn_guard():
        assert pid1.reap_orphans() == []  # deferred
        assert pid1.process_state(stray.pid) == "Z"
    assert pid1.process_state(stray.pid) is None  # reaped on leaving the guard


def test_second_signal_kills_at_once(bbroot):
    script = "trap '' TERM; touch /started; while :; do sleep 1; done"
    proc = subprocess.Popen([sys.executable, DRIVER, bbroot, script], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(os.path.join(bbroot, "started"))
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=HANG_GUARD)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "executor.run.pid1: received SIGTERM again: killing the running command now" in out
    assert SIGKILLED not in out, out  # killed at once, not after waiting out the grace period


def test_cancellation_is_deferred_until_the_spawned_child_is_registered():
    steps = []
    with pytest.raises(pid1.BuildCancelled) as info:
        with pid1.supervise(subreaper=False):
            with pid1.spawn_guard():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the handler ran meanwhile, and deferred
                steps.append("registered")
            steps.append("after guard")
    assert steps == ["registered"]
    assert info.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_killing_kiln_outright_ends_the_run_too(bbroot):
    # no chance to clean up (SIGKILL): the namespace must still die with kiln, also as a non-root user
    n = unique_number()
    os.makedirs(os.path.join(bbroot, "tmp"), exist_ok=True)
    os.chmod(os.path.join(bbroot, "tmp"), 0o1777)
    proc = subprocess.Popen([sys.executable, DRIVER, bbroot, f"sleep {n} & touch /tmp/started; sleep {n}", "app"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(os.path.join(bbroot, "tmp", "started"))
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 5
    while processes_with(f"sleep {n}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(f"sleep {n}") == []


def test_kilns_own_children_get_time_for_their_owner(monkeypatch):
    own = subprocess.Popen(["sh", "-c", "exit 4"])  # kiln's own process group, not protected
    deadline = time.monotonic() + 5
    while pid1.process_state(own.pid) != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert pid1.reap_orphans() == []
    assert own.wait(timeout=5) == 4  # the owner still gets the real status
    # nobody waits for this one: it is collected once the grace has passed
    monkeypatch.setattr(pid1, "OWN_CHILD_GRACE_SECONDS", 0.2)
    forgotten = subprocess.Popen(["true"])
    while pid1.process_state(forgotten.pid) != "Z":
        time.sleep(0.01)
    assert pid1.reap_orphans() == []
    time.sleep(0.3)
    assert pid1.reap_orphans() == [forgotten.pid]
    forgotten.returncode = 0  # reaped behind Popen's back on purpose


def test_a_reap_interrupted_by_another_reap_loses_nothing(monkeypatch):
    """SIGCHLD's handler runs reap_orphans on the main thread, possibly while an earlier call is in its loop
    over the zombies it noted: the inner call drops one the outer call is about to drop (once a KeyError in
    the suite). Here the inner call runs right after the outer one listed them."""
    gone = 2 ** 22 + 12345           # a pid noted as kiln's own zombie earlier, no longer a child
    calls = []

    class Noted(dict):
        def __iter__(self):
            listed = list(super().__iter__())
            if not calls:
                calls.append("inner")
                assert pid1.reap_orphans() == []     # the "signal handler", in the middle of the outer call
                assert gone not in self
            return iter(listed)

    monkeypatch.setattr(pid1, "_own_group_zombies", Noted({gone: time.monotonic()}))
    assert pid1.reap_orphans() == []
    assert calls == ["inner"] and gone not in pid1._own_group_zombies

"""run() in production mode (root "/"): kiln as PID 1 of a container.

The container is made here: a private mount and PID namespace (util-linux ``unshare``) chrooted into
a busybox root, with the host's /usr bound read-only for the interpreter and the checkout read-only at
/kiln. Inside it the driver is PID 1 and calls run() with root "/", which is the tmp root: the host's
/ is never the build root.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.test_run.conftest import mountinfo_mentions

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CONTAINER = r"""
set -e
R=$1; shift
mkdir -p "$R/usr" "$R/proc" "$R/tmp" "$R/dev" "$R/kiln"
for l in lib lib64; do if [ -e "/$l" ] && [ ! -L "$R/$l" ]; then ln -s "usr/$l" "$R/$l"; fi; done
mount --rbind /usr "$R/usr"; mount -o remount,bind,ro "$R/usr"
mount --bind "$KILN_REPO" "$R/kiln"; mount -o remount,bind,ro "$R/kiln"
mount -t proc proc "$R/proc"
mount -t tmpfs tmpfs "$R/tmp"
mount -t tmpfs -o mode=755 tmpfs "$R/dev"
for n in null zero urandom; do touch "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"; done
exec ${KILN_TEST_EXEC_PREFIX:-} chroot "$R" /usr/bin/python3 -B /kiln/tests/test_run/driver.py / "$@"
"""


def start_container(root: str, script: str, user: str = "", spec: dict | None = None,
                    sidecar: bool = False, exec_prefix: str = "") -> subprocess.Popen:
    """exec_prefix: words before the container's chroot (e.g. setpriv dropping a capability)."""
    if shutil.which("unshare") is None:
        pytest.skip("util-linux unshare is needed to make a test container")
    env = dict(os.environ, KILN_REPO=REPO, KILN_TEST_SPEC=json.dumps(spec or {}), KILN_TEST_EXEC_PREFIX=exec_prefix)
    if sidecar:
        env["KILN_TEST_SIDECAR"] = "1"
    return subprocess.Popen(
        ["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "--kill-child",
         "sh", "-c", CONTAINER, "container", root, script, user],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def in_container(root: str, script: str, user: str = "", spec: dict | None = None,
                 sidecar: bool = False, exec_prefix: str = "") -> tuple[int, list[str]]:
    proc = start_container(root, script, user, spec, sidecar, exec_prefix)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out.splitlines()


def outputs(lines: list[str]) -> list[str]:
    return [line[5:] for line in lines if line.startswith("out: ")]


def leftovers(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("leftover:")]


def test_user_switch_in_production_mode(bbroot):
    rc, lines = in_container(bbroot, 'id -u; id -g; grep ^Groups: /proc/self/status; echo "$HOME"; pwd; umask',
                             "app")
    assert rc == 0, lines
    out = outputs(lines)
    assert out[:2] == ["1000", "1000"]
    assert out[2].split() == ["Groups:", "1000", "2000"]   # primary gid included, as BuildKit
    assert out[3:] == ["/home/app", "/", "0022"]


def test_process_group_and_reparented_stragglers_are_ended(bbroot):
    script = "sleep 515151 & setsid sleep 515152 & (setsid sleep 515153 &) ; echo started"
    rc, lines = in_container(bbroot, script)
    assert rc == 0, lines
    assert outputs(lines) == ["started"]
    assert leftovers(lines) == []


def test_kilns_own_children_survive_the_teardown(bbroot):
    rc, lines = in_container(bbroot, "setsid sleep 818181 & sleep 1; echo done", sidecar=True)
    assert rc == 0, lines
    assert "sidecar: alive" in lines  # started by kiln during the RUN, in kiln's own process group
    assert leftovers(lines) == []     # the RUN's setsid'd orphan was still ended


def test_orphans_are_reaped_while_the_command_runs(bbroot):
    # the orphan exits while the RUN still runs: only the SIGCHLD reaper can collect it
    script = "(sleep 0.1 &); sleep 0.8; grep -l '^State:.*Z' /proc/[0-9]*/status || echo no-zombies"
    rc, lines = in_container(bbroot, script)
    assert rc == 0, lines
    assert outputs(lines) == ["no-zombies"]


def test_exit_code_and_signal_in_production_mode(bbroot):
    rc, lines = in_container(bbroot, "exit 3")
    assert rc == 1
    assert "error: The command '/bin/sh -c exit 3' returned a non-zero code: 3" in lines
    rc, lines = in_container(bbroot, "kill -9 $$")
    assert rc == 1
    assert "error: The command '/bin/sh -c kill -9 $$' was killed by signal 9 (SIGKILL)" in lines


def test_sigterm_to_pid1_cancels_the_build(bbroot):
    script = "sleep 616161 & setsid sleep 616162 & touch /started; sleep 616163"
    proc = start_container(bbroot, script)
    try:
        deadline = time.monotonic() + 15     # hang guards: /started appears in 0.08-0.13 s here, and
        while not os.path.exists(os.path.join(bbroot, "started")):   # the cancel takes 0.05 s (load average 6)
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[0]
            time.sleep(0.02)
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            pid1_host_pid = int(f.read().split()[0])  # unshare's child: sh, exec'd into chroot + python
        os.kill(pid1_host_pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = out.splitlines()
    assert proc.returncode == 128 + signal.SIGTERM, lines
    # not PID 1 of a namespace of its own here, the RUN's shell dies of SIGTERM: no SIGKILL was needed
    assert lines[0] == "executor.run.pid1: received SIGTERM: stopping the build", lines
    assert "cancelled" in lines and not any("did not end within" in line for line in lines), lines
    assert leftovers(lines) == []
    assert mountinfo_mentions(bbroot) == []


def test_mounts_hostname_and_network_none_in_production_mode(bbroot):
    os.makedirs(os.path.join(bbroot, "srv", "cache"))
    os.makedirs(os.path.join(bbroot, "srv", "secret"))
    with open(os.path.join(bbroot, "srv", "secret", "token"), "w") as f:
        f.write("tok\n")
    spec = {
        "mounts": [
            {"target": "/mnt/secret", "source": "/srv/secret", "readonly": True},
            {"target": "/var/cache/apt", "source": "/srv/cache"},
            {"target": "/scratch", "type": "tmpfs"},
        ],
        "hostname": "prodbox",
        "network": "none",
        "workdir": "/app",
        "env": {"GREETING": "hi"},
    }
    script = "; ".join([
        "cat /mnt/secret/token",
        "{ echo x > /mnt/secret/token; } 2>/dev/null || echo ro-refused",
        "echo cached > /var/cache/apt/pkg",
        "echo s > /scratch/s && cat /scratch/s",
        "hostname",
        "ls /sys/class/net 2>/dev/null || ip -o link | wc -l",
        'echo "$GREETING $(pwd)"',
        "ls /proc/self/mountinfo >/dev/null && echo proc-ok",
    ])
    rc, lines = in_container(bbroot, script, spec=spec)
    assert rc == 0, lines
    out = outputs(lines)
    # network none: only lo (no /sys in this container, so counted with ip); with CAP_SYS_ADMIN the mounts are
    # real (the read-only one refuses the write), not placed (test_placing.py)
    assert out == ["tok", "ro-refused", "s", "prodbox", "1", "hi /app", "proc-ok"]
    assert not any("kiln cannot mount here" in line for line in lines), lines
    assert leftovers(lines) == []
    with open(os.path.join(bbroot, "srv", "cache", "pkg")) as f:
        assert f.read() == "cached\n"
    # mount targets created in the (production) root were removed again; the workdir stays
    assert not os.path.exists(os.path.join(bbroot, "mnt"))
    assert not os.path.exists(os.path.join(bbroot, "var"))
    assert not os.path.exists(os.path.join(bbroot, "scratch"))
    assert os.path.isdir(os.path.join(bbroot, "app"))

"""The executor refuses root `/` outside a container.

This test machine itself looks like a container (it has /.dockerenv), so the "bare host" cases
point the detection at a fake, empty probe directory (`probe_root=` in-process,
KILN_CONTAINER_PROBE_ROOT for the real entry point) and give a clean environment. No test lets a
build run on `/`: the subprocess test only ever reaches the refusal, and in-process tests use a
recording engine instead of executor.engine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from executor import safety

REPO = Path(__file__).resolve().parents[2]
NOT_PID1 = 4242


def probe(tmp_path: Path, files: dict[str, str]) -> str:
    root = tmp_path / "probe"
    root.mkdir(exist_ok=True)
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return str(root)


def test_bare_host_has_no_evidence(tmp_path: Path) -> None:
    host = probe(tmp_path, {"proc/1/cgroup": "0::/init.scope\n", "proc/self/cgroup": "0::/user.slice/s.scope\n",
                            "proc/mounts": "/dev/sda1 / ext4 rw 0 0\n"})
    assert safety.container_evidence(host, pid=NOT_PID1, env={}) is None


@pytest.mark.parametrize("files,pid,env,needle", [
    ({}, 1, {}, "PID 1"),
    ({".dockerenv": ""}, NOT_PID1, {}, "/.dockerenv"),
    ({"run/.containerenv": ""}, NOT_PID1, {}, "/run/.containerenv"),
    ({"var/run/secrets/kubernetes.io/serviceaccount/token": "x"}, NOT_PID1, {}, "Kubernetes"),
    ({"proc/1/cgroup": "12:pids:/docker/0123abcd\n"}, NOT_PID1, {}, "docker"),
    ({"proc/1/cgroup": "0::/kubepods/besteffort/pod1/abc\n"}, NOT_PID1, {}, "kubepods"),
    ({"proc/self/cgroup": "0::/system.slice/containerd.service\n"}, NOT_PID1, {}, "containerd"),
    ({"proc/1/cgroup": "0::/machine.slice/libpod-abc.scope\n"}, NOT_PID1, {}, "libpod"),
    ({"proc/1/cgroup": "0::/lxc/ct1\n"}, NOT_PID1, {}, "lxc"),
    ({"run/systemd/container": "systemd-nspawn\n"}, NOT_PID1, {}, "systemd-nspawn"),
    ({}, NOT_PID1, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "KUBERNETES_SERVICE_HOST"),
    ({}, NOT_PID1, {"container": "podman"}, "podman"),
    ({"proc/mounts": "overlay / overlay rw,lowerdir=/l 0 0\n"}, NOT_PID1, {}, "overlay"),
])
def test_each_sign_of_a_container(tmp_path: Path, files: dict[str, str], pid: int, env: dict[str, str],
                                  needle: str) -> None:
    evidence = safety.container_evidence(probe(tmp_path, files), pid=pid, env=env)
    assert evidence is not None and needle in evidence


@pytest.mark.parametrize("root", ["/", "//", "/.", "/tmp/..", "/./"])
def test_spellings_of_root_are_root(root: str) -> None:
    assert safety.is_host_root(root)


def test_symlink_to_root_is_root(tmp_path: Path) -> None:
    link = tmp_path / "r"
    link.symlink_to("/")
    assert safety.is_host_root(str(link))
    assert not safety.is_host_root(str(tmp_path))


def test_refused_on_a_bare_host(tmp_path: Path) -> None:
    with pytest.raises(safety.UnsafeRootError) as err:
        safety.check_root("/", False, probe_root=probe(tmp_path, {}), pid=NOT_PID1, env={})
    text = str(err.value)
    assert "refusing to build on /" in text and "--root" in text and "--force" in text


def test_forced_on_a_bare_host_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    verdict = safety.check_root("/", True, probe_root=probe(tmp_path, {}), pid=NOT_PID1, env={})
    assert verdict.forced and verdict.contained is None
    assert "outside of a container" in caplog.text


def test_allowed_in_a_container(tmp_path: Path) -> None:
    verdict = safety.check_root("/", False, probe_root=probe(tmp_path, {".dockerenv": ""}), pid=NOT_PID1, env={})
    assert verdict.host_root and verdict.contained


def test_scratch_root_is_always_allowed(tmp_path: Path) -> None:
    verdict = safety.check_root(str(tmp_path), False, probe_root=probe(tmp_path, {}), pid=NOT_PID1, env={})
    assert not verdict.host_root


def test_refusal_through_the_real_entry_point(tmp_path: Path) -> None:
    """`python3 -m executor --context DIR --no-push` on a (simulated) bare host exits 1 and says why."""
    context = tmp_path / "ctx"
    context.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("container", "KUBERNETES_SERVICE_HOST")}
    env[safety.PROBE_ROOT_ENV] = probe(tmp_path, {})
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        # belt and braces: a Dockerfile that does not exist and a private kaniko dir, in case the
        # refusal ever failed to stop the run
        [sys.executable, "-m", "executor", "--context", str(context), "--no-push",
         "--dockerfile", str(tmp_path / "absent" / "Dockerfile"), "--kaniko-dir", str(tmp_path / "k"),
         "--log-format", "text"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "refusing to build on /" in proc.stderr
    assert "--root" in proc.stderr and "--force" in proc.stderr
    assert "level=error" in proc.stderr
    assert proc.stdout == ""

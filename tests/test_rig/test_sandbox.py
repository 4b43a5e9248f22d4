"""The sandbox keeps the machine read-only except for the paths a test names."""
from __future__ import annotations

import os
import shutil
import uuid

import pytest

from tests.rig.sandbox import SandboxError, run_sandboxed

CACHE = "/var/cache/kiln-tests"


@pytest.fixture
def outside_tmp():
    """Two sibling directories outside /tmp (in the rig's own cache dir), removed afterwards."""
    base = os.path.join(CACHE, f"sandbox-test-{uuid.uuid4().hex[:8]}")
    inside, outside = os.path.join(base, "inside"), os.path.join(base, "outside")
    os.makedirs(inside)
    os.makedirs(outside)
    yield inside, outside
    shutil.rmtree(base)


def test_writes_outside_writable_fail_and_inside_work(outside_tmp) -> None:
    inside, outside = outside_tmp
    script = (f"echo a > {inside}/a && echo inside-ok; "
              f"echo b > {outside}/b || echo outside-refused; "
              f"mkdir /work/main/.sandbox-probe-{os.getpid()} || echo repo-refused; "
              "echo c > /tmp/kiln-sandbox-probe && echo tmp-ok; echo d > /dev/null && echo dev-ok; "
              "chmod 600 /dev/null || echo dev-chmod-refused; touch /dev/kiln-probe || echo dev-create-refused")
    proc = run_sandboxed(["sh", "-c", script], writable=[inside])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["inside-ok", "outside-refused", "repo-refused", "tmp-ok", "dev-ok",
                                   "dev-chmod-refused", "dev-create-refused"]
    assert proc.stderr.count("Read-only file system") == 4
    assert oct(os.stat("/dev/null").st_mode & 0o777) == "0o666"
    assert open(os.path.join(inside, "a")).read() == "a\n"
    assert not os.path.exists(os.path.join(outside, "b"))
    assert not os.path.exists(f"/work/main/.sandbox-probe-{os.getpid()}")
    os.unlink("/tmp/kiln-sandbox-probe")


def test_host_stays_writable_after_the_sandbox(outside_tmp) -> None:
    inside, outside = outside_tmp
    run_sandboxed(["true"], writable=[inside])
    with open(os.path.join(outside, "after"), "w") as f:   # the read-only remount did not leak out
        f.write("host is fine")


def test_cwd_env_input_and_exit_status(outside_tmp) -> None:
    inside, _ = outside_tmp
    proc = run_sandboxed(["sh", "-c", 'pwd; echo "$KILN_X"; cat; exit 3'], writable=[inside],
                         env={"PATH": os.environ["PATH"], "KILN_X": "xyz"}, cwd=inside, input="from stdin\n")
    assert proc.returncode == 3
    assert proc.stdout.splitlines() == [inside, "xyz", "from stdin"]
    raw = run_sandboxed(["cat"], writable=[inside], input=b"\x00\xff")
    assert raw.stdout == b"\x00\xff"


def test_symlinked_writable_path_is_resolved(outside_tmp, tmp_path) -> None:
    inside, _ = outside_tmp
    link = tmp_path / "link"
    link.symlink_to(inside)
    proc = run_sandboxed(["sh", "-c", f"echo x > {inside}/via-link"], writable=[str(link)])
    assert proc.returncode == 0, proc.stderr


def test_refuses_root_and_missing_paths() -> None:
    with pytest.raises(SandboxError, match="'/' cannot be writable"):
        run_sandboxed(["true"], writable=["/"])
    with pytest.raises(SandboxError, match="does not exist"):
        run_sandboxed(["true"], writable=["/nonexistent/kiln/path"])


def test_missing_command_reports() -> None:
    proc = run_sandboxed(["/nonexistent/kiln-binary"], writable=[])
    assert proc.returncode == 127 and "cannot run /nonexistent/kiln-binary" in proc.stderr


def test_pid_namespace_makes_the_command_pid_1(outside_tmp) -> None:
    inside, outside = outside_tmp
    proc = run_sandboxed(["sh", "-c", f"echo $$; ls /proc | grep -c '^[0-9]'; echo x > {outside}/x"],
                         writable=[inside], pid_namespace=True)
    lines = proc.stdout.split()
    assert lines[0] == "1" and int(lines[1]) <= 3, proc.stdout   # sh (+ ls, grep): nothing of the host
    assert "Read-only file system" in proc.stderr

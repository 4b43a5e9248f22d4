"""Issue 5: the containerised executor (the image kiln built of itself, PID 1 under runc) stopped by SIGTERM in
the middle of a RUN, as the kubelet stops a pod: it says so and exits 143, pushes no tag, and leaves no process
in the container; the RUN's process tree got the SIGTERM from kiln (its trap ran), not the kernel's SIGKILL
at PID 1's exit."""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.test_executor_image.kilnimage import Mount, Pod, context_dir, kiln_built_image

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("KILN_SKIP_SLOW") == "1", reason="KILN_SKIP_SLOW=1"),
]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_sigterm_during_run(plain_registry, token_registry, base_images, tmp_path_factory):
    work = str(tmp_path_factory.mktemp("sigterm"))
    image = kiln_built_image(plain_registry, "executor", work)
    dockerfile = (f"FROM {base_images.busybox_index}\n"
                  "RUN trap 'echo TERM > /workspace/run-got-term; exit 143' TERM; "
                  "echo started > /workspace/run-started; sleep 300 & wait\n"
                  "RUN echo never > /never\n")
    ctx = context_dir(work, {"Dockerfile": dockerfile})
    dest = token_registry.ref("private/sigterm/app:1")
    pod = Pod(image, work, extra_args=["--context", "dir:///workspace", "--destination", dest,
                                       "--insecure-registry", plain_registry.host,
                                       "--registry-certificate", f"{token_registry.host}=/kaniko/test-ca/ca.crt"],
              mounts=[Mount(ctx, "/workspace", rw=True), Mount(token_registry.docker_config_dir, "/kaniko/.docker"),
                      Mount(token_registry.cert_dir, "/kaniko/test-ca")])
    try:
        pod.start()
        deadline = time.monotonic() + 120
        while not os.path.exists(os.path.join(ctx, "run-started")):
            assert pod.proc.poll() is None, pod.wait(5).stderr[-3000:]
            assert time.monotonic() < deadline, "the RUN never started"
            time.sleep(0.2)
        time.sleep(0.5)
        pids = pod.pids()
        cmds = {pid: _cmdline(pid) for pid in pids}
        assert any(c.startswith("sleep 300") for c in cmds.values()), cmds
        assert len(pids) >= 3, cmds            # the executor, the RUN's shell, its sleep
        t0 = time.monotonic()
        pod.signal("TERM")                     # to PID 1, as the kubelet's runtime does
        p = pod.wait(timeout=30)
        elapsed = time.monotonic() - t0
        # Every process of the container is gone (the host PIDs the runtime listed), the container stopped.
        left = [pid for pid in pids if _cmdline(pid)]
        state = pod.state()
    finally:
        pod.cleanup()
    print(f"\nSIGTERM during RUN: exit {p.returncode} after {elapsed:.1f}s")
    assert p.returncode == 143, p.stderr[-3000:]
    assert "received SIGTERM: stopping the build" in p.stderr, p.stderr[-3000:]
    assert "stopping the running command (SIGTERM, SIGKILL after 3s)" in p.stderr, p.stderr[-3000:]
    assert "did not end within" not in p.stderr, p.stderr[-3000:]     # the RUN's trap ended it, no SIGKILL
    assert "build cancelled by signal 15: nothing was pushed" in p.stderr, p.stderr[-3000:]
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    assert elapsed < 10, elapsed        # a hang guard: 0.1 s measured here (the trap exits at once), 100x
    assert left == [], {pid: _cmdline(pid) for pid in left}
    assert state is None or state["status"] == "stopped", state
    # kiln stopped the RUN's process tree with SIGTERM itself: the shell's trap ran.
    assert open(os.path.join(ctx, "run-got-term")).read() == "TERM\n"
    assert "never" not in p.stderr
    # No tag pushed, no manifest: the repository is unknown to the registry or has no tags.
    ls = subprocess.run(["skopeo", "list-tags", *token_registry.skopeo_args(""), f"docker://{dest.rsplit(':', 1)[0]}"],
                        capture_output=True, text=True)
    tags = json.loads(ls.stdout).get("Tags") or [] if ls.returncode == 0 else []
    assert tags == [], tags
    assert ls.returncode == 0 or "name unknown" in ls.stderr.lower() or "not found" in ls.stderr.lower(), ls.stderr

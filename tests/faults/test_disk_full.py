"""A full disk: kiln's directory (or the root) on a small tmpfs, mounted in a private mount namespace that
dies with the build. Each gives one clear error line, no traceback, and no tag."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

from tests.faults.conftest import REPO, SANDBOX, kiln_argv, kiln_env


def _tags(registry, repo: str) -> list[str]:
    proc = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{registry.host}/{repo}"],
                          capture_output=True, text=True)
    return json.loads(proc.stdout).get("Tags") or [] if proc.returncode == 0 else []


CASES = {
    # what is small, its size, the Dockerfile's RUN
    "blob download into the kaniko dir": ("kaniko", "512k", "RUN true"),
    "layer snapshot into the kaniko dir": ("kaniko", "3m", "RUN head -c 4000000 /dev/urandom > /noise"),
    "extraction into the root": ("root", "1m", "RUN true"),
    # the command itself meets ENOSPC: its own message, then kiln's "returned a non-zero code"
    "RUN writing into the root": ("root", "4m", "RUN dd if=/dev/urandom of=/noise bs=1M count=8"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_full_disk_is_a_clear_error(case, base_images, plain_registry, tmp_path):
    small, size, run = CASES[case]
    root, kdir, ctx = (str(tmp_path / n) for n in ("root", "kaniko", "ctx"))
    for d in (root, kdir, ctx):
        os.makedirs(d)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(f"FROM {base_images.busybox_amd64}\n{run}\n")
    repo = "faults/disk-full-" + case.split()[0].lower()
    argv = kiln_argv(ctx, root, kdir, "--destination", plain_registry.ref(f"{repo}:v1"),
                     "--insecure-registry", plain_registry.host)
    target = kdir if small == "kaniko" else root
    config = json.dumps({"writable": [root, kdir, ctx], "cwd": REPO})
    script = (f"mount -t tmpfs -o size={size} kiln-faults-tmpfs {shlex.quote(target)} && exec "
              + shlex.join([sys.executable, SANDBOX, config, "--", *argv]))
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
                          env=kiln_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    if case.startswith("RUN"):
        assert "No space left on device" in proc.stdout + proc.stderr
        assert "level=error" in last and "returned a non-zero code: 1" in last and "dd if=" in last, last
    else:
        assert "level=error" in last and "No space left on device" in last, last
    assert _tags(plain_registry, repo) == []
    assert not os.listdir(target), "the tmpfs leaked out of the private mount namespace"

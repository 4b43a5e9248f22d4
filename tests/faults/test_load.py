"""Load: eight builds at once on this machine, sharing one registry (same repository, one tag each), all
succeed and, with --reproducible, push the very image a lone build pushes."""
from __future__ import annotations

import hashlib
import os
import subprocess
import time

from tests.faults.conftest import Running, kiln_argv, kiln_env
from tests.rig.judge import judge_registry_image

DOCKERFILE = """\
FROM {base}
ARG N=0
COPY app.txt /app/app.txt
RUN echo built > /app/built && mkdir -p /app/data && for i in 1 2 3 4 5; do echo $i > /app/data/$i; done
ENV MODE=load
"""
PARALLEL = 8


def _start(tmp_path, name: str, ctx: str, dest: str, registry_host: str) -> Running:
    root, kdir = str(tmp_path / f"root-{name}"), str(tmp_path / f"kaniko-{name}")
    os.makedirs(root), os.makedirs(kdir)
    argv = kiln_argv(ctx, root, kdir, "--destination", dest, "--insecure-registry", registry_host,
                     "--reproducible", "--digest-file", os.path.join(kdir, "digest"))
    return Running(argv, [root, kdir, ctx], kiln_env())


def _digest(run: Running, tmp_path, name: str) -> str:
    with open(tmp_path / f"kaniko-{name}" / "digest") as f:
        return f.read().strip()


def test_eight_builds_at_once_match_a_lone_build(base_images, plain_registry, tmp_path):
    ctx = str(tmp_path / "ctx")
    os.makedirs(ctx)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE.format(base=base_images.busybox_amd64))
    with open(os.path.join(ctx, "app.txt"), "w") as f:
        f.write("the same for everyone\n")
    lone = _start(tmp_path, "lone", ctx, plain_registry.ref("faults/load:lone"), plain_registry.host)
    assert lone.wait(120) == 0, lone.output[-3000:]
    expected = _digest(lone, tmp_path, "lone")
    start = time.monotonic()
    runs = {f"p{i}": _start(tmp_path, f"p{i}", ctx, plain_registry.ref(f"faults/load:p{i}"), plain_registry.host)
            for i in range(PARALLEL)}
    codes = {name: run.wait(300) for name, run in runs.items()}
    elapsed = time.monotonic() - start
    failed = {n: runs[n].output[-2000:] for n, c in codes.items() if c != 0}
    assert not failed, failed
    digests = {name: _digest(run, tmp_path, name) for name, run in runs.items()}
    assert set(digests.values()) == {expected}, (expected, digests)
    for i in range(PARALLEL):
        proc = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                               f"docker://{plain_registry.ref(f'faults/load:p{i}')}"], capture_output=True)
        assert proc.returncode == 0
        assert "sha256:" + hashlib.sha256(proc.stdout).hexdigest() == expected
    report = judge_registry_image(plain_registry, plain_registry.ref("faults/load:p0"))
    assert report.read("app/built") == b"built\n"
    assert elapsed < 240    # a hang guard: the eight builds take 2.6-3.1 s here (load average 3 to 4)

#!/usr/bin/env python3
"""Multi-platform builds (issue 16): the same Dockerfile built for arm64 under QEMU user emulation against the
native amd64 build, and one two-platform run against the two single-platform runs, all in the same run.

    python3 bench/multiplatform.py              # 3 rounds
    python3 bench/multiplatform.py --rounds 5

Rows (a round runs each build one after the other, so a drift of the machine hits all of them):

* emulated arm64 / native amd64: `--custom-platform=linux/arm64` (RUN executes the rig's arm64 busybox through
  qemu-aarch64-static, registered with the F flag as tests/rig/binfmt.py does) against `linux/amd64`;
* two platforms in one run / the two runs: `--custom-platform=linux/amd64,linux/arm64` (one index; the
  `FROM --platform=$BUILDPLATFORM` stage built once) against the sum of the two single-platform builds.

The Dockerfile has a native tools stage (`FROM --platform=$BUILDPLATFORM`) and a final stage whose RUN does CPU
work with busybox (md5sum over generated data) and writes a few hundred files. kiln runs as the tests run it:
`python -m executor` in the rig's sandbox, scratch root, fresh kiln directory per build, pushing to a plain
docker-registry on 127.0.0.1. Prints medians and per-round ratios. Asserts nothing about time. Needs root (it
registers QEMU in binfmt_misc) and qemu-user-static (scripts/setup.sh installs it).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from tests.rig.binfmt import ensure_emulation  # noqa: E402
from tests.rig.images import make_base_images  # noqa: E402
from tests.rig.registry import start_registry  # noqa: E402
from tests.rig.sandbox import run_sandboxed  # noqa: E402
from prepare import precompile  # noqa: E402

DOCKERFILE = """\
ARG BASE
FROM --platform=$BUILDPLATFORM ${BASE} AS tools
RUN mkdir /gen && for i in $(seq 1 200); do echo "generated $i" > /gen/$i.txt; done
FROM ${BASE}
COPY --from=tools /gen /gen
RUN for i in $(seq 1 300); do cat /gen/*.txt | md5sum > /gen/sum-$i; done && uname -m > /machine
"""


def kiln_build(work: str, base: str, platforms: str, dest: str, host: str) -> float:
    context = tempfile.mkdtemp(prefix="ctx-", dir=work)
    with open(os.path.join(context, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)
    root = tempfile.mkdtemp(prefix="root-", dir=work)
    kdir = tempfile.mkdtemp(prefix="kaniko-", dir=work)
    argv = [sys.executable, "-m", "executor", "--context", context, "--root", root, "--kaniko-dir", kdir,
            "--destination", dest, "--insecure-registry", host, "--log-format", "text",
            "--build-arg", f"BASE={base}", f"--custom-platform={platforms}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_REGISTRY", "DOCKER_CONFIG"))}
    env["PYTHONPATH"] = REPO
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    proc = run_sandboxed(argv, writable=[root, kdir, context], env=env, cwd=REPO, timeout=1200)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"kiln build for {platforms} failed:\n{proc.stderr[-4000:]}")
    for d in (root, kdir, context):
        shutil.rmtree(d, ignore_errors=True)
    return seconds


def report(name: str, mine: list[float], theirs: list[float], baseline: str) -> None:
    ratios = [m / t for m, t in zip(mine, theirs)]
    print(f"{name:<36} {statistics.median(mine):7.2f} s   {baseline} {statistics.median(theirs):7.2f} s   "
          f"ratio {statistics.median(ratios):5.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_emulation("aarch64")
    precompile(REPO)
    work = tempfile.mkdtemp(prefix="kiln-multi-bench-")
    running = start_registry("plain", os.path.join(work, "registry"))
    registry = running.registry
    try:
        base = make_base_images(registry, os.path.join(work, "images")).busybox_index
        kiln_build(work, base, "linux/amd64", registry.ref("bench/warmup:1"), registry.host)
        native, emulated, both = [], [], []
        for i in range(args.rounds):
            native.append(kiln_build(work, base, "linux/amd64", registry.ref(f"bench/amd64:{i}"), registry.host))
            emulated.append(kiln_build(work, base, "linux/arm64", registry.ref(f"bench/arm64:{i}"), registry.host))
            both.append(kiln_build(work, base, "linux/amd64,linux/arm64", registry.ref(f"bench/both:{i}"),
                                   registry.host))
        print(f"{args.rounds} rounds, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
        report("emulated arm64 build + push", emulated, native, "native amd64")
        report("two platforms, one run", both, [n + e for n, e in zip(native, emulated)], "two runs")
    finally:
        running.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The layer cache from an empty node: a RUN-heavy Dockerfile built twice, the cache in a registry.

    python3 bench/cache_bench.py            # 6 RUN steps (~3 s of shell loop each, ~24 MB of files written)
    python3 bench/cache_bench.py --quick    # lighter steps, for a quick look

A plain registry is started on 127.0.0.1 and the rig's busybox base image pushed to it. Each build runs
the real `executor` (`python3 -m executor`) in the rig's sandbox with a fresh root and a fresh kiln
directory (no local blobs, no local cache): everything the second build reuses comes from
`<destination>/cache` in the registry. Prints both wall times and their ratio, and fails (exit 1) when
the second build runs a RUN or takes more than 20% of the first's time.

Measured 2026-11-28 on the 2-core VM, two runs: first 22.2 s / 17.5 s, second 1.4 s / 1.75 s (ratio
0.06 / 0.10; 6 cache hits, no RUN). The second build is a fixed ~1.4-1.8 s (interpreter and sandbox
start, base pull, six cache lookups, extraction of ~24 MB, final push of config + manifest), so with
`--quick` (first build 2-6.6 s) the ratio is 0.4-0.7: the 20% target holds when the RUN steps are what
the first build spends its time on.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from tests.rig.images import make_base_images  # noqa: E402
from tests.rig.registry import start_registry  # noqa: E402
from tests.rig.sandbox import run_sandboxed  # noqa: E402


def dockerfile(base: str, loops: int, mb: int) -> str:
    steps = []
    for i in range(6):
        steps.append(f"RUN echo STEP-$(echo {i}) && i=0; while [ $i -lt {loops} ]; do i=$((i+1)); done; "
                     f"mkdir -p /data/{i} && dd if=/dev/urandom of=/data/{i}/blob bs=1M count={mb} 2>/dev/null && "
                     f"for n in $(seq 1 200); do echo $n > /data/{i}/f$n; done")
    return f"FROM {base}\nWORKDIR /data\n" + "\n".join(steps) + "\n"


def build(work: str, context: str, dest: str, host: str) -> tuple[float, str]:
    root = tempfile.mkdtemp(prefix="root-", dir=work)
    kdir = tempfile.mkdtemp(prefix="kaniko-", dir=work)
    argv = [sys.executable, "-m", "executor", "--context", context, "--root", root, "--kaniko-dir", kdir,
            "--destination", dest, "--insecure-registry", host, "--cache", "--log-format", "text"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_REGISTRY", "DOCKER_CONFIG"))}
    env["PYTHONPATH"] = REPO
    start = time.perf_counter()
    proc = run_sandboxed(argv, writable=[root, kdir, context], env=env, cwd=REPO, timeout=1200)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"build failed:\n{proc.stderr[-4000:]}")
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(kdir, ignore_errors=True)
    return seconds, proc.stdout + proc.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--dir", default="/tmp", help="scratch parent directory")
    a = ap.parse_args()
    loops, mb = (100_000, 1) if a.quick else (1_500_000, 4)
    work = tempfile.mkdtemp(prefix="kiln-cache-bench-", dir=a.dir)
    running = start_registry("plain", os.path.join(work, "registry"))
    try:
        images = make_base_images(running.registry, os.path.join(work, "images"))
        context = os.path.join(work, "context")
        os.makedirs(context)
        with open(os.path.join(context, "Dockerfile"), "w") as f:
            f.write(dockerfile(images.busybox_amd64, loops, mb))
        dest = running.registry.ref("bench/app:latest")
        first, log1 = build(work, context, dest, running.registry.host)
        second, log2 = build(work, context, dest, running.registry.host)
        ran1 = sum(f"STEP-{i}\n" in log1 for i in range(6))
        ran2 = sum(f"STEP-{i}\n" in log2 for i in range(6))
        result = {"first_build_s": round(first, 2), "second_build_s": round(second, 2),
                  "ratio": round(second / first, 3), "runs_first": ran1, "runs_second": ran2,
                  "cache_hits_second": log2.count("Using caching version of cmd: RUN")}
        print(json.dumps(result, indent=2))
        ok = ran2 == 0 and second <= 0.2 * first
        print("OK: second build <= 20% of the first" if ok else "FAIL: second build too slow or ran a RUN")
        return 0 if ok else 1
    finally:
        running.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

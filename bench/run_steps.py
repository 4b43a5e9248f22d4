#!/usr/bin/env python3
"""The per-RUN cost of kiln on a big root, this tree against another kiln tree, in the same run.

    python3 bench/run_steps.py --baseline-tree /dev/shm/kiln-before      # e.g. `git archive OLD | tar -x -C DIR`
    python3 bench/run_steps.py --baseline-tree DIR --rounds 7 --files 100000 --bytes 400000000

bench/pipeline.py's row "per trivial RUN on the big root" takes (build of `FROM big` + 11 trivial RUNs minus
the build with 1) / 10: exact in the mean, but each build pulls and extracts the 400 MB base, whose time swings
by seconds on a shared machine, so one round can read 0.05 s or 2 s a RUN. Here each round builds `FROM big`
+ 11 trivial RUNs once with each tree, in turn (A B A B ...), and takes the median of kiln's own step times
(`Timing: Command: RUN ...` at --verbosity debug: the RUN, its snapshot walk and the build loop's work around
them) of RUNs 2 to 11 (the first pays the pull and extraction). The ratio this/baseline is taken round by
round. The base (busybox plus a generated tree, bench/gen.py) is pushed to a private docker-registry on a
tmpfs; kiln runs as the tests run it, in the rig's sandbox with a scratch root. Asserts nothing about time.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

import pipeline  # noqa: E402
from tests.rig.registry import start_registry  # noqa: E402
from tests.rig.sandbox import run_sandboxed  # noqa: E402
from prepare import precompile  # noqa: E402

RUNS = 11
_STEP = re.compile(r"Timing: Command: RUN true (\d+): ([0-9.]+)s")


def build(tree: str, context: str, host: str, work: str) -> list[float]:
    """Seconds of RUN 2..RUNS of one build with the kiln of `tree`."""
    root = tempfile.mkdtemp(prefix="root-", dir=work)
    kdir = tempfile.mkdtemp(prefix="kaniko-", dir=work)
    argv = [sys.executable, "-m", "executor", "--context", context, "--root", root, "--kaniko-dir", kdir,
            "--insecure-registry", host, "--log-format", "text", "--no-push", "--verbosity", "debug"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_REGISTRY", "DOCKER_CONFIG"))}
    env["PYTHONPATH"] = tree
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        proc = run_sandboxed(argv, writable=[root, kdir, context], env=env, cwd=tree, timeout=1200)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(kdir, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"kiln of {tree} failed:\n{proc.stderr[-4000:]}")
    steps = {int(n): float(s) for n, s in _STEP.findall(proc.stderr + proc.stdout)}
    if sorted(steps) != list(range(RUNS)):
        raise SystemExit(f"kiln of {tree} printed step timings for RUNs {sorted(steps)}, not 0..{RUNS - 1}")
    return [steps[n] for n in range(1, RUNS)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-tree", required=True, help="another kiln checkout")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--bytes", type=int, default=400_000_000)
    parser.add_argument("--dir", default="/dev/shm", help="scratch directory (a tmpfs)")
    args = parser.parse_args()
    trees = {"this": REPO, "baseline": os.path.abspath(args.baseline_tree)}
    for tree in trees.values():
        precompile(tree)
    work = tempfile.mkdtemp(prefix="kiln-run-steps-", dir=args.dir)
    running = start_registry("plain", os.path.join(work, "registry"))
    try:
        ref, _ = pipeline.push_big_base(work, running.registry, args.files, args.bytes)
        context = pipeline.context_of(work, {"Dockerfile": f"FROM {ref}\n" + "".join(
            f"RUN true {i}\n" for i in range(RUNS))})
        print(f"{args.rounds} rounds, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, base {args.files} "
              f"files / {args.bytes // 1_000_000} MB; baseline {trees['baseline']}", flush=True)
        mine, theirs, ratios = [], [], []
        for i in range(args.rounds):
            a = statistics.median(build(trees["this"], context, running.registry.host, work))
            b = statistics.median(build(trees["baseline"], context, running.registry.host, work))
            mine.append(a), theirs.append(b), ratios.append(a / b)
            print(f"round {i + 1}: this {a * 1000:.0f} ms  baseline {b * 1000:.0f} ms  ratio {a / b:.2f}  "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
            time.sleep(0.5)
        print(f"per trivial RUN (median step): this {statistics.median(mine) * 1000:.0f} ms, baseline "
              f"{statistics.median(theirs) * 1000:.0f} ms, ratio {statistics.median(ratios):.2f} "
              f"({', '.join(f'{r:.2f}' for r in ratios)})")
    finally:
        running.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

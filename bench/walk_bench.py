#!/usr/bin/env python3
"""The change-detection walk with one walker against forked walkers on every usable CPU (snapshot/parallel.py),
measured in turn in the same run, on a tmpfs, with GNU find printing the same stat fields as the baseline.

    python3 bench/walk_bench.py                 # 100,000 files, 15 rounds
    python3 bench/walk_bench.py --files 20000 --rounds 5

Two cases per round: an unchanged root (the per-RUN cost of a RUN that wrote nothing), and a root where
every file's ctime moved (`chmod` to the same mode: each file must be hashed to settle it). Prints the
medians and the ratios; the CPUs free at the moment decide the result on a shared machine, so it also
prints how much CPU time each walk took (wall < CPU means the walkers ran at once).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import gen  # noqa: E402
from snapshot import IgnoreList, Snapshotter  # noqa: E402
from snapshot import parallel  # noqa: E402
from snapshot.diff import detect  # noqa: E402


def _cpu() -> float:
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _timed(fn) -> tuple[float, float]:
    c, t = _cpu(), time.perf_counter()
    fn()
    return time.perf_counter() - t, _cpu() - c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--dir", default="/dev/shm")
    args = ap.parse_args()
    n = parallel.usable_cpus()
    base = tempfile.mkdtemp(prefix="kiln-walk-bench-", dir=args.dir)
    try:
        root, work = f"{base}/root", f"{base}/work"
        os.mkdir(work)
        gen.make_tree(root, args.files, args.files * 500)
        snap = Snapshotter(root, IgnoreList(root, []), work)
        snap.reindex()
        time.sleep(0.2)
        snap.index.stamp(root)   # nothing racy: the unchanged case takes the fast path everywhere
        rows: dict[str, list[tuple[float, float]]] = {"find": [], "1 walker": [], f"{n} walkers": []}
        for _ in range(args.rounds):
            rows["find"].append(_timed(lambda: subprocess.run(
                ["find", root, "-printf", "%s %T@ %C@ %i %m %U %G\n"], stdout=subprocess.DEVNULL, check=True)))
            rows["1 walker"].append(_timed(lambda: detect(root, snap.ignore, snap.index, "exact", workers=1)))
            rows[f"{n} walkers"].append(_timed(lambda: detect(root, snap.ignore, snap.index, "exact", workers=n)))
        subprocess.run(["chmod", "-R", "u+w", root], check=True)      # same modes, every ctime moved
        hashed: dict[str, list[tuple[float, float]]] = {"1 walker": [], f"{n} walkers": []}
        for _ in range(max(3, args.rounds // 3)):
            hashed["1 walker"].append(_timed(lambda: detect(root, snap.ignore, snap.index, "exact", workers=1)))
            hashed[f"{n} walkers"].append(_timed(lambda: detect(root, snap.ignore, snap.index, "exact", workers=n)))
    finally:
        shutil.rmtree(base, ignore_errors=True)

    def med(xs: list[tuple[float, float]]) -> tuple[float, float]:
        return statistics.median(x[0] for x in xs), statistics.median(x[1] for x in xs)

    print(f"walk of {args.files:,} files on {args.dir}, {n} usable CPUs, medians of {args.rounds} rounds")
    print("| case | walkers | wall s | CPU s | ratio to 1 walker |")
    print("|---|---|---|---|---|")
    one = med(rows["1 walker"])[0]
    for name, xs in rows.items():
        w, c = med(xs)
        print(f"| unchanged root | {name} | {w:.3f} | {c:.3f} | {w / one:.2f} |")
    one = med(hashed["1 walker"])[0]
    for name, xs in hashed.items():
        w, c = med(xs)
        print(f"| every ctime moved (all hashed) | {name} | {w:.3f} | {c:.3f} | {w / one:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

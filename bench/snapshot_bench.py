#!/usr/bin/env python3
"""Benchmarks of kiln's filesystem engine against GNU tools, measured in the same run.

    python3 bench/snapshot_bench.py            # 100,000 files (~400 MB) and a 1 GB mixed layer
    python3 bench/snapshot_bench.py --small    # 10,000 files (~40 MB) and 100 MB, for a quick look

Everything runs under a scratch directory on a tmpfs (/dev/shm by default; --dir to change), since
disk timings on the VM swing by 10x with write-back. Baselines: GNU `tar -x` for extraction,
`tar -c | gzip -1` for layer writing, `find -printf` for a walk. Peak memory is the maximum RSS of a
child process doing only that job.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import gen  # noqa: E402
from snapshot import IgnoreList, Snapshotter  # noqa: E402
from snapshot.layer import write_layer  # noqa: E402


class T(float):
    """Wall seconds, with the CPU seconds (user + system, children included) in .cpu."""

    cpu: float

    def __new__(cls, wall: float, cpu: float) -> "T":
        obj = super().__new__(cls, wall)
        obj.cpu = cpu
        return obj


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn, *args, **kw):
    t, c = time.perf_counter(), _cpu()
    out = fn(*args, **kw)
    return T(time.perf_counter() - t, _cpu() - c), out


def sh(cmd: str) -> T:
    t, c = time.perf_counter(), _cpu()
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True)
    return T(time.perf_counter() - t, _cpu() - c)


def all_paths(root: str) -> list[str]:
    out = []
    for d, ds, fs in os.walk(root):
        for n in ds + fs:
            out.append(os.path.relpath(os.path.join(d, n), root))
    return out


def child(job: str, args: list[str]) -> dict:
    """Run one job in a fresh interpreter and report its time and peak RSS."""
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", job, *args],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """VmHWM of this process: unlike ru_maxrss it starts afresh at exec, so the parent's size
    before the fork does not count."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_child(job: str, args: list[str]) -> None:
    t = time.perf_counter()
    if job == "write":
        root, work, compression = args
        paths = all_paths(root)
        start, cpu = time.perf_counter(), time.process_time()
        w = write_layer(root, paths, [], work, compression)
        secs = time.perf_counter() - start
        extra = {"blob": w.layer.size, "path": w.layer.path, "cpu": time.process_time() - cpu}
    elif job == "extract":
        root, work, blob = args
        snap = Snapshotter(root, IgnoreList(root), work)
        start, cpu = time.perf_counter(), time.process_time()
        snap.extract(blob, "bench")
        secs = time.perf_counter() - start
        extra = {"entries": len(snap.index), "cpu": time.process_time() - cpu}
    else:
        raise SystemExit(f"unknown child job {job}")
    rss = peak_rss_mb()
    print(json.dumps({"seconds": secs, "total": time.perf_counter() - t, "maxrss_mb": rss, **extra}))


def row(label: str, ours: float, base: float | None, unit: str = "s", note: str = "") -> None:
    """One figure beside its baseline. Times show wall and CPU seconds: the machine is shared,
    and under load the CPU figures are the steadier comparison."""
    def fmt(x: float | None) -> str:
        if x is None:
            return " " * 19
        cpu = getattr(x, "cpu", None)
        return f"{x:8.3f}{unit:<3}" + (f" cpu {cpu:6.3f}" if cpu is not None else " " * 11)
    ratio = ""
    if base:
        ratio = f"ratio {ours / base:5.2f}"
        if getattr(ours, "cpu", None) and getattr(base, "cpu", None):
            ratio += f" (cpu {ours.cpu / base.cpu:5.2f})"
    print(f"  {label:<46} {fmt(ours)} | base {fmt(base)} {ratio}  {note}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--dir", default="/dev/shm")
    ap.add_argument("--child", nargs="+")
    a = ap.parse_args()
    if a.child:
        run_child(a.child[0], a.child[1:])
        return
    files, tree_bytes, mixed_bytes = (10_000, 40 << 20, 100 << 20) if a.small else (100_000, 400 << 20, 1 << 30)
    need = 3 * tree_bytes + 3 * mixed_bytes
    free = shutil.disk_usage(a.dir).free
    if free < need:
        raise SystemExit(f"{a.dir} has {free >> 20} MiB free; the benchmark needs about {need >> 20} MiB "
                         "(use --small, or --dir on a larger tmpfs)")
    fstype = subprocess.run(["stat", "-f", "-c", "%T", a.dir], capture_output=True, text=True).stdout.strip()
    if fstype != "tmpfs":
        print(f"note: {a.dir} is {fstype}, not tmpfs: disk write-back makes these timings unsteady")
    base = tempfile.mkdtemp(prefix="kiln-bench-", dir=a.dir)
    print(f"kiln snapshot benchmark: {files} files / {tree_bytes >> 20} MiB tree, "
          f"{mixed_bytes >> 20} MiB mixed layer, under {base} ({os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f})")
    try:
        bench(base, files, tree_bytes, mixed_bytes, fstype)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def bench(base: str, files: int, tree_bytes: int, mixed_bytes: int, fstype: str) -> None:
    src = f"{base}/src"
    stats = gen.make_tree(src, files, tree_bytes)
    blob = f"{base}/base.tar.gz"
    sh(f"tar -C {src} --numeric-owner -cf - . | python3 -c \"import sys,shutil; from isal import igzip; "
       f"w=igzip.open('{blob}','wb',compresslevel=1); shutil.copyfileobj(sys.stdin.buffer,w,1<<20); w.close()\"")
    print(f"  generated {stats.files} files, {stats.dirs} dirs, {stats.bytes / 1e6:.0f} MB; "
          f"base layer {os.path.getsize(blob) / 1e6:.0f} MB gzip")
    work = f"{base}/work"
    os.makedirs(work)

    # -- extraction -------------------------------------------------------------------------------
    print(f"extraction of the one-layer base ({fstype})")
    os.makedirs(f"{base}/gnu")
    t_tar = sh(f"tar -C {base}/gnu -xzf {blob}")
    shutil.rmtree(f"{base}/gnu")
    root = f"{base}/root"
    os.makedirs(root)
    snap = Snapshotter(root, IgnoreList(root), work)
    t_ext, _ = timed(snap.extract, blob, "base")
    row("extract + index (kiln)", t_ext, t_tar, note="target <= 3.5 s at 100k files")
    os.makedirs(f"{base}/root3")
    res_i = child("extract", [f"{base}/root3", work, blob])
    row("same in a child process, for its memory", T(res_i["seconds"], res_i["cpu"]), t_tar,
        note=f"peak RSS {res_i['maxrss_mb']:.0f} MB with {res_i['entries']} index entries")
    shutil.rmtree(f"{base}/root3")

    # -- walks and snapshots ----------------------------------------------------------------------
    print("index and change detection")
    t_find = sh(f"find {root} -printf '%i %s %T@ %C@ %m %U %G %y %l\\n' > /dev/null")
    t_first, layer = timed(snap.snapshot)
    row("first snapshot after extraction (racy hashed)", t_first, t_find,
        note=f"hashed {snap.last_changes.hashed}, layer={layer is not None}")
    t_snap, layer = timed(snap.snapshot)
    row("snapshot, unchanged root (exact)", t_snap, t_find, note="target <= 0.6 s at 100k files")
    assert layer is None
    for mode in ("redo", "time", "full"):
        snap.mode = mode
        t_mode, _ = timed(snap.snapshot)
        row(f"snapshot, unchanged root ({mode})", t_mode, t_find,
            note=f"hashed {snap.last_changes.hashed}" if mode == "full" else "")
    snap.mode = "exact"
    t_reidx, _ = timed(snap.reindex)
    row("reindex (full walk + xattrs)", t_reidx, t_find)
    rng = random.Random(7)
    paths = [p for p in snap.index.entries if p.endswith(".dat")]
    victims = rng.sample(paths, len(paths) // 100)
    changed_bytes = 0
    for p in victims:
        with open(f"{root}/{p}", "ab") as f:
            f.write(b"changed")
        changed_bytes += os.path.getsize(f"{root}/{p}")
    t_one, layer = timed(snap.snapshot)
    row(f"snapshot, 1% changed ({len(victims)} files, layer incl.)", t_one, t_find,
        note=f"{len(snap.last_changes.changed)} archived")

    # -- layer writing ------------------------------------------------------------------------------
    print("layer writing, mixed content (MB/s of tar input; higher is better)")
    mixed = f"{base}/mixed"
    ms = gen.make_mixed_files(mixed, mixed_bytes)
    t_base = sh(f"tar -C {mixed} --numeric-owner -cf - . | gzip -1 > {base}/baseline.tar.gz")
    tar_mb = (mixed_bytes + ms.files * 1024) / 1e6
    res = child("write", [mixed, work, "gzip"])
    row("write gzip (isal 1), MB/s of tar input", tar_mb / res["seconds"], tar_mb / t_base, "MB/s",
        note=f"target >= 250 MB/s; {tar_mb / res['cpu']:.0f} MB per CPU-second; "
             f"peak RSS {res['maxrss_mb']:.0f} MB (target < 150 MB)")
    mixed_blob = res["path"]
    res_z = child("write", [mixed, work, "zstd"])
    row("write zstd 3, MB/s of tar input", tar_mb / res_z["seconds"], tar_mb / t_base, "MB/s",
        note=f"{tar_mb / res_z['cpu']:.0f} MB per CPU-second; peak RSS {res_z['maxrss_mb']:.0f} MB")
    os.unlink(res_z["path"])
    res_n = child("write", [mixed, work, "none"])
    row("write uncompressed, MB/s of tar input", tar_mb / res_n["seconds"], None, "MB/s",
        note=f"peak RSS {res_n['maxrss_mb']:.0f} MB")
    os.unlink(res_n["path"])
    shutil.rmtree(mixed)
    os.makedirs(f"{base}/gnu-mixed")
    t_tar_m = sh(f"tar -C {base}/gnu-mixed -xzf {mixed_blob}")
    shutil.rmtree(f"{base}/gnu-mixed")
    os.makedirs(f"{base}/root2")
    res_e = child("extract", [f"{base}/root2", work, mixed_blob])
    row("extract the mixed gzip layer (child)", T(res_e["seconds"], res_e["cpu"]), t_tar_m,
        note=f"peak RSS {res_e['maxrss_mb']:.0f} MB, {res_e['entries']} entries")
    shutil.rmtree(f"{base}/root2")
    os.unlink(mixed_blob)
    res_t = child("write", [root, work, "gzip"])
    tree_mb = (stats.bytes + (stats.files + stats.dirs) * 1024) / 1e6
    t_base2 = sh(f"tar -C {root} --numeric-owner -cf - . | gzip -1 > {base}/baseline2.tar.gz")
    row(f"write gzip, {files}-file tree, MB/s", tree_mb / res_t["seconds"], tree_mb / t_base2, "MB/s",
        note=f"peak RSS {res_t['maxrss_mb']:.0f} MB")


if __name__ == "__main__":
    main()

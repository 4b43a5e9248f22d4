#!/usr/bin/env python3
"""Small builds, the kind users run most (issue 21), each against a baseline measured in the same run.

    python3 bench/small_builds.py              # 5 rounds of each row
    python3 bench/small_builds.py --rounds 9

Rows (a round runs kiln and its baseline one after the other, so a drift of the machine hits both):

* metadata-only: `FROM debian:bookworm` + LABEL/ENV/EXPOSE/USER/CMD, built and pushed by kiln, against
  `skopeo copy` of that base between two repositories of the same registry (what such a build is at the
  limit: the base's layers by reference and a new config). Also counts the files kiln wrote into its root
  (the target is none).
* small Dockerfiles: a few metadata lines, a COPY, a RUN, on busybox and on debian, built and pushed by
  kiln; the baseline is the metadata-only row's skopeo copy (docker build needs a daemon: the figures
  against docker build and kaniko live in docs/performance.md, measured by hand).

kiln runs as the tests run it: `python -m executor` in the rig's sandbox with a scratch root and a fresh
kiln directory per build (nothing cached between builds), its bytecode compiled first (the executor image
ships it compiled). A plain docker-registry on 127.0.0.1 holds the rig's base images (busybox from
Debian's busybox-static, debian:bookworm from mmdebstrap: cached under /var/cache/kiln-tests).
Prints medians, the ratio per round and its median. Asserts nothing about time.
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

from tests.rig.images import make_base_images, push_debian  # noqa: E402
from tests.rig.registry import start_registry  # noqa: E402
from tests.rig.sandbox import run_sandboxed  # noqa: E402

METADATA = "LABEL org.example.team=bench\nENV APP_HOME=/app LANG=C.UTF-8\nEXPOSE 8080\nUSER 1000\n" \
           "CMD [\"/bin/sh\"]\n"


def kiln_build(work: str, files: dict[str, str], dest: str, host: str) -> tuple[float, int]:
    """Seconds of one build and push, and how many files it left in its root."""
    context = tempfile.mkdtemp(prefix="ctx-", dir=work)
    for name, text in files.items():
        with open(os.path.join(context, name), "w") as f:
            f.write(text)
    root = tempfile.mkdtemp(prefix="root-", dir=work)
    kdir = tempfile.mkdtemp(prefix="kaniko-", dir=work)
    argv = [sys.executable, "-m", "executor", "--context", context, "--root", root, "--kaniko-dir", kdir,
            "--destination", dest, "--insecure-registry", host, "--log-format", "text"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_REGISTRY", "DOCKER_CONFIG"))}
    env["PYTHONPATH"] = REPO
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    proc = run_sandboxed(argv, writable=[root, kdir, context], env=env, cwd=REPO, timeout=600)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"kiln build failed:\n{proc.stderr[-4000:]}")
    written = sum(len(dirs) + len(names) for _, dirs, names in os.walk(root))
    for d in (root, kdir, context):
        shutil.rmtree(d, ignore_errors=True)
    return seconds, written


def skopeo_copy(src: str, dest: str) -> float:
    start = time.perf_counter()
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "-q",
                    f"docker://{src}", f"docker://{dest}"], check=True, capture_output=True)
    return time.perf_counter() - start


def report(name: str, mine: list[float], theirs: list[float], baseline: str) -> None:
    ratios = [m / t for m, t in zip(mine, theirs)]
    print(f"{name:<34} kiln {statistics.median(mine):6.2f} s   {baseline} {statistics.median(theirs):6.2f} s   "
          f"ratio {statistics.median(ratios):5.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(REPO, "executor"),
                    os.path.join(REPO, "snapshot")], check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""})
    work = tempfile.mkdtemp(prefix="kiln-small-bench-")
    running = start_registry("plain", os.path.join(work, "registry"))
    registry = running.registry
    try:
        images = make_base_images(registry, os.path.join(work, "images"))
        debian = push_debian(registry, os.path.join(work, "debian"))
        busybox = images.busybox_amd64
        rows = {
            "metadata-only, debian, push": {"Dockerfile": f"FROM {debian}\n{METADATA}"},
            "small, busybox (COPY + RUN)": {"Dockerfile": f"FROM {busybox}\nCOPY app.sh /app/\n"
                                                          f"RUN sh /app/app.sh > /app/out\n{METADATA}",
                                            "app.sh": "echo hello\n"},
            "small, debian (COPY + RUN)": {"Dockerfile": f"FROM {debian}\nWORKDIR /app\nCOPY app.sh /app/\n"
                                                         "RUN sh /app/app.sh > /app/out\n" + METADATA,
                                           "app.sh": "echo hello\n"},
        }
        kiln_build(work, rows["metadata-only, debian, push"], registry.ref("bench/warmup:1"), registry.host)
        times: dict[str, list[float]] = {name: [] for name in rows}
        written: dict[str, list[int]] = {name: [] for name in rows}
        copies: list[float] = []
        for i in range(args.rounds):
            copies.append(skopeo_copy(debian, registry.ref(f"bench/copy:{i}")))
            for n, (name, files) in enumerate(rows.items()):
                seconds, files_written = kiln_build(work, files, registry.ref(f"bench/row{n}:{i}"), registry.host)
                times[name].append(seconds)
                written[name].append(files_written)
        print(f"{args.rounds} rounds, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
        for name in rows:
            report(name, times[name], copies, "skopeo copy")
            print(f"{'':<34} files kiln wrote into its root: {statistics.median(written[name]):.0f}")
    finally:
        running.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

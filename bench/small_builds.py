#!/usr/bin/env python3
"""Small builds, the kind users run most (issue 21), each against a baseline measured in the same run.

    python3 bench/small_builds.py                         # 5 rounds of the fixed rows, the corpus once
    python3 bench/small_builds.py --rounds 9 --corpus-rounds 2
    python3 bench/small_builds.py --no-corpus             # the fixed rows only (no dockerd)
    python3 bench/small_builds.py --kaniko /path/to/executor   # kaniko side by side (built by hand, see
                                                               # docs/performance.md; never built here)

Rows (a round runs kiln and its baselines one after the other, so a drift of the machine hits all of them):

* metadata-only: `FROM debian:bookworm` + LABEL/ENV/EXPOSE/USER/CMD, built and pushed by kiln, against
  `skopeo copy` of that base between two repositories of the same registry (what such a build is at the
  limit: the base's layers by reference and a new config). Also counts the files kiln wrote into its root
  (the target is none). Every round pushes to fresh repositories (the layers are mounted, for kiln as for
  skopeo).
* small, busybox / debian: a few metadata lines, a COPY, a RUN, built and pushed; against the same skopeo copy.
* corpus: every parity case (tests/e2e/parity/cases) that builds without secrets, an HTTP server or an ONBUILD
  parent and that the reference docker builds: busybox and Debian bases, a few lines to a few stages each.
  Built and pushed by kiln, and by `docker build` + `docker push` on a private dockerd (Debian 13's docker,
  BuildKit; its bases pulled first, so docker builds with its base cached while kiln pulls it every build, as
  in production). Prints the medians and the median of the per-case ratios, for all cases and by base.
  `--corpus-base debian` builds the cases written against busybox on Debian instead (issue 21's second row:
  real-world Dockerfiles mostly start from Debian); those docker cannot build there are left out.
* with --kaniko: the same builds by a kaniko executor in a fresh chroot per build (unshare + chroot, /dev
  bind-mounted, the context in /workspace), as issue 21's table ran kaniko 1.23.2.

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
from collections.abc import Callable
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from tests.rig.images import make_base_images, push_debian  # noqa: E402
from tests.rig.registry import start_registry  # noqa: E402
from tests.rig.sandbox import run_sandboxed  # noqa: E402
from prepare import precompile  # noqa: E402

METADATA = "LABEL org.example.team=bench\nENV APP_HOME=/app LANG=C.UTF-8\nEXPOSE 8080\nUSER 1000\n" \
           "CMD [\"/bin/sh\"]\n"


@dataclass
class Job:
    """One Dockerfile and its context, with what each builder needs to build it."""
    name: str
    context: str                      # a directory holding the Dockerfile
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    kiln_args: list[str] = field(default_factory=list)
    base: str = "busybox"             # "busybox" | "debian": the row a corpus case counts in


def write_context(work: str, files: dict[str, str]) -> str:
    context = tempfile.mkdtemp(prefix="ctx-", dir=work)
    for name, text in files.items():
        with open(os.path.join(context, name), "w") as f:
            f.write(text)
    return context


def kiln_build(work: str, job: Job, dest: str, host: str, tree: str = REPO) -> tuple[float, int]:
    """Seconds of one build and push by the kiln of `tree` (this checkout by default), and how many files it
    left in its root."""
    root = tempfile.mkdtemp(prefix="root-", dir=work)
    kdir = tempfile.mkdtemp(prefix="kaniko-", dir=work)
    argv = [sys.executable, "-m", "executor", "--context", job.context, "--root", root, "--kaniko-dir", kdir,
            "--destination", dest, "--insecure-registry", host, "--log-format", "text", *job.kiln_args]
    for k, v in job.build_args.items():
        argv += ["--build-arg", f"{k}={v}"]
    if job.target:
        argv += ["--target", job.target]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_REGISTRY", "DOCKER_CONFIG"))}
    env["PYTHONPATH"] = tree
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    proc = run_sandboxed(argv, writable=[root, kdir, job.context], env=env, cwd=tree, timeout=600)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"kiln build of {job.name} failed:\n{proc.stderr[-4000:]}")
    written = sum(len(dirs) + len(names) for _, dirs, names in os.walk(root))
    for d in (root, kdir):
        shutil.rmtree(d, ignore_errors=True)
    return seconds, written


def chroot_build(work: str, job: Job, prefix: str, install: Callable[[str], None], argv: list[str]) -> float | None:
    """Seconds of one build and push by a builder on `/` of a fresh chroot, as in its own image (None when it
    refused the Dockerfile). `install` puts the builder into the new root; the context goes to /workspace."""
    root = tempfile.mkdtemp(prefix=prefix, dir=work)
    try:
        for d in ("proc", "dev", "etc", "tmp"):
            os.makedirs(os.path.join(root, d))
        install(root)
        shutil.copytree(job.context, os.path.join(root, "workspace"), symlinks=True, dirs_exist_ok=True)
        shutil.copy2("/etc/hosts", os.path.join(root, "etc", "hosts"))
        for k, v in job.build_args.items():
            argv += ["--build-arg", f"{k}={v}"]
        if job.target:
            argv += ["--target", job.target]
        cmd = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork",
               f"--mount-proc={root}/proc", "sh", "-c", 'mount --rbind /dev "$0/dev" && exec chroot "$0" "$@"',
               root, *argv]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=600)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
            print(f"  {prefix.strip('-')} refused {job.name}: {tail[0][:200]}", file=sys.stderr)
            return None
        return seconds
    finally:
        shutil.rmtree(root, ignore_errors=True)


def kaniko_build(executor: str, work: str, job: Job, dest: str) -> float | None:
    """Seconds of one kaniko build and push in a fresh chroot (None when kaniko refused the Dockerfile)."""
    def install(root: str) -> None:
        os.makedirs(os.path.join(root, "kaniko"))
        try:
            os.link(executor, os.path.join(root, "kaniko", "executor"))
        except OSError:
            shutil.copy2(executor, os.path.join(root, "kaniko", "executor"))

    return chroot_build(work, job, "kaniko-root-", install,
                        ["/kaniko/executor", "--context", "dir:///workspace", "--dockerfile", "/workspace/Dockerfile",
                         "--destination", dest, "--insecure", "--insecure-pull"])


def kiln_image_build(rootfs: str, work: str, job: Job, dest: str, host: str) -> float:
    """Seconds of one build and push by kiln's executor image (its root file system `rootfs`, unpacked), run
    exactly as kaniko_build runs kaniko: `/kaniko/executor` on `/` of a fresh chroot. The image's files are
    hard-linked into each new root (kiln never writes to its own files; its working files are new ones)."""
    def install(root: str) -> None:
        subprocess.run(["cp", "-al", f"{rootfs}/.", root], check=True)

    seconds = chroot_build(work, job, "kiln-root-", install,
                           ["/kaniko/executor", "--context", "dir:///workspace", "--dockerfile", "/workspace/Dockerfile",
                            "--destination", dest, "--insecure-registry", host, *job.kiln_args])
    if seconds is None:
        raise SystemExit(f"kiln's executor image failed to build {job.name}")
    return seconds


def executor_image_rootfs(registry, work: str) -> str:
    """The root file system of kiln's executor image built from this checkout (tests/test_executor_image's
    cache: built once per source state, by kiln itself), unpacked under `work`."""
    from tests.test_executor_image.kilnimage import kiln_built_image

    return os.path.join(kiln_built_image(registry, "executor", work).bundle, "rootfs")


def sandbox_overhead(work: str, runs: int = 5) -> float:
    """Median seconds the rig's sandbox adds to a command (kiln runs in it here; the executor image does not)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run_sandboxed(["/bin/true"], writable=[work], cwd=REPO)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def chroot_overhead(work: str, runs: int = 5) -> float:
    """Median seconds chroot_build's harness adds to every kaniko and executor-image time (a fresh root, the
    context copied in, unshare, /dev bound, chroot), measured with a static busybox `true` as the builder:
    skopeo pays none of it."""
    job = Job("harness", write_context(work, {"Dockerfile": "FROM scratch\n"}))

    def install(root: str) -> None:
        os.makedirs(os.path.join(root, "bin"))
        shutil.copy2("/bin/busybox", os.path.join(root, "bin", "busybox"))

    times = [chroot_build(work, job, "harness-root-", install, ["/bin/busybox", "true"]) for _ in range(runs)]
    return statistics.median(t for t in times if t is not None)


def skopeo_copy(src: str, dest: str) -> float:
    start = time.perf_counter()
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "-q",
                    f"docker://{src}", f"docker://{dest}"], check=True, capture_output=True)
    return time.perf_counter() - start


def docker_build(daemon, job: Job, dest: str) -> float:
    """Seconds of `docker build` + `docker push` of one job (BuildKit, base cached in the daemon)."""
    argv = ["build", "--network", "host", "--progress", "plain", "-t", dest]
    for k, v in job.build_args.items():
        argv += ["--build-arg", f"{k}={v}"]
    if job.target:
        argv += ["--target", job.target]
    start = time.perf_counter()
    for step in (argv + [job.context], ["push", dest]):
        proc = daemon.docker(*step)
        if proc.returncode != 0:
            raise SystemExit(f"docker {step[0]} of {job.name} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def report(name: str, mine: list[float], theirs: list[float], baseline: str, who: str = "kiln") -> None:
    ratios = [m / t for m, t in zip(mine, theirs)]
    print(f"{name:<34} {who} {statistics.median(mine):6.2f} s   {baseline} {statistics.median(theirs):6.2f} s   "
          f"ratio {statistics.median(ratios):5.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)})")


def corpus_jobs(work: str, bases: dict[str, str], docker_version: tuple[int, ...], on_debian: bool = False) -> list[Job]:
    """The parity cases every builder can build as a user would: no secrets, HTTP server, ONBUILD parent, or
    expected failure. `on_debian`: the cases written against busybox (their `BASE`) get Debian instead, the base
    most real-world Dockerfiles start from."""
    from tests.e2e.parity.caseload import load_cases

    jobs = []
    for case in load_cases():
        if case.fail or case.secrets or case.http or case.onbuild or not case.runs_with(docker_version):
            continue
        ctx = case.make_context(os.path.join(work, "corpus", case.name))
        extra = {k: bases[k] for k in ("BASE_DOCKER", "BASE_DOCKER_LIST", "BASE_AMD64")}
        args = case.build_args(bases["DEBIAN"] if on_debian else bases["BASE"], bases["DEBIAN"], extra=extra)
        jobs.append(Job(case.name, ctx, args, case.target, list(case.kiln_args),
                        "debian" if case.debian or on_debian else "busybox"))
    return jobs


def _versus(mine_name: str, mine: list[float], theirs_name: str, theirs: list[float]) -> str:
    """Both medians and the median of the per-case ratios, as one line's text."""
    return (f"{mine_name} median {statistics.median(mine):5.2f} s, {theirs_name} median "
            f"{statistics.median(theirs):5.2f} s, per-case ratio {mine_name}/{theirs_name.split()[0]} median "
            f"{statistics.median(a / b for a, b in zip(mine, theirs)):5.2f}")


def run_corpus(args, work: str, registry, rootfs: str | None, bases: dict[str, str]) -> None:
    from tests.e2e.parity.caseload import engine_version
    from tests.e2e.parity.dockerd import start_dockerd

    daemon = start_dockerd()
    try:
        for ref in {bases[k] for k in ("BASE", "DEBIAN", "BASE_DOCKER", "BASE_DOCKER_LIST", "BASE_AMD64")}:
            pulled = daemon.docker("pull", "-q", ref)
            if pulled.returncode != 0:
                raise SystemExit(f"docker pull {ref} failed: {pulled.stderr[-2000:]}")
        jobs = corpus_jobs(work, bases, engine_version(daemon.version), args.corpus_base == "debian")
        if args.cases:
            jobs = jobs[:args.cases]
        if args.corpus_base == "debian":
            # written for busybox: a case whose commands Debian lacks (busybox's own applets and options) is left
            # out when docker, the reference, cannot build it on Debian either (its first docker build, untimed)
            kept = []
            for job in jobs:
                try:
                    docker_build(daemon, job, registry.ref("bench/debian-probe:1"))
                    kept.append(job)
                except SystemExit:
                    print(f"  left out on Debian (docker cannot build it there): {job.name}", flush=True)
            jobs = kept
        kiln_t: dict[str, list[float]] = {j.name: [] for j in jobs}
        docker_t: dict[str, list[float]] = {j.name: [] for j in jobs}
        kaniko_t: dict[str, list[float]] = {j.name: [] for j in jobs}
        image_t: dict[str, list[float]] = {j.name: [] for j in jobs}
        for i in range(args.corpus_rounds):
            for n, job in enumerate(jobs):
                kiln_t[job.name].append(kiln_build(work, job, registry.ref(f"bench/kiln-{n}-{i}:1"), registry.host)[0])
                docker_t[job.name].append(docker_build(daemon, job, registry.ref(f"bench/docker-{n}-{i}:1")))
                if rootfs:
                    image_t[job.name].append(kiln_image_build(rootfs, work, job, registry.ref(f"bench/image-{n}-{i}:1"),
                                                              registry.host))
                if args.kaniko:
                    seconds = kaniko_build(args.kaniko, work, job, registry.ref(f"bench/kaniko-{n}-{i}:1"))
                    if seconds is not None:
                        kaniko_t[job.name].append(seconds)
        print(f"corpus: {len(jobs)} parity cases on {args.corpus_base}, {args.corpus_rounds} round(s), docker {daemon.version} "
              f"(BuildKit, base cached), load {os.getloadavg()[0]:.1f}")
        for label, keep in (("all", lambda j: True), ("busybox", lambda j: j.base == "busybox"),
                            ("debian", lambda j: j.base == "debian")):
            chosen = [j for j in jobs if keep(j)]
            if not chosen:
                continue
            k = [statistics.median(kiln_t[j.name]) for j in chosen]
            d = [statistics.median(docker_t[j.name]) for j in chosen]
            print(f"  {label:<8} {len(chosen):3d} cases: {_versus('kiln', k, 'docker build+push', d)}")
            if rootfs:
                ki = [statistics.median(image_t[j.name]) for j in chosen]
                print(f"  {'':<8} kiln's executor image (chroot, as kaniko runs): {_versus('image', ki, 'docker', d)}")
            if args.kaniko:
                both = [j for j in chosen if kaniko_t[j.name]]
                if both:
                    ka = [statistics.median(kaniko_t[j.name]) for j in both]
                    for who, times in [("kiln", kiln_t)] + ([("kiln image", image_t)] if rootfs else []):
                        mine = [statistics.median(times[j.name]) for j in both]
                        print(f"  {'':<8} {len(both):3d} cases kaniko built: {_versus(who, mine, 'kaniko', ka)}")
    finally:
        daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the fixed rows")
    parser.add_argument("--corpus-rounds", type=int, default=1, help="rounds of the corpus (each case per round)")
    parser.add_argument("--cases", type=int, default=0, help="only the first N corpus cases (0: all)")
    parser.add_argument("--no-corpus", action="store_true", help="skip the corpus (needs no dockerd)")
    parser.add_argument("--corpus-base", choices=("busybox", "debian"), default="busybox",
                        help="the base of the corpus cases written against busybox: busybox as written, or debian "
                        "(the base most real-world Dockerfiles start from; a case docker cannot build there is left out)")
    parser.add_argument("--kaniko", help="a kaniko executor binary to measure side by side (built by hand)")
    parser.add_argument("--executor-image", action="store_true",
                        help="also run kiln as its executor image runs (built by kiln from this checkout's Containerfile, "
                        "cached like the executor-image tests'): /kaniko/executor on / of a fresh chroot, as kaniko runs")
    parser.add_argument("--baseline-tree", help="another kiln checkout (e.g. `git archive` of an older commit), "
                        "built right after this one in every round of the fixed rows: before/after in one run")
    args = parser.parse_args()
    for tree in filter(None, (REPO, args.baseline_tree)):
        precompile(tree)
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
        jobs = {name: Job(name, write_context(work, files)) for name, files in rows.items()}
        rootfs = executor_image_rootfs(registry, work) if args.executor_image else None
        kiln_build(work, jobs["metadata-only, debian, push"], registry.ref("bench/warmup:1"), registry.host)
        times: dict[str, list[float]] = {name: [] for name in rows}
        kaniko: dict[str, list[float]] = {name: [] for name in rows}
        baseline: dict[str, list[float]] = {name: [] for name in rows}
        image_t: dict[str, list[float]] = {name: [] for name in rows}
        written: dict[str, list[int]] = {name: [] for name in rows}
        copies: list[float] = []
        for i in range(args.rounds):
            copies.append(skopeo_copy(debian, registry.ref(f"bench/copy-{i}:1")))
            for n, (name, job) in enumerate(jobs.items()):
                seconds, files_written = kiln_build(work, job, registry.ref(f"bench/row{n}-{i}:1"), registry.host)
                times[name].append(seconds)
                written[name].append(files_written)
                if rootfs:
                    image_t[name].append(kiln_image_build(rootfs, work, job, registry.ref(f"bench/image-row{n}-{i}:1"),
                                                          registry.host))
                if args.kaniko:
                    k = kaniko_build(args.kaniko, work, job, registry.ref(f"bench/kaniko-row{n}-{i}:1"))
                    kaniko[name].append(k if k is not None else float("nan"))
                if args.baseline_tree:
                    baseline[name].append(kiln_build(work, job, registry.ref(f"bench/base-row{n}-{i}:1"),
                                                     registry.host, args.baseline_tree)[0])
        print(f"{args.rounds} rounds, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
        print(f"{'(the rig sandbox alone, in every kiln time):':<34} {sandbox_overhead(work):.3f} s for /bin/true")
        if rootfs or args.kaniko:
            print(f"{'(the chroot harness alone, in every kaniko and kiln image time):':<34} "
                  f"{chroot_overhead(work):.3f} s for a static busybox true")
        for name in rows:
            report(name, times[name], copies, "skopeo copy")
            if args.kaniko:
                report("", times[name], kaniko[name], "kaniko")
            if args.baseline_tree:
                report("", times[name], baseline[name], "baseline kiln")
            if rootfs:
                report("", image_t[name], copies, "skopeo copy", who="kiln image")
                if args.kaniko:
                    report("", image_t[name], kaniko[name], "kaniko", who="kiln image")
            print(f"{'':<34} files kiln wrote into its root: {statistics.median(written[name]):.0f}")
        if not args.no_corpus:
            run_corpus(args, work, registry, rootfs, {"BASE": images.busybox_index, "DEBIAN": debian,
                                              "BASE_DOCKER": images.busybox_docker,
                                              "BASE_DOCKER_LIST": images.busybox_docker_list,
                                              "BASE_AMD64": images.busybox_amd64})
    finally:
        running.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

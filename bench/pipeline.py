#!/usr/bin/env python3
"""The build pipeline (issue 17), each row against docker build (or GNU tar, curl, skopeo) in the same run.

    python3 bench/pipeline.py                    # 3 rounds, the 100k-file / 400 MB base
    python3 bench/pipeline.py --rounds 1 --small # 10k files / 40 MB, 100 MB layer: a quick look
    python3 bench/pipeline.py --write-doc        # also writes the table into docs/performance.md
    python3 bench/pipeline.py --rows realistic --rounds 5 --docker-root /opt/kiln-docker/sid
                                                 # one row alone, against today's docker (28.5, BuildKit)

Rows (a round runs kiln and its baseline one after the other, so a drift of the machine hits both):

* per trivial RUN on a big root: the build of `FROM big` + 11 trivial RUNs minus the build with 1, over 10;
  kiln pulls and extracts its base every build (as in production), docker build (BuildKit, `--no-cache`)
  has the base in its store;
* a 500 MB incompressible layer, build + push: `RUN head -c 500M /dev/urandom`, kiln with `--destination`
  against `docker build` then `docker push`, to the same registry;
* pull + extract + 2 snapshots of the big base on a tmpfs (kiln's engine in a child process, its peak RSS
  measured) against GNU `tar -xzf` of the same blob on the same tmpfs;
* peak RSS of pulling and extracting one 1 GB gzip layer of mixed files (a child process, VmHWM);
* small builds: the median of five small Dockerfiles on busybox, build + push, against docker build + push
  (with `--executor-image`, also kiln's executor image run as users and bench/small_builds.py run it);
* realistic build, build + push, minus apt: `FROM` the rig's debian:bookworm (mmdebstrap minbase, cached in
  /var/cache/kiln-tests), a RUN that apt-gets gcc, libc6-dev and make from Debian's archive (the mirror the
  base's sources.list names; `apt-get clean` as Debian's docker images do), a COPY of a generated C project of
  2,000 files (bench/gen.py: 150 modules, 1,848 headers), `make -j$(nproc)` of it (~2.5 s of compiling on an
  idle machine), pushed to the registry. "Minus apt": the apt-get commands time themselves inside their RUN
  (`date +%s.%N` before `apt-get update` and after `apt-get clean`, printed as `BENCH-APT t0 t1`, read from
  kiln's output and from BuildKit's `--progress plain`) and each side's wall time of build + push has its own
  apt time of that round taken off. Only the commands' own time goes: the RUN's set-up, the snapshot of the
  toolchain's ~2,800 files and that layer's compression and upload stay in, on both sides (a step duration
  would not do: kiln's first step includes the base's pull and extraction, BuildKit's excludes its export).
  make's own time is printed the same way (not subtracted: a slower compile under load shows there), and the
  ratio with it taken off too (each builder's own work, steadier when other work shares the machine). kiln's
  $BENCHMARK_FILE phases and BuildKit's step durations (with `docker push` timed apart) print below the row;
* throughput: a fresh random 500 MB blob each round, uploaded by kiln's push code (HEAD, POST, one PUT)
  against `curl -T` doing the same POST + PUT, and `skopeo copy` of an image holding it; downloaded by kiln's
  streaming download (which writes the file and verifies the digest) against `curl -o` (no digest),
  `curl | tee FILE | sha256sum` (the same work as kiln) and `skopeo copy ... dir:`. All to/from a tmpfs.

The docker baseline is the machine's dockerd 20.10 (BuildKit), started here by hand with its own data-root,
exec-root and socket (overlay2, no iptables, no bridge: builds use `--network host`) and stopped by PID; with
`--docker-root` a docker unpacked by scripts/docker-reference.sh (trixie's 26.1, sid's 28.5) instead. docker
pulls each base once before a row's rounds, so it builds with its base cached.
The registry is a plain docker-registry on 127.0.0.1 with its storage on the same tmpfs. kiln runs as the
tests run it: `python -m executor` in the rig's sandbox, a scratch root, a fresh kiln directory per build.
Prints medians and per-round ratios. Asserts nothing about time.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

import gen  # noqa: E402
from tests.rig.images import (Layout, add_image, make_base_images, make_busybox_rootfs, push_debian,  # noqa: E402
                              skopeo_copy, tar_dir)
from tests.rig.registry import start_registry  # noqa: E402
from tests.rig.sandbox import run_sandboxed  # noqa: E402
from prepare import precompile  # noqa: E402

DOC = os.path.join(REPO, "docs", "performance.md")
HEADING = "## The build pipeline (issue 17)"
ALL_ROWS = {"runs", "layer", "pull", "memory", "small", "realistic", "throughput"}
ROWS: list[tuple[str, ...]] = []      # (row, kiln, baseline, what the baseline is, ratio, issue 17's target)


# ---- plumbing ------------------------------------------------------------------------------------------
def sh(cmd: str, **kw) -> float:
    start = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True, **kw)
    return time.perf_counter() - start


def record(name: str, mine: list[float], theirs: list[float], baseline: str, unit: str = "s",
           higher_is_better: bool = False, target: str = "") -> None:
    ratios = [m / t for m, t in zip(mine, theirs)]
    m, t, r = statistics.median(mine), statistics.median(theirs), statistics.median(ratios)
    rounds = ", ".join(f"{x:.2f}" for x in ratios)
    print(f"{name:<48} kiln {m:8.2f} {unit}   {baseline:<22} {t:8.2f} {unit}   ratio {r:5.2f} ({rounds})",
          flush=True)
    ROWS.append((name, f"{m:.2f} {unit}", f"{t:.2f} {unit}", baseline,
                 f"{r:.2f} ({rounds})" + (", higher is better" if higher_is_better else ""), target))


class Docker:
    """dockerd on its own socket and directories (see /work/shared/MACHINE.md), stopped by PID: the machine's
    20.10, or with `root` a docker unpacked by scripts/docker-reference.sh (e.g. /opt/kiln-docker/sid), whose
    `docker build` goes through its buildx plugin."""

    def __init__(self, work: str, root: str = "/") -> None:
        self.work = work
        self.root = root
        for d in ("data", "exec", "client"):
            os.makedirs(os.path.join(work, d), exist_ok=True)
        with open(os.path.join(work, "daemon.json"), "w") as f:
            json.dump({}, f)
        with open(os.path.join(work, "client", "config.json"), "w") as f:
            json.dump({"cliPluginsExtraDirs": [os.path.join(root, "usr/libexec/docker/cli-plugins")]}, f)
        self.env = {**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_CONFIG": os.path.join(work, "client"),
                    "PATH": f"{os.path.join(root, 'usr/sbin')}:{os.path.join(root, 'usr/bin')}:"
                            f"{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}
        self.socket = os.path.join(work, "docker.sock")
        self.log = open(os.path.join(work, "dockerd.log"), "wb")
        self.proc = subprocess.Popen(
            [os.path.join(root, "usr/sbin/dockerd"), "--host", f"unix://{self.socket}", "--data-root", os.path.join(work, "data"),
             "--exec-root", os.path.join(work, "exec"), "--pidfile", os.path.join(work, "dockerd.pid"),
             "--config-file", os.path.join(work, "daemon.json"), "--iptables=false", "--ip-masq=false",
             "--bridge=none", "--storage-driver", "overlay2"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env=self.env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                with open(os.path.join(work, "dockerd.log"), errors="replace") as f:
                    tail = f.read()[-1500:]
                shutil.rmtree(work, ignore_errors=True)
                raise SystemExit(f"dockerd exited:\n{tail}")
            if os.path.exists(self.socket) and self.run("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise SystemExit("dockerd did not come up in 60 s")

    def run(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([os.path.join(self.root, "usr/bin/docker"), "-H", f"unix://{self.socket}", *args],
                              capture_output=True, text=True, env=self.env, input=stdin)
        if check and proc.returncode != 0:
            raise SystemExit(f"docker {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
        return proc

    def build(self, context: str, tag: str, push: bool) -> float:
        start = time.perf_counter()
        self.run("build", "--no-cache", "--network", "host", "-q", "-t", tag, context)
        if push:
            self.run("push", "-q", tag)
        return time.perf_counter() - start

    def build_plain(self, context: str, tag: str, push: bool) -> tuple[float, float, str]:
        """Like build, with BuildKit's plain progress (each step's output and duration) returned:
        (seconds of the build and push, seconds of the push alone, the build's progress)."""
        start = time.perf_counter()
        out = self.run("build", "--no-cache", "--network", "host", "--progress", "plain", "-t", tag,
                       context).stderr
        pushed = time.perf_counter()
        if push:
            self.run("push", "-q", tag)
        end = time.perf_counter()
        return end - start, end - pushed, out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        for point in sorted((p for p in points if p.startswith(self.work + "/")), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
        shutil.rmtree(self.work, ignore_errors=True)


def context_of(work: str, files: dict[str, str]) -> str:
    context = tempfile.mkdtemp(prefix="ctx-", dir=work)
    for name, text in files.items():
        with open(os.path.join(context, name), "w") as f:
            f.write(text)
    return context


def kiln_build(work: str, context: str, host: str, dest: str | None) -> float:
    return kiln_run(work, context, host, dest)[0]


def kiln_run(work: str, context: str, host: str, dest: str | None, extra_env: dict[str, str] | None = None,
             tree: str = REPO) -> tuple[float, subprocess.CompletedProcess]:
    """Seconds of one build (and push, with `dest`) by the kiln of `tree` (this checkout by default) and its
    finished process (output captured)."""
    root = tempfile.mkdtemp(prefix="root-", dir=work)
    kdir = tempfile.mkdtemp(prefix="kaniko-", dir=work)
    argv = [sys.executable, "-m", "executor", "--context", context, "--root", root, "--kaniko-dir", kdir,
            "--insecure-registry", host, "--log-format", "text"]
    argv += ["--destination", dest] if dest else ["--no-push"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_REGISTRY", "DOCKER_CONFIG"))}
    env["PYTHONPATH"] = tree
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra_env or {})
    start = time.perf_counter()
    proc = run_sandboxed(argv, writable=[root, kdir, context], env=env, cwd=tree, timeout=1200)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"kiln build failed:\n{proc.stderr[-4000:]}")
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(kdir, ignore_errors=True)
    return seconds, proc


# ---- the big base ----------------------------------------------------------------------------------------
def push_stage(work: str, registry, stage: str, name: str, comment: str) -> tuple[str, Layout]:
    """The directory `stage` as a one-layer gzip image (it is removed), pushed as bench/NAME:1 with skopeo; its
    reference and the OCI layout it was made in."""
    tar_path = os.path.join(work, f"{name}.tar")
    tar_dir(stage, tar_path)
    shutil.rmtree(stage)
    layout = Layout(os.path.join(work, f"{name}-layout"))
    layout.tag(name, add_image(layout, tar_path, "amd64", "gzip", comment=comment))
    os.unlink(tar_path)
    ref = registry.ref(f"bench/{name}:1")
    skopeo_copy(f"oci:{layout.path}:{name}", f"docker://{ref}", "--dest-tls-verify=false")
    return ref, layout


def push_big_base(work: str, registry, files: int, total: int) -> tuple[str, str]:
    """busybox plus a generated tree of `files` files (`total` bytes) as one gzip layer; its reference and the
    path of the layer blob."""
    stage = os.path.join(work, "big-stage")
    host_busybox = shutil.which("busybox") or "/bin/busybox"
    applets = sorted(set(subprocess.run([host_busybox, "--list"], capture_output=True, text=True,
                                        check=True).stdout.split()))
    make_busybox_rootfs(stage, host_busybox, applets)
    gen.make_tree(os.path.join(stage, "data"), files, total)
    ref, layout = push_stage(work, registry, stage, "big", "bench big base")
    with open(os.path.join(layout.path, "index.json")) as f:
        manifest_digest = json.load(f)["manifests"][0]["digest"]
    with open(os.path.join(layout.path, "blobs", "sha256", manifest_digest.split(":")[1])) as f:
        layer = json.load(f)["layers"][0]["digest"]
    return ref, os.path.join(layout.path, "blobs", "sha256", layer.split(":")[1])


PULL_CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from executor.engine.images import RegistryImages
from executor.image import Platform
from executor.registry import RegistryClient, RegistryOptions
from snapshot import IgnoreList, Snapshotter
ref, host, root, work = sys.argv[2:6]
start = time.perf_counter()
client = RegistryClient(RegistryOptions(insecure_registries=[host]), os.path.join(work, "blobs"))
images = RegistryImages(client, os.path.join(work, "blobs"))
image = images.pull(ref, Platform("linux", "amd64"))
snap = Snapshotter(root, IgnoreList(root), work)
before = snap.existing() if hasattr(snap, "existing") else None     # as the build loop does (an older tree
images.prefetch(image.layers)                                        # reindexes the whole root instead)
for layer in image.layers:
    images.extract(layer, snap.extract)
snap.take_in(before) if before is not None else snap.reindex()
pulled = time.perf_counter() - start
assert snap.snapshot() is None and snap.snapshot() is None
seconds = time.perf_counter() - start
with open("/proc/self/status") as f:
    rss = [int(l.split()[1]) / 1024 for l in f if l.startswith("VmHWM:")][0]
print(json.dumps({"seconds": seconds, "pulled": pulled, "rss_mb": rss}))
"""


# ---- rows ------------------------------------------------------------------------------------------------
def row_trivial_runs(work, docker, registry, big_ref, rounds, rootfs: str | None = None) -> None:
    """(11 RUNs - 1 RUN) / 10 on each side; with `rootfs`, kiln's executor image too (on / of a chroot: RUN runs
    natively there, where the development run on a scratch root starts a helper for namespaces and chroot)."""
    import small_builds

    one = context_of(work, {"Dockerfile": f"FROM {big_ref}\nRUN true\n"})
    eleven = context_of(work, {"Dockerfile": f"FROM {big_ref}\n" + "".join(f"RUN true {i}\n" for i in range(11))})
    docker.run("pull", big_ref)

    def image_build(ctx: str) -> float:
        return small_builds.kiln_image_build(rootfs, work, small_builds.Job("runs", ctx, kiln_args=["--no-push"]),
                                             registry.ref("bench/unpushed:1"), registry.host)

    mine, image, theirs = [], [], []
    for _ in range(rounds):
        mine.append((kiln_build(work, eleven, registry.host, None) - kiln_build(work, one, registry.host, None)) / 10)
        if rootfs:
            image.append((image_build(eleven) - image_build(one)) / 10)
        theirs.append((docker.build(eleven, "bench/eleven", False) - docker.build(one, "bench/one", False)) / 10)
    record("per trivial RUN on the big root", mine, theirs, "docker build", target="<= 3.0")
    if rootfs:
        record("per trivial RUN on the big root, kiln's executor image", image, theirs, "docker build",
               target="<= 3.0")


def row_big_layer(work, docker, registry, busybox, rounds, size_mb) -> None:
    ctx = context_of(work, {"Dockerfile": f"FROM {busybox}\nRUN head -c {size_mb}000000 /dev/urandom > /big\n"})
    docker.run("pull", busybox)
    mine, theirs = [], []
    for i in range(rounds):
        mine.append(kiln_build(work, ctx, registry.host, registry.ref(f"bench/big-layer-kiln:{i}")))
        theirs.append(docker.build(ctx, registry.ref(f"bench/big-layer-docker:{i}"), True))
    record(f"one {size_mb} MB incompressible layer, build + push", mine, theirs, "docker build + push",
           target="<= 0.35")


def row_pull_extract(work, registry, big_ref, blob, rounds) -> None:
    mine, theirs, rss = [], [], []
    for _ in range(rounds):
        root, kwork, gnu = (tempfile.mkdtemp(prefix=p, dir=work) for p in ("pull-root-", "pull-work-", "gnu-"))
        proc = subprocess.run([sys.executable, "-c", PULL_CHILD, REPO, big_ref, registry.host, root, kwork],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"pull child failed:\n{proc.stderr[-3000:]}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        mine.append(res["seconds"])
        rss.append(res["rss_mb"])
        theirs.append(sh(f"tar -C {gnu} -xzf {blob}"))
        for d in (root, kwork, gnu):
            shutil.rmtree(d, ignore_errors=True)
    record("pull + extract + 2 snapshots of the big base", mine, theirs, "GNU tar -xzf", target="<= 1.0")
    print(f"{'':<48} peak RSS of kiln's child: {max(rss):.0f} MB", flush=True)
    ROWS.append(("peak RSS of that pull + extract (the largest round)", f"{max(rss):.0f} MB", "", "", "", ""))


def row_memory(work, registry, size_mb) -> None:
    """Peak RSS of a child pulling and extracting one gzip layer of `size_mb` MB of mixed files (~4k files):
    the streamed download, the decompressing thread and the hashing thread all at work."""
    stage = os.path.join(work, "mixed-stage")
    gen.make_mixed_files(os.path.join(stage, "data"), size_mb * 1_000_000)
    ref, layout = push_stage(work, registry, stage, "mixed", "bench mixed layer")
    shutil.rmtree(layout.path)
    root, kwork = (tempfile.mkdtemp(prefix=p, dir=work) for p in ("mixed-root-", "mixed-work-"))
    proc = subprocess.run([sys.executable, "-c", PULL_CHILD, REPO, ref, registry.host, root, kwork],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"pull child failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(kwork, ignore_errors=True)
    print(f"{'peak RSS, pull + extract of a %d MB layer' % size_mb:<48} kiln {res['rss_mb']:8.0f} MB   "
          f"({res['pulled']:.2f} s)", flush=True)
    ROWS.append((f"peak RSS, pull + extract + 2 snapshots of a {size_mb} MB gzip layer (mixed files)",
                 f"{res['rss_mb']:.0f} MB", "", "", "", "< 150 MB"))


SMALL = {
    "copy-run": {"Dockerfile": "FROM {b}\nCOPY app.sh /app/\nRUN sh /app/app.sh > /app/out\n", "app.sh": "echo hi\n"},
    "metadata": {"Dockerfile": "FROM {b}\nLABEL a=b\nENV X=1\nUSER 1000\nCMD [\"sh\"]\n"},
    "run": {"Dockerfile": "FROM {b}\nRUN echo hello > /hello\n"},
    "workdir-copy": {"Dockerfile": "FROM {b}\nWORKDIR /srv\nCOPY . .\n", "a.txt": "a\n", "b.txt": "b\n"},
    "two-runs": {"Dockerfile": "FROM {b}\nRUN mkdir -p /x && echo 1 > /x/1\nRUN echo 2 > /x/2\n"},
}


def row_small_builds(work, docker, registry, busybox, rounds, rootfs: str | None = None) -> None:
    """kiln as the other rows run it (the development checkout in the rig's sandbox, which adds ~0.04 s to each
    build) and, with `rootfs`, as users run it: kiln's executor image, /kaniko/executor on / of a fresh chroot
    (bench/small_builds.py's harness, ~0.01 s)."""
    import small_builds

    contexts = {name: context_of(work, {k: v.format(b=busybox) for k, v in files.items()})
                for name, files in SMALL.items()}
    docker.run("pull", busybox)      # (also when the row runs alone: docker builds with its base cached)
    mine, image, theirs = [], [], []
    for i in range(rounds):
        for name, ctx in contexts.items():
            mine.append(kiln_build(work, ctx, registry.host, registry.ref(f"bench/small-{name}-kiln:{i}")))
            if rootfs:
                image.append(small_builds.kiln_image_build(rootfs, work, small_builds.Job(name, ctx),
                                                           registry.ref(f"bench/small-{name}-image:{i}"), registry.host))
            theirs.append(docker.build(ctx, registry.ref(f"bench/small-{name}-docker:{i}"), True))
    # the median of the builds on each side, and the median of the per-build ratios
    record(f"small builds ({len(SMALL)} Dockerfiles), build + push", mine, theirs, "docker build + push",
           target="<= 1.0")
    if rootfs:
        record(f"small builds ({len(SMALL)} Dockerfiles), kiln's executor image, build + push", image, theirs,
               "docker build + push", target="<= 1.0")


REALISTIC = """\
FROM {base}
RUN t0=$(date +%s.%N) && apt-get update -qq \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev make >/dev/null \\
    && apt-get clean && rm -rf /var/lib/apt/lists/* && echo "BENCH-APT $t0 $(date +%s.%N)"
COPY project/ /src/
WORKDIR /src
RUN t0=$(date +%s.%N) && make -s -j"$(nproc)" && ./app && echo "BENCH-MAKE $t0 $(date +%s.%N)"
"""


def marked_seconds(output: str, mark: str, who: str) -> float:
    """A command's own time inside its RUN, as the RUN printed it: `MARK <first date> <last date>`."""
    found = re.findall(rf"{mark} (\d+\.\d+) (\d+\.\d+)", output)
    if len(found) != 1:
        raise SystemExit(f"{who}'s output has {len(found)} {mark} lines, not 1:\n{output[-3000:]}")
    return float(found[0][1]) - float(found[0][0])


def apt_seconds(output: str, who: str) -> float:
    """The apt-get commands' own time (update, install, clean), measured inside their RUN."""
    return marked_seconds(output, "BENCH-APT", who)


def docker_steps(output: str) -> dict[str, float]:
    """BuildKit's plain progress -> {vertex name: seconds} from its `#N name` and `#N DONE 1.2s` lines."""
    names: dict[str, str] = {}
    done: dict[str, float] = {}
    for line in output.splitlines():
        m = re.match(r"#(\d+) (DONE|CACHED) ?([\d.]*)s?$", line)
        if m:
            done[names.get(m.group(1), m.group(1))] = float(m.group(3) or 0)
            continue
        m = re.match(r"#(\d+) ([^\d].*)$", line)
        if m and m.group(1) not in names:
            names[m.group(1)] = m.group(2)[:60]
    return done


def row_realistic(work, docker, registry, debian, rounds, baseline_tree: str | None = None) -> None:
    """FROM debian, apt-get a C toolchain, COPY a 2,000-file C project, make; build + push, minus apt."""
    ctx = context_of(work, {"Dockerfile": REALISTIC.format(base=debian)})
    gen.make_c_project(os.path.join(ctx, "project"))
    docker.run("pull", debian)
    bench_file = os.path.join(work, "kiln-timings.json")
    mine, theirs, apt_k, apt_d, make_k, make_d, before = [], [], [], [], [], [], []
    kiln_phases: list[dict[str, float]] = []
    docker_phases: list[dict[str, float]] = []
    for i in range(rounds):
        seconds, proc = kiln_run(work, ctx, registry.host, registry.ref(f"bench/realistic-kiln:{i}"),
                                 {"BENCHMARK_FILE": bench_file})
        apt = apt_seconds(proc.stdout + proc.stderr, "kiln")
        apt_k.append(apt)
        make_k.append(marked_seconds(proc.stdout + proc.stderr, "BENCH-MAKE", "kiln"))
        mine.append(seconds - apt)
        with open(bench_file) as f:
            kiln_phases.append({k: v / 1e9 for k, v in json.load(f).items()})
        seconds, push, out = docker.build_plain(ctx, registry.ref(f"bench/realistic-docker:{i}"), True)
        apt = apt_seconds(out, "docker build")
        apt_d.append(apt)
        make_d.append(marked_seconds(out, "BENCH-MAKE", "docker build"))
        theirs.append(seconds - apt)
        docker_phases.append({**docker_steps(out), "docker push": push})
        if baseline_tree:
            seconds, proc = kiln_run(work, ctx, registry.host, registry.ref(f"bench/realistic-before:{i}"),
                                     tree=baseline_tree)
            before.append(seconds - apt_seconds(proc.stdout + proc.stderr, "the baseline kiln"))
    record("realistic build (apt-get, COPY 2,000 files, make), build + push, minus apt", mine, theirs,
           "docker build + push", target="<= 0.8")
    print(f"{'':<48} apt's own time, subtracted: kiln {', '.join(f'{a:.1f}' for a in apt_k)} s; "
          f"docker {', '.join(f'{a:.1f}' for a in apt_d)} s", flush=True)
    if before:
        ratios = [m / b for m, b in zip(mine, before)]
        print(f"{'':<48} against the kiln of {baseline_tree} (minus apt, {statistics.median(before):.2f} s): "
              f"ratio {statistics.median(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
    print(f"{'':<48} make's own time (not subtracted): kiln {', '.join(f'{a:.1f}' for a in make_k)} s; "
          f"docker {', '.join(f'{a:.1f}' for a in make_d)} s", flush=True)
    # the builders' own work alone (set-up, base, snapshots, layers, push): the compile's swings under a
    # shared machine's load go too
    own_k = [m - c for m, c in zip(mine, make_k)]
    own_d = [t - c for t, c in zip(theirs, make_d)]
    own_r = [k / d for k, d in zip(own_k, own_d)]
    print(f"{'':<48} minus apt and make (each side's own work): kiln {statistics.median(own_k):.2f} s, docker "
          f"{statistics.median(own_d):.2f} s, ratio {statistics.median(own_r):.2f} "
          f"({', '.join(f'{r:.2f}' for r in own_r)})", flush=True)
    for who, phases in (("kiln ($BENCHMARK_FILE)", kiln_phases), ("docker (plain progress)", docker_phases)):
        print(f"{'':<48} {who}, medians:", flush=True)
        for name in phases[0]:
            values = [p[name] for p in phases if name in p]
            print(f"{'':<50} {statistics.median(values):7.2f} s  {name}", flush=True)


THROUGHPUT_CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from executor.image import Descriptor
from executor.registry import RegistryClient, RegistryOptions
from executor.registry import push as _push
from executor.registry.pull import BlobDownload
what, host, repo, path, digest, size, out = sys.argv[2:9]
client = RegistryClient(RegistryOptions(insecure_registries=[host]), os.path.dirname(out))
desc = Descriptor("application/vnd.oci.image.layer.v1.tar", digest, int(size))
start = time.perf_counter()
if what == "up":
    t = client.transport(host, push=True)
    _push.ensure_blob(t, repo, _push.Blob(desc, lambda: open(path, "rb")), None, _push.PushStats())
else:
    d = BlobDownload(client.transport(host), repo, desc, None, out, "bench")
    d.run()
    d.result()
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def _random_blob(path: str, size_mb: int) -> tuple[str, int]:
    sh(f"head -c {size_mb}000000 /dev/urandom > {path}")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest(), os.path.getsize(path)


def _layout_holding(path: str, blob: str) -> Layout:
    """An OCI layout whose one image has `blob` as its one (uncompressed) layer, for skopeo."""
    layout = Layout(path)
    layer_digest, layer_size = layout.add_file_blob(blob)
    config_digest, config_size = layout.add_json({"architecture": "amd64", "os": "linux",
                                                  "rootfs": {"type": "layers", "diff_ids": [layer_digest]}})
    manifest_digest, manifest_size = layout.add_json({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                    "size": layer_size}]})
    layout.tag("tp", {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                      "size": manifest_size})
    return layout


def row_throughput(work, registry, rounds, size_mb) -> None:
    """Each round a new random blob (a blob the registry holds already is mounted or skipped, not moved):
    kiln, curl and skopeo each upload it to their own repository, then download it from there."""
    base = registry.url("")
    dl = os.path.join(work, "dl")
    os.makedirs(dl, exist_ok=True)

    def kiln(what: str, repo: str, blob: str, digest: str, size: int, out: str) -> float:
        proc = subprocess.run([sys.executable, "-c", THROUGHPUT_CHILD, REPO, what, registry.host, repo, blob,
                               digest, str(size), out], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"throughput child failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]

    def curl_up(repo: str, blob: str, digest: str) -> float:
        start = time.perf_counter()
        loc = subprocess.run(["curl", "-sf", "-X", "POST", "-D", "-", "-o", "/dev/null",
                              f"{base}/v2/{repo}/blobs/uploads/"], capture_output=True, text=True, check=True).stdout
        location = [l.split(":", 1)[1].strip() for l in loc.splitlines() if l.lower().startswith("location:")][0]
        if location.startswith("/"):
            location = base + location
        sep = "&" if "?" in location else "?"
        subprocess.run(["curl", "-sf", "-X", "PUT", "-H", "Content-Type: application/octet-stream", "-T", blob,
                        f"{location}{sep}digest={digest}"], check=True, capture_output=True)
        return time.perf_counter() - start

    up_k, up_c, down_k, down_c, down_v, sk_up, sk_down = [], [], [], [], [], [], []
    for i in range(rounds):
        blob = os.path.join(work, f"random-{i}.bin")
        digest, size = _random_blob(blob, size_mb)
        layout = _layout_holding(os.path.join(work, f"tp-layout-{i}"), blob)
        up_k.append(kiln("up", f"bench/tp-kiln-{i}", blob, digest, size, ""))
        up_c.append(curl_up(f"bench/tp-curl-{i}", blob, digest))
        start = time.perf_counter()
        skopeo_copy(f"oci:{layout.path}:tp", f"docker://{registry.ref(f'bench/tp-skopeo-{i}:1')}",
                    "--dest-tls-verify=false")
        sk_up.append(time.perf_counter() - start)
        out = os.path.join(dl, f"kiln-{i}")
        down_k.append(kiln("down", f"bench/tp-kiln-{i}", blob, digest, size, out))
        os.unlink(out)
        down_c.append(sh(f"curl -sf -o {dl}/curl-{i} {base}/v2/bench/tp-curl-{i}/blobs/{digest}"))
        os.unlink(f"{dl}/curl-{i}")
        # curl verifying as kiln does: the bytes to a file and through sha256 on the way
        down_v.append(sh(f"curl -sf {base}/v2/bench/tp-curl-{i}/blobs/{digest} | tee {dl}/curlv-{i} | sha256sum "
                         f"| grep -q {digest.split(':')[1]}"))
        os.unlink(f"{dl}/curlv-{i}")
        start = time.perf_counter()
        skopeo_copy(f"docker://{registry.ref(f'bench/tp-skopeo-{i}:1')}", f"dir:{dl}/skopeo-{i}",
                    "--src-tls-verify=false")
        sk_down.append(time.perf_counter() - start)
        shutil.rmtree(f"{dl}/skopeo-{i}")
        shutil.rmtree(layout.path, ignore_errors=True)
        os.unlink(blob)
    mb = size / 1e6
    record(f"upload {size_mb} MB blob, MB/s", [mb / s for s in up_k], [mb / s for s in up_c], "curl POST + PUT",
           "MB/s", True, ">= 0.9")
    record(f"upload {size_mb} MB blob, MB/s", [mb / s for s in up_k], [mb / s for s in sk_up],
           "skopeo copy (oci: to docker:)", "MB/s", True, ">= 0.9")
    record(f"download {size_mb} MB blob, MB/s", [mb / s for s in down_k], [mb / s for s in down_c], "curl -o",
           "MB/s", True, ">= 0.9")
    record(f"download {size_mb} MB blob, MB/s", [mb / s for s in down_k], [mb / s for s in down_v],
           "curl, tee FILE, sha256sum (a pipe)", "MB/s", True)
    record(f"download {size_mb} MB blob, MB/s", [mb / s for s in down_k], [mb / s for s in sk_down],
           "skopeo copy (docker: to dir:)", "MB/s", True, ">= 0.9")


def write_doc(header: str) -> None:
    lines = [HEADING, "", header, "",
             "| row | kiln | baseline | baseline is | ratio kiln/baseline (per round) | issue 17's target |",
             "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in ROWS]
    section = "\n".join(lines) + "\n"
    text = open(DOC).read() if os.path.exists(DOC) else "# Performance\n"
    if HEADING in text:
        # the heading, the "Measured by" line and the table are replaced; the prose after the table stays
        start = text.index(HEADING)
        nxt = text.find("\n## ", start + len(HEADING))
        end = len(text) if nxt == -1 else nxt + 1
        old = text[start:end].split("\n")
        first = next((i for i, line in enumerate(old) if line.startswith("|")), len(old))
        last = first
        while last + 1 < len(old) and old[last + 1].startswith("|"):
            last += 1
        rest = "\n".join(old[last + 1:])
        text = text[:start] + section + rest + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(DOC, "w") as f:
        f.write(text)
    print(f"wrote the table into {DOC}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="10k files / 40 MB base, 100 MB layer and blob")
    parser.add_argument("--rows", default=",".join(sorted(ALL_ROWS)),
                        help="a comma-separated subset, e.g. --rows realistic for that row alone")
    parser.add_argument("--dir", default="/dev/shm", help="scratch directory (a tmpfs)")
    parser.add_argument("--docker-root", default="/", help="the docker of the baseline: / for the machine's "
                        "20.10 (the default), or one unpacked by scripts/docker-reference.sh, e.g. /opt/kiln-docker/sid")
    parser.add_argument("--baseline-tree", help="another kiln checkout (e.g. `git archive` of an older commit) "
                        "the realistic row also builds in every round: before/after in one run")
    parser.add_argument("--executor-image", action="store_true",
                        help="the trivial-RUN and small-builds rows also run kiln's executor image (built by kiln "
                        "from this checkout, cached like the executor-image tests'), as users and "
                        "bench/small_builds.py run it")
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    rows = set(args.rows.split(","))
    if rows - ALL_ROWS:
        parser.error(f"unknown rows: {', '.join(sorted(rows - ALL_ROWS))} (rows: {', '.join(sorted(ALL_ROWS))})")
    if args.write_doc and rows != ALL_ROWS:
        parser.error("--write-doc writes the whole table of docs/performance.md: run every row with it "
                     f"(these rows would be lost: {', '.join(sorted(ALL_ROWS - rows))})")
    files, total, size_mb = (10_000, 40_000_000, 100) if args.small else (100_000, 400_000_000, 500)
    for tree in filter(None, (REPO, args.baseline_tree)):
        precompile(tree)
    work = tempfile.mkdtemp(prefix="kiln-pipeline-bench-", dir=args.dir)
    running = start_registry("plain", os.path.join(work, "registry"))
    registry = running.registry
    docker = None
    try:
        images = make_base_images(registry, os.path.join(work, "images"))
        busybox = images.busybox_amd64
        if rows & {"runs", "pull"}:
            big_ref, big_blob = push_big_base(work, registry, files, total)
        if rows & {"runs", "layer", "small", "realistic"}:
            try:        # its store on the tmpfs too, when overlay2 works there
                docker = Docker(tempfile.mkdtemp(prefix="kiln-bench-dockerd-", dir=args.dir), args.docker_root)
            except SystemExit as e:
                print(f"dockerd on {args.dir}: {e}; trying /tmp", flush=True)
                docker = Docker(tempfile.mkdtemp(prefix="kiln-bench-dockerd-", dir="/tmp"), args.docker_root)
        load = os.getloadavg()[0]
        print(f"{args.rounds} rounds, {os.cpu_count()} cores, load {load:.1f}, base {files} files "
              f"/ {total // 1_000_000} MB, docker {docker.run('version', '--format', '{{.Server.Version}}').stdout.strip() if docker else '-'}",
              flush=True)
        rootfs = None
        if args.executor_image and rows & {"runs", "small"}:
            from small_builds import executor_image_rootfs
            rootfs = executor_image_rootfs(registry, work)
        if "runs" in rows:
            row_trivial_runs(work, docker, registry, big_ref, args.rounds, rootfs)
        if "layer" in rows:
            row_big_layer(work, docker, registry, busybox, args.rounds, size_mb)
        if "pull" in rows:
            row_pull_extract(work, registry, big_ref, big_blob, args.rounds)
        if "memory" in rows:
            row_memory(work, registry, size_mb * 2)
        if "small" in rows:
            row_small_builds(work, docker, registry, busybox, args.rounds, rootfs)
        if "realistic" in rows:
            row_realistic(work, docker, registry, push_debian(registry, os.path.join(work, "debian")), args.rounds,
                          args.baseline_tree)
        if "throughput" in rows:
            row_throughput(work, registry, args.rounds, size_mb)
        if args.write_doc:
            write_doc(f"Measured by `python3 bench/pipeline.py --rounds {args.rounds}"
                      f"{' --small' if args.small else ''}{' --executor-image' if args.executor_image else ''}` on {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores "
                      f"shared with other work (load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at "
                      "the end: the per-round ratios show the spread); "
                      f"the base of the RUN and pull rows has {files} files ({total // 1_000_000} MB), all on a "
                      "tmpfs. Medians of the rounds; the ratio is the median of the per-round ratios (for MB/s "
                      "rows, kiln's rate over the baseline's: higher is better).")
    finally:
        if docker is not None:
            docker.stop()
        running.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

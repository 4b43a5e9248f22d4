"""Fixtures of the parity suite: a private dockerd (BuildKit) and docker builds of every selected case,
run in the background while kiln builds the same cases in the tests."""
from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
import tarfile
import time
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.e2e.parity.caseload import CASES, Case, engine_version
from tests.e2e.parity.dockerd import Dockerd, start_dockerd
from tests.rig.judge import ImageReport, judge_docker_tar

log = logging.getLogger("kiln.parity")


DOCKER_WORKERS = 2


@dataclass
class Bases:
    busybox: str
    debian: str | None
    http: str | None = None     # http://127.0.0.1:PORT of the suite's file server
    onbuild: str | None = None  # a pushed image whose config has ONBUILD triggers
    extra: dict[str, str] | None = None   # other rig bases by build-arg name (passed where a case uses them)


ONBUILD_PARENT = """\
ARG BASE
FROM ${BASE}
LABEL parent=onbuild
ONBUILD COPY . /app/
ONBUILD RUN echo "triggered in $(pwd)" > /triggered
ONBUILD ENV FROM_TRIGGER=1
WORKDIR /srv
"""


def _push_onbuild_parent(daemon: Dockerd, base: str, registry, work: str) -> str:
    """Build the parent with docker and push it to the plain registry: both builders then start FROM it."""
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "Dockerfile"), "w") as f:
        f.write(ONBUILD_PARENT)
    ref = registry.ref("parity/onbuild-parent:latest")
    for argv in (["build", "--network", "host", "--build-arg", f"BASE={base}", "-t", ref, work], ["push", ref]):
        proc = daemon.docker(*argv)
        if proc.returncode != 0:
            raise RuntimeError(f"docker {argv[0]} of the ONBUILD parent failed: {proc.stderr[-2000:]}")
    return ref


HTTP_FILES = {"data.txt": b"served over http\n", "dir/nested.txt": b"nested\n", "archive.tar.gz": None}
HTTP_MTIME = 1_500_000_000


def _start_http(directory: str) -> tuple[subprocess.Popen, str]:
    """A static file server on 127.0.0.1 for ADD <url> (Last-Modified from the files' fixed mtimes)."""
    for name, content in HTTP_FILES.items():
        path = os.path.join(directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if content is None:     # a real gzip'd tar: ADD must not unpack a URL source
            with tarfile.open(path, "w:gz") as tf:
                info = tarfile.TarInfo("inside.txt")
                info.size, info.mtime = 3, HTTP_MTIME
                tf.addfile(info, io.BytesIO(b"in\n"))
        else:
            with open(path, "wb") as f:
                f.write(content)
        os.utime(path, (HTTP_MTIME, HTTP_MTIME))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", directory,
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the parity suite's HTTP server did not start")


@dataclass
class DockerBuild:
    report: ImageReport | None
    error: str | None
    failed_build: str | None = None     # the stderr of a build that failed, for cases that must fail


@pytest.fixture(scope="session")
def dockerd() -> Dockerd:
    daemon = start_dockerd()
    yield daemon
    daemon.stop()


def _selected(request: pytest.FixtureRequest) -> list[Case]:
    names = set()
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec and isinstance(callspec.params.get("case"), Case):
            names.add(callspec.params["case"].name)
    return [c for c in CASES if c.name in names]


@pytest.fixture(scope="session")
def parity_bases(request: pytest.FixtureRequest, base_images, tmp_path_factory: pytest.TempPathFactory) -> Bases:
    selected = _selected(request)
    debian = request.getfixturevalue("debian_base") if any(c.debian for c in selected) else None
    server, url = None, None
    if any(c.http for c in selected):
        server, url = _start_http(str(tmp_path_factory.mktemp("http")))
    onbuild = None
    if any(c.onbuild for c in selected):
        onbuild = _push_onbuild_parent(request.getfixturevalue("dockerd"), base_images.busybox_index,
                                       request.getfixturevalue("plain_registry"),
                                       str(tmp_path_factory.mktemp("onbuild-parent")))
    extra = {"BASE_DOCKER": base_images.busybox_docker, "BASE_DOCKER_LIST": base_images.busybox_docker_list,
             "BASE_AMD64": base_images.busybox_amd64}
    yield Bases(base_images.busybox_index, debian, url, onbuild, extra)
    if server is not None:
        server.terminate()
        server.wait(timeout=10)


def write_secrets(case: Case, directory: str) -> dict[str, str]:
    """id -> path of a file holding the secret's text."""
    out = {}
    for sid, text in case.secrets.items():
        path = os.path.join(directory, f"secret-{sid}")
        with open(path, "w") as f:
            f.write(text)
        out[sid] = path
    return out


def _docker_build(daemon: Dockerd, case: Case, bases: Bases, work: str) -> DockerBuild:
    ctx = case.make_context(os.path.join(work, "context"), for_docker=True)
    tag = f"parity/{case.name}:latest"
    argv = ["build", "--network", "host", "--progress", "plain", "-t", tag]
    for k, v in case.build_args(bases.busybox, bases.debian, bases.http, bases.onbuild, bases.extra).items():
        argv += ["--build-arg", f"{k}={v}"]
    if case.target:
        argv += ["--target", case.target]
    for sid, path in write_secrets(case, work).items():
        argv += ["--secret", f"id={sid},src={path}"]
    proc = daemon.docker(*argv, ctx)
    if proc.returncode != 0 and case.fail:
        return DockerBuild(None, None, proc.stderr)
    if proc.returncode != 0:
        return DockerBuild(None, f"docker build failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    out = os.path.join(work, "docker.tar")
    proc = daemon.docker("save", "-o", out, tag)
    if proc.returncode != 0:
        return DockerBuild(None, f"docker save failed: {proc.stderr[-2000:]}")
    try:
        return DockerBuild(judge_docker_tar(out, unpack=False, workdir=work), None)
    except Exception as e:      # the judge's verdict is reported by the test
        return DockerBuild(None, f"judging docker's image failed: {e}")


@pytest.fixture(scope="session")
def docker_builds(request: pytest.FixtureRequest, dockerd: Dockerd, parity_bases: Bases,
                  tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future]:
    """case name -> Future[DockerBuild]; every selected case is submitted at once."""
    pool = ThreadPoolExecutor(max_workers=DOCKER_WORKERS, thread_name_prefix="docker-build")
    futures = {}
    version = engine_version(dockerd.version)
    for case in _selected(request):
        if not case.runs_with(version):
            continue
        work = str(tmp_path_factory.mktemp(f"docker-{case.name}"))
        futures[case.name] = pool.submit(_docker_build, dockerd, case, parity_bases, work)
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)

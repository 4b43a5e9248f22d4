"""Builds through the CLI (python -m executor in the sandbox) against the fault proxy: faults within the
default retry budget end in a pushed image the judge accepts; faults past it end in one clear error line
naming registry, phase and last status, no tag, and a later run in the same --root/--kaniko-dir works."""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.e2e.conftest import BuildRun, Kiln, error_messages
from tests.faults.conftest import kiln_argv, kiln_env
from tests.faults.proxy import FaultProxy
from tests.rig.judge import judge_registry_image
from tests.rig.sandbox import run_sandboxed


@pytest.fixture(scope="module")
def kiln(tmp_path_factory) -> Kiln:
    return Kiln(tmp_path_factory)


def build_in(root: str, kdir: str, context: str, *args: str, timeout: float = 300) -> BuildRun:
    proc = run_sandboxed(kiln_argv(context, root, kdir, *args), writable=[root, kdir, context], env=kiln_env(),
                         timeout=timeout)
    return BuildRun(proc.returncode, proc.stdout, proc.stderr, root, kdir)


def tags(proxy: FaultProxy, repo: str) -> list[str]:
    proc = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{proxy.upstream.host}/{repo}"],
                          capture_output=True, text=True)
    return json.loads(proc.stdout).get("Tags") or [] if proc.returncode == 0 else []


DOCKERFILE = "FROM {base}\nRUN echo built > /built && head -c 300000 /dev/urandom > /noise\nCOPY a.txt /a.txt\n"


def _context(kiln: Kiln, proxy: FaultProxy) -> str:
    return kiln.context({"Dockerfile": DOCKERFILE.format(base=proxy.ref("base/busybox:amd64")), "a.txt": "a\n"})


def test_build_with_faults_within_budget(kiln, plain_proxy, plain_registry, base_images):
    faults = [plain_proxy.add("status", "GET", r"/manifests/", times=1, status=503),
              plain_proxy.add("reset_download", "GET", r"/blobs/sha256:", skip=1, times=1, nbytes=40000),
              plain_proxy.add("status", "HEAD", r"/blobs/", times=1, status=500),
              plain_proxy.add("status", "POST", r"/blobs/uploads/", times=1, status=429, retry_after="0"),
              plain_proxy.add("reset_upload", "PUT", r"/blobs/uploads/", times=1, nbytes=10000),
              plain_proxy.add("status", "PUT", r"/manifests/", times=1, status=502)]
    ref = plain_proxy.ref("faults/build-within:v1")
    run = kiln.build(_context(kiln, plain_proxy), "--destination", ref, "--insecure-registry", plain_proxy.host)
    run.check()
    assert [f.fired for f in faults] == [1] * len(faults), plain_proxy.log
    report = judge_registry_image(plain_registry, plain_registry.ref("faults/build-within:v1"))
    assert report.read("built") == b"built\n" and report.read("a.txt") == b"a\n"


@pytest.mark.parametrize("phase,method,path,line", [
    ("manifest GET", "GET", r"/manifests/", "Dockerfile:1: FROM {host}/base/busybox:amd64: manifest GET {host}/base/"
     "busybox: GET /v2/base/busybox/manifests/amd64: UNAVAILABLE: injected by the fault proxy (HTTP 503)"),
    ("manifest PUT", "PUT", r"/manifests/", "manifest PUT {host}/{repo}: PUT /v2/{repo}/manifests/v1: UNAVAILABLE: "
     "injected by the fault proxy (HTTP 503)"),
])
def test_build_past_budget_fails_clearly_then_recovers(phase, method, path, line, kiln, plain_proxy, base_images,
                                                       tmp_path):
    root, kdir = str(tmp_path / "root"), str(tmp_path / "kaniko")
    os.makedirs(root), os.makedirs(kdir)
    ctx = _context(kiln, plain_proxy)
    repo = f"faults/build-past-{method.lower()}"
    ref = plain_proxy.ref(f"{repo}:v1")
    plain_proxy.add("status", method, path, times=None, status=503)
    run = build_in(root, kdir, ctx, "--destination", ref, "--insecure-registry", plain_proxy.host)
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    errors = [l for l in run.stderr.splitlines() if "error" in l.lower()[:40] or l.startswith("E")]
    last = run.stderr.strip().splitlines()[-1]
    assert phase in last and plain_proxy.host in last and "503" in last, (last, errors)
    assert error_messages(run.stderr) == [line.format(host=plain_proxy.host, repo=repo)], run.stderr[-3000:]
    assert tags(plain_proxy, repo) == []
    if method != "PUT":
        assert not plain_proxy.requests("PUT", r"/manifests/")
    plain_proxy.clear()
    build_in(root, kdir, ctx, "--destination", ref, "--insecure-registry", plain_proxy.host).check()
    assert tags(plain_proxy, repo) == ["v1"]


def test_corrupt_layer_is_never_extracted(kiln, plain_proxy, base_images, tmp_path):
    """Every download of the base layer has one byte flipped: the build fails naming the blob, and the root
    holds nothing of it."""
    root, kdir = str(tmp_path / "root"), str(tmp_path / "kaniko")
    os.makedirs(root), os.makedirs(kdir)
    plain_proxy.add("corrupt", "GET", r"/blobs/sha256:", skip=1, times=None)
    run = build_in(root, kdir, _context(kiln, plain_proxy), "--destination", plain_proxy.ref("faults/corrupt:v1"),
                   "--insecure-registry", plain_proxy.host)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    last = run.stderr.strip().splitlines()[-1]
    assert "blob GET" in last and plain_proxy.host in last and "sha256:" in last, last
    (line,) = error_messages(run.stderr)
    assert re.fullmatch(f"blob GET {re.escape(plain_proxy.host)}/base/busybox: layer blob sha256:[0-9a-f]{{64}}: "
                        r"cannot be decompressed as gzip: CRC check failed \d+ != \d+", line), line
    assert not os.path.exists(os.path.join(root, "bin", "busybox")), "a corrupt layer was extracted"
    assert "Extracting layer" not in run.stderr
    assert not plain_proxy.requests("PUT", r"/manifests/")

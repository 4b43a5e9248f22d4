"""Issue 16: one run builds several platforms and pushes one index. The arm64 RUN executes the rig's real
arm64 busybox through QEMU user emulation, which the test registers in binfmt_misc itself (tests/rig/binfmt.py);
the results are judged by skopeo, umoci (the judge) and runc."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tarfile
import uuid

import pytest

from tests.rig.binfmt import ensure_emulation
from tests.rig.judge import judge_oci_layout, judge_registry_image

DOCKERFILE = """\
ARG BASE
FROM --platform=$BUILDPLATFORM ${BASE} AS tools
RUN echo TOOLS-RAN-ON-$(uname -m) && uname -m > /build-machine && cat /proc/sys/kernel/random/uuid > /nonce
FROM ${BASE}
ARG TARGETARCH
ARG TARGETPLATFORM
COPY --from=tools /build-machine /nonce /
RUN uname -m > /machine && echo "$TARGETARCH $TARGETPLATFORM" > /target
"""


def skopeo_raw(registry, ref: str) -> bytes:
    return subprocess.run(["skopeo", "inspect", "--raw", *registry.skopeo_args(""), f"docker://{ref}"],
                          capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def emulated():
    return ensure_emulation("aarch64")


@pytest.fixture(scope="module")
def two_platforms(emulated, kiln, base_images, plain_registry, tmp_path_factory):
    out = tmp_path_factory.mktemp("multi-out")
    dest = f"{plain_registry.host}/multi/app-{uuid.uuid4().hex[:8]}:1"
    ctx = kiln.context({"Dockerfile": DOCKERFILE})
    run = kiln.build(ctx, "--destination", dest, "--insecure-registry", plain_registry.host,
                     "--build-arg", f"BASE={base_images.busybox_index}",
                     "--custom-platform=linux/amd64,linux/arm64",
                     "--digest-file", str(out / "digest"), "--image-name-with-digest-file", str(out / "name"),
                     "--oci-layout-path", str(out / "layout"), "--tar-path", str(out / "image.tar"),
                     "--metadata-file", str(out / "metadata.json")).check()
    return {"run": run, "dest": dest, "out": out}


def test_the_index_holds_one_image_per_platform(two_platforms, plain_registry, tmp_path):
    dest, out = two_platforms["dest"], two_platforms["out"]
    raw = skopeo_raw(plain_registry, dest)
    index = json.loads(raw)
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json", index
    assert [(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]] == \
        [("linux", "amd64"), ("linux", "arm64")]
    # the digest files name the index (what the tag names), as for any index kaniko's users push
    assert (out / "digest").read_text() == digest
    assert (out / "name").read_text() == f"{dest.rsplit(':', 1)[0]}@{digest}\n"
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["containerimage.digest"] == digest
    assert metadata["containerimage.descriptor"]["mediaType"] == index["mediaType"]
    reports = {}
    for platform, machine, arch in (("linux/amd64", "x86_64", "amd64"), ("linux/arm64", "aarch64", "arm64")):
        report = judge_registry_image(plain_registry, dest, platform=platform, workdir=str(tmp_path / arch))
        assert report.config["architecture"] == arch and report.config["os"] == "linux"
        assert report.read("machine") == f"{machine}\n".encode(), platform     # the RUN ran as that machine
        assert report.read("target") == f"{arch} {platform}\n".encode()        # TARGETARCH, TARGETPLATFORM
        assert report.read("build-machine") == b"x86_64\n"                     # the $BUILDPLATFORM stage: native
        reports[arch] = report
    # the tools stage ran once (natively), and both images copied its one result
    stderr = two_platforms["run"].stderr
    assert stderr.count("TOOLS-RAN-ON-x86_64") == 1, stderr[-4000:]
    assert "built already for another platform, reused" in stderr
    assert reports["amd64"].read("nonce") == reports["arm64"].read("nonce")
    # each RUN layer of the final stage is the platform's own (different binaries wrote different files)
    assert reports["amd64"].manifest_digest != reports["arm64"].manifest_digest


def test_the_arm64_image_runs_under_runc_through_qemu(two_platforms, plain_registry, tmp_path):
    report = judge_registry_image(plain_registry, two_platforms["dest"], platform="linux/arm64",
                                  workdir=str(tmp_path / "judge"))
    bundle = os.path.dirname(report.unpacked_rootfs)
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/sh", "-c", "uname -m; read -r t < /target; echo \"$t\""]
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f)
    cid = "kiln-multi-" + uuid.uuid4().hex[:8]
    root = "/run/runc/kiln-tests"
    os.makedirs(root, exist_ok=True)
    try:
        proc = subprocess.run(["runc", "--root", root, "run", "--bundle", bundle, cid], capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        subprocess.run(["runc", "--root", root, "delete", "--force", cid], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "aarch64\narm64 linux/arm64\n"


def test_layout_and_tarball_hold_the_index(two_platforms, tmp_path):
    out = two_platforms["out"]
    digest = (out / "digest").read_text()
    with open(out / "layout" / "index.json") as f:
        (entry,) = json.load(f)["manifests"]
    assert entry["digest"] == digest and entry["mediaType"] == "application/vnd.oci.image.index.v1+json"
    for platform, machine in (("linux/amd64", b"x86_64\n"), ("linux/arm64", b"aarch64\n")):
        report = judge_oci_layout(str(out / "layout"), platform=platform,
                                  workdir=str(tmp_path / platform.replace("/", "-")))
        assert report.read("machine") == machine
    with tarfile.open(out / "image.tar") as tar:
        assert json.load(tar.extractfile("index.json"))["manifests"][0]["digest"] == digest
        index = json.load(tar.extractfile(f"blobs/sha256/{digest.split(':')[1]}"))
        amd64 = next(m["digest"] for m in index["manifests"] if m["platform"]["architecture"] == "amd64")
        manifest = json.load(tar.extractfile(f"blobs/sha256/{amd64.split(':')[1]}"))
        # docker load takes the image for this (amd64) machine
        (loaded,) = json.load(tar.extractfile("manifest.json"))
        assert loaded["Config"] == f"blobs/sha256/{manifest['config']['digest'].split(':')[1]}"
        assert loaded["RepoTags"] == [two_platforms["dest"]]


def test_a_platform_without_an_emulator_is_refused_before_anything_is_pulled(kiln, base_images, plain_registry):
    ctx = kiln.context({"Dockerfile": f"FROM {base_images.busybox_index} AS build\nRUN true\n"})
    run = kiln.build(ctx, "--no-push", "--custom-platform", "linux/amd64", "--custom-platform", "linux/s390x")
    assert run.refused() == (
        "platform linux/s390x: this linux/amd64 kernel has no binfmt_misc handler for linux/s390x binaries (RUN in "
        "stage build); register QEMU user emulation with the F flag: on Kubernetes, the tonistiigi/binfmt "
        "DaemonSet (or once per node: docker run --privileged --rm tonistiigi/binfmt --install s390x); on Debian, "
        "apt-get install qemu-user-static binfmt-support (update-binfmts --enable qemu-s390x)")
    assert "Retrieving image" not in run.stderr


def test_metadata_only_platforms_need_no_emulator(kiln, base_images, plain_registry, tmp_path):
    """No RUN: nothing executes, so no handler is needed for any platform (the index still holds both)."""
    ctx = kiln.context({"Dockerfile": f"FROM {base_images.busybox_index}\nCOPY f /f\nENV A=1\n", "f": "x\n"})
    layout = str(tmp_path / "layout")
    kiln.build(ctx, "--no-push", "--custom-platform=linux/amd64,linux/arm64/v8", "--oci-layout-path", layout).check()
    with open(os.path.join(layout, "index.json")) as f:
        (entry,) = json.load(f)["manifests"]
    with open(os.path.join(layout, "blobs", "sha256", entry["digest"].split(":")[1])) as f:
        index = json.load(f)
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]


# --- native fan-out: one build per platform, then `executor index` ------------------------------------------------
def executor(*args: str, writable: list[str]):
    from tests.e2e.conftest import REPO
    from tests.rig.sandbox import run_sandboxed
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_REGISTRY", "DOCKER_CONFIG"))}
    env["PYTHONPATH"] = REPO
    return run_sandboxed([sys.executable, "-m", "executor", *args, "--log-format", "text"], writable=writable,
                         env=env, cwd=REPO, timeout=300)


def test_native_fan_out_assembles_the_index_without_uploading_a_blob(emulated, kiln, base_images, plain_registry,
                                                                     tmp_path):
    """Each platform built by its own kiln into its own repository (as two Jobs on two nodes would), then one
    `executor index` pushes the index into a third: only mounts and manifest PUTs reach the registry."""
    run_id = uuid.uuid4().hex[:8]
    ctx = kiln.context({"Dockerfile": DOCKERFILE})
    per_arch = {}
    for arch in ("amd64", "arm64"):
        ref = f"{plain_registry.host}/fan-{run_id}/{arch}:1"
        kiln.build(ctx, "--destination", ref, "--insecure-registry", plain_registry.host,
                   "--build-arg", f"BASE={base_images.busybox_index}", f"--custom-platform=linux/{arch}").check()
        per_arch[arch] = ref
    dest = f"{plain_registry.host}/fan-{run_id}/app:1"
    before = len(plain_registry.read_log())
    out = tmp_path / "out"
    out.mkdir()
    proc = executor("index", "--destination", dest, "--source", per_arch["amd64"], "--source", per_arch["arm64"],
                    "--insecure-registry", plain_registry.host, "--digest-file", str(out / "digest"),
                    writable=[str(out)])
    assert proc.returncode == 0, proc.stderr[-4000:]
    requests = [line for line in plain_registry.read_log()[before:].splitlines() if f"/v2/fan-{run_id}/app/" in line]
    requests = [r for r in requests if "response completed" not in r]       # the access log's lines
    uploads = [r for r in requests if re.search(r'"(PATCH|PUT) /v2/[^ ]*/blobs/uploads/', r)]
    assert uploads == [], uploads           # no blob's bytes were sent
    # (one upload session is opened and left empty: the push permission check, as kaniko's)
    assert len([r for r in requests if '"POST ' in r and "mount=" not in r]) == 1, requests
    assert any("POST /v2/fan-" in r and "mount=" in r for r in requests), requests
    puts = [r for r in requests if '"PUT ' in r]
    assert len(puts) == 3 and all("/manifests/" in r for r in puts), puts      # two images, then the index
    raw = skopeo_raw(plain_registry, dest)
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (out / "digest").read_text() == digest
    index = json.loads(raw)
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    for platform, machine in (("linux/amd64", b"x86_64\n"), ("linux/arm64", b"aarch64\n")):
        report = judge_registry_image(plain_registry, dest, platform=platform,
                                      workdir=str(tmp_path / platform.replace("/", "-")))
        assert report.read("machine") == machine
        source = judge_registry_image(plain_registry, per_arch[platform.split("/")[1]], unpack=False,
                                      workdir=str(tmp_path / ("src-" + platform.replace("/", "-"))))
        assert report.manifest_digest == source.manifest_digest     # the very image each build pushed


def test_index_refuses_two_images_of_one_platform(base_images, plain_registry, tmp_path):
    proc = executor("index", "--destination", f"{plain_registry.host}/fan/dup:1",
                    "--source", base_images.busybox_amd64, "--source", base_images.busybox_index,
                    "--insecure-registry", plain_registry.host, writable=[str(tmp_path)])
    assert proc.returncode == 1
    assert (f"--source {base_images.busybox_amd64} and --source {base_images.busybox_index} are both linux/amd64: "
            "an index holds one image per platform") in proc.stderr, proc.stderr[-3000:]


def test_the_layer_cache_keeps_each_platforms_steps(emulated, kiln, base_images, plain_registry, tmp_path):
    """--cache with two platforms: each platform's RUN is stored under its own key, and the second build takes
    both from the cache (an arm64 layer never answers for amd64)."""
    repo = f"{plain_registry.host}/multi/cached-{uuid.uuid4().hex[:8]}"
    ctx = kiln.context({"Dockerfile": f"FROM {base_images.busybox_index}\n"
                                      "RUN echo RAN-ON-$(uname -m) && uname -m > /machine\n"})
    args = ("--destination", f"{repo}:1", "--insecure-registry", plain_registry.host, "--cache=true",
            "--custom-platform=linux/amd64,linux/arm64")
    first = kiln.build(ctx, *args).check()
    assert "RAN-ON-x86_64" in first.stderr and "RAN-ON-aarch64" in first.stderr
    second = kiln.build(ctx, *args).check()
    assert "RAN-ON" not in second.stderr.replace("RUN echo RAN-ON", ""), second.stderr[-3000:]
    assert second.stderr.count("Using caching version of cmd: RUN") == 2
    for platform, machine in (("linux/amd64", b"x86_64\n"), ("linux/arm64", b"aarch64\n")):
        report = judge_registry_image(plain_registry, f"{repo}:1", platform=platform,
                                      workdir=str(tmp_path / platform.replace("/", "-")))
        assert report.read("machine") == machine


def test_a_base_without_the_platform_is_a_warning_and_two_of_one_platform_are_refused(kiln, base_images,
                                                                                      plain_registry):
    """BuildKit's InvalidBaseImagePlatform: a single-platform base of another platform is used with a warning
    naming the line; in a multi-platform run two results of one platform cannot make an index, and nothing is
    pushed."""
    ctx = kiln.context({"Dockerfile": f"FROM {base_images.busybox_amd64}\nENV A=1\n"})
    single = kiln.build(ctx, "--no-push", "--custom-platform=linux/arm64").check()
    assert (f'level=warning msg="Dockerfile:1: InvalidBaseImagePlatform: Base image {base_images.busybox_amd64} was '
            'pulled with platform linux/amd64, expected linux/arm64 for current build"') in single.stderr, \
        single.stderr[-3000:]
    dest = f"{plain_registry.host}/multi/clash:1"
    run = kiln.build(ctx, "--destination", dest, "--insecure-registry", plain_registry.host,
                     "--custom-platform=linux/amd64,linux/arm64")
    assert run.refused() == ("--custom-platform linux/arm64: the result is a linux/amd64 image, as is the one built "
                             "for linux/amd64 (a base image has no linux/arm64 variant: see the "
                             "InvalidBaseImagePlatform warning); an index holds one image per platform")
    assert "Pushed" not in run.stderr


def test_two_platforms_each_get_their_attestations(kiln, base_images, plain_registry, tmp_path):
    """Issue 13's two-platform line: --sbom --provenance on a two-platform build give one attestation manifest
    per image, after the images, each naming its own image as subject; the SBOM validates as SPDX 2.3 and the
    provenance names the base (its index digest, with the platform); the layout holds the same index."""
    from tests.attest_helpers import spdx_errors
    from tests.e2e.test_attestations import read_statements, skopeo_dir

    dest = f"{plain_registry.host}/multi/attested-{uuid.uuid4().hex[:8]}:1"
    ctx = kiln.context({"Dockerfile": f"FROM {base_images.busybox_index}\nCOPY f /f\n", "f": "x\n"})
    layout = str(tmp_path / "layout")
    kiln.build(ctx, "--destination", dest, "--insecure-registry", plain_registry.host, "--sbom",
               "--provenance=mode=max", "--custom-platform=linux/amd64,linux/arm64", "--oci-layout-path",
               layout).check()
    raw = skopeo_raw(plain_registry, dest)
    index = json.loads(raw)
    images, atts = index["manifests"][:2], index["manifests"][2:]
    assert [m["platform"]["architecture"] for m in images] == ["amd64", "arm64"]
    assert [a["annotations"]["vnd.docker.reference.digest"] for a in atts] == [m["digest"] for m in images]
    base_index = "sha256:" + hashlib.sha256(skopeo_raw(plain_registry, base_images.busybox_index)).hexdigest()
    base_repo, base_tag = base_images.busybox_index.rsplit(":", 1)
    repo = dest.rsplit(":", 1)[0]
    for image, att, arch in zip(images, atts, ("amd64", "arm64")):
        assert att["platform"] == {"architecture": "unknown", "os": "unknown"}
        blobs = skopeo_dir(f"docker://{repo}@{att['digest']}", str(tmp_path / arch),
                           *plain_registry.skopeo_args("src"))
        statements = read_statements(json.loads(blobs["manifest.json"]), blobs)
        for statement in statements.values():
            assert [s["digest"] for s in statement["subject"]] == [{"sha256": image["digest"].split(":")[1]}]
            # (the image's own platform, as its index entry gives it: the rig's arm64 busybox says variant v8)
            platform = "%2F".join(image["platform"][k] for k in ("os", "architecture", "variant") if k in image["platform"])
            assert statement["subject"][0]["name"] == f"pkg:docker/{repo}@1?platform={platform}"
        assert spdx_errors(statements["https://spdx.dev/Document"]["predicate"]) == []
        deps = statements["https://slsa.dev/provenance/v1"]["predicate"]["buildDefinition"]["resolvedDependencies"]
        assert {"uri": f"pkg:docker/{base_repo}@{base_tag}?platform=linux%2F{arch}",
                "digest": {"sha256": base_index.split(":")[1]}} in deps, deps
    with open(os.path.join(layout, "index.json")) as f:
        (entry,) = json.load(f)["manifests"]
    assert entry["digest"] == "sha256:" + hashlib.sha256(raw).hexdigest()

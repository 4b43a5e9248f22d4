"""Issue 12: kaniko flags that kiln once parsed and dropped, each end to end through the real CLI against the
rig's registry (and, where a real registry cannot produce the fault, the fault proxy in front of it)."""
from __future__ import annotations

import json
import os
import socket
import subprocess

from tests.e2e.conftest import skopeo_tags
from tests.faults.conftest import plain_proxy  # noqa: F401  (the fault proxy fixture)
from tests.rig.judge import judge_registry_image

MARKER = "kiln-dropin-ran-the-run"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raw_manifest(ref: str) -> dict:
    out = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


# ---- --registry-map -------------------------------------------------------------------------------------


def test_registry_map_pulls_a_made_up_registry_from_its_mirror(kiln, base_images, plain_registry):
    path = base_images.busybox_amd64.split("/", 1)[1]             # base/busybox:amd64
    ctx = kiln.context({"Dockerfile": f"FROM made-up.example/{path}\nRUN echo {MARKER} > /made\n"})
    dest = plain_registry.ref("dropin/regmap:v1")
    run = kiln.build(ctx, "--destination", dest, "--insecure-registry", plain_registry.host,
                     "--registry-map", f"made-up.example={plain_registry.host}").check()
    assert f"Retrieving image {plain_registry.host}/{path} from mapped registry {plain_registry.host}" in run.stderr
    assert judge_registry_image(plain_registry, dest).layers[-1].read("made") == f"{MARKER}\n".encode()


def test_registry_map_env_tries_mirrors_in_order(kiln, base_images, plain_registry):
    path = base_images.busybox_amd64.split("/", 1)[1]
    dead = f"127.0.0.1:{_closed_port()}"
    ctx = kiln.context({"Dockerfile": f"FROM made-up.example/{path}\nLABEL mapped=yes\n"})
    dest = plain_registry.ref("dropin/regmap-env:v1")
    run = kiln.build(ctx, "--destination", dest, "--insecure-registry", plain_registry.host,
                     env={"KANIKO_REGISTRY_MAP": f"made-up.example={dead};made-up.example={plain_registry.host}"})
    run.check()
    assert f"from mapped registry {dead}" in run.stderr and f"from mapped registry {plain_registry.host}" in run.stderr
    assert f"cannot reach registry {dead} (connection refused)" in run.stderr, "the first mirror was tried first"
    assert judge_registry_image(plain_registry, dest, unpack=False).config["config"]["Labels"] == {"mapped": "yes"}


def test_skip_default_registry_fallback_never_asks_the_original(kiln, base_images, plain_registry):
    path = "base/not-mirrored:1"
    ctx = kiln.context({"Dockerfile": f"FROM made-up.example/{path}\nRUN echo {MARKER}\n"})
    run = kiln.build(ctx, "--no-push", "--registry-map", f"made-up.example={plain_registry.host}",
                     "--skip-default-registry-fallback", "--insecure-registry", plain_registry.host)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert "Dockerfile:1: FROM made-up.example/base/not-mirrored:1" in last, last
    assert "not found on any mapped registry nor made-up.example (--skip-default-registry-fallback: not asked)" \
        in last, last
    assert "unknown host" not in run.stderr, "the original registry was asked"


# ---- --dryrun, --annotation, --target ----------------------------------------------------------------------


def test_dryrun_plans_and_pushes_nothing(kiln, base_images, plain_registry):
    dockerfile = (f"FROM {base_images.busybox_index} AS build\nRUN echo {MARKER} > /out\n"
                  f"FROM {base_images.busybox_amd64}\nCOPY --from=build /out /out\n")
    dest = plain_registry.ref("dropin/dryrun:v1")
    run = kiln.build(kiln.context({"Dockerfile": dockerfile}), "--destination", dest, "--dryrun",
                     "--insecure-registry", plain_registry.host).check()
    plan = run.stdout.splitlines()
    assert plan[0] == f"FROM {base_images.busybox_index} AS build"
    assert plan[1].startswith(f"  PULL {base_images.busybox_index} sha256:") and "(linux/amd64, 1 layers)" in plan[1]
    assert plan[2] == f"  RUN echo {MARKER} > /out" and plan[-1] == f"PUSH {dest}"
    assert "  SAVE stage build for COPY --from" in plan and "  COPY --from=build /out /out" in plan
    assert f"{MARKER}\n" not in run.stderr and "Extracting layer" not in run.stderr
    assert skopeo_tags(plain_registry, "dropin/dryrun") == []
    assert os.listdir(run.root) == [], "a dry run touches no file of the root"


def test_annotations_are_in_the_pushed_manifest(kiln, base_images, plain_registry):
    dest = plain_registry.ref("dropin/annotated:v1")
    kiln.build(kiln.context({"Dockerfile": f"FROM {base_images.busybox_index}\nLABEL a=b\n"}),
               "--destination", dest, "--insecure-registry", plain_registry.host,
               "--annotation", "org.opencontainers.image.source=https://git.example/app",
               "--annotation=com.example.team=build").check()
    manifest = _raw_manifest(dest)
    assert manifest["annotations"] == {"org.opencontainers.image.source": "https://git.example/app",
                                       "com.example.team": "build"}
    judge_registry_image(plain_registry, dest, unpack=False)


def test_several_targets_push_the_first(kiln, base_images, plain_registry):
    dockerfile = (f"FROM {base_images.busybox_amd64} AS a\nRUN echo a > /a\n"
                  f"FROM {base_images.busybox_amd64} AS b\nRUN echo b > /b\n"
                  f"FROM {base_images.busybox_amd64} AS c\nRUN echo c > /c\n")
    dest = plain_registry.ref("dropin/targets:v1")
    run = kiln.build(kiln.context({"Dockerfile": dockerfile}), "--destination", dest, "--target", "b",
                     "--target=a", "--skip-unused-stages", "--insecure-registry", plain_registry.host).check()
    assert "Building stage a" in run.stderr and "Building stage c" not in run.stderr
    assert judge_registry_image(plain_registry, dest).layers[-1].names() == ["b"]


# ---- faults a real registry cannot produce: the fault proxy --------------------------------------------------


IMMUTABLE = (b'{"errors":[{"code":"TAG_INVALID","message":"The image tag \'v1\' already exists in the '
             b'repository and cannot be overwritten because the tag is immutable."}]}')


def test_immutable_tag_refusal_fails_unless_ignored(kiln, base_images, plain_registry, plain_proxy):  # noqa: F811
    ctx = kiln.context({"Dockerfile": f"FROM {base_images.busybox_amd64}\nLABEL immutable=yes\n"})
    dest = plain_proxy.ref("dropin/immutable:v1")
    args = ("--destination", dest, "--insecure-registry", plain_proxy.host)
    plain_proxy.add("status", "PUT", r"/manifests/v1$", status=400, body=IMMUTABLE, times=None)
    refused = kiln.build(ctx, *args)
    assert refused.returncode == 1
    assert "cannot be overwritten because the tag is immutable" in refused.stderr.strip().splitlines()[-1]
    ignored = kiln.build(ctx, *args, "--push-ignore-immutable-tag-errors").check()
    assert "Immutable tag error ignored for" in ignored.stderr
    assert skopeo_tags(plain_registry, "dropin/immutable") == [], "the registry kept its tag"


def test_image_fs_extract_retry_fetches_and_extracts_again(kiln, base_images, plain_registry,
                                                          plain_proxy):  # noqa: F811
    base = base_images.busybox_amd64.replace(plain_registry.host, plain_proxy.host)
    ctx = kiln.context({"Dockerfile": f"FROM {base}\nRUN echo {MARKER} > /ran\n"})
    dest = plain_registry.ref("dropin/extract-retry:v1")
    args = ("--destination", dest, "--insecure-registry", plain_registry.host, "--insecure-registry",
            plain_proxy.host)
    # the layer, after the config; twice: the push while building may fetch the base layer for the destination
    # (another registry) before the extraction does, and its failed early upload is only retried by the push
    plain_proxy.add("corrupt", "GET", r"/blobs/sha256:", skip=1, times=2)
    failed = kiln.build(ctx, *args)
    assert failed.returncode == 1 and "sha256:" in failed.stderr.strip().splitlines()[-1]
    plain_proxy.clear()
    plain_proxy.add("corrupt", "GET", r"/blobs/sha256:", skip=1, times=2)
    run = kiln.build(ctx, *args, "--image-fs-extract-retry", "2").check()
    assert "--image-fs-extract-retry: attempt 2 of 3" in run.stderr
    assert judge_registry_image(plain_registry, dest).layers[-1].read("ran") == f"{MARKER}\n".encode()


def test_pre_cleanup_wipes_the_root_before_the_build(kiln, base_images, plain_registry, tmp_path):
    """Without --pre-cleanup a RUN sees the files the root held before the build (the container's own, which no
    layer gets); with it they are gone before the base is extracted."""
    dockerfile = f"FROM {base_images.busybox_amd64}\nRUN if test -e /left-before; then echo seen-$((40+2)); else echo gone-$((40+2)); fi\n"
    ctx = kiln.context({"Dockerfile": dockerfile})
    outcomes = {}
    for flag in ((), ("--pre-cleanup",)):
        root = tmp_path / f"root{len(flag)}"
        root.mkdir()
        (root / "left-before").write_text("the container's own file\n")
        run = kiln.build(ctx, "--no-push", "--insecure-registry", plain_registry.host, *flag,
                         root_override=str(root)).check()
        outcomes[flag] = ("seen-42" in run.stdout + run.stderr, (root / "left-before").exists())
        assert ("gone-42" in run.stdout + run.stderr) is not outcomes[flag][0]
    assert outcomes[()] == (True, True)
    assert outcomes[("--pre-cleanup",)] == (False, False)


# ---- flags whose behaviour kiln always has (NO_EFFECT's "always on") ----------------------------------------


def test_preserve_context_holds_with_cleanup(kiln, base_images, plain_registry, tmp_path):
    """--preserve-context: the context, here inside the root as /workspace is in a pod, survives the stages and
    --cleanup (kiln never wipes its context)."""
    root = tmp_path / "root"
    context = root / "workspace"
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text(f"FROM {base_images.busybox_amd64} AS a\nRUN echo a > /a\n"
                                        f"FROM {base_images.busybox_amd64}\nCOPY --from=a /a /a\nCOPY keep.txt /\n")
    (context / "keep.txt").write_text("kept\n")
    run = kiln.build(str(context), "--no-push", "--insecure-registry", plain_registry.host, "--preserve-context",
                     "--cleanup", root_override=str(root))
    run.check()
    assert sorted(os.listdir(root)) == ["workspace"], "--cleanup wiped everything but the context"
    assert (context / "keep.txt").read_text() == "kept\n"


def test_materialize_and_force_build_metadata_are_what_kiln_does(kiln, base_images, plain_registry):
    """--materialize: after a build whose every step came from the cache, the root holds the target's files;
    --force-build-metadata: metadata instructions have their history entries. kiln does both always."""
    repo = f"dropin/materialize-{os.getpid()}"
    dockerfile = f"FROM {base_images.busybox_amd64}\nRUN echo {MARKER} > /made\nLABEL meta=1\nENV X=1\n"
    ctx = kiln.context({"Dockerfile": dockerfile})
    args = ("--destination", plain_registry.ref(f"{repo}:v1"), "--insecure-registry", plain_registry.host,
            "--cache", "--materialize", "--force-build-metadata", "--use-new-run", "--compressed-caching=false")
    kiln.build(ctx, *args).check()
    second = kiln.build(ctx, *args).check()
    assert "Using caching version of cmd: RUN echo" in second.stderr
    with open(os.path.join(second.root, "made")) as f:
        assert f.read() == f"{MARKER}\n"
    history = judge_registry_image(plain_registry, plain_registry.ref(f"{repo}:v1"), unpack=False).config["history"]
    assert [h["created_by"] for h in history[-2:]] == ["LABEL meta=1", "ENV X=1"]
    assert all(h.get("empty_layer") for h in history[-2:])

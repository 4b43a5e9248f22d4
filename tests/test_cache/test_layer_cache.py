"""The layer cache against the rig's registries, through the real executor."""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

from tests.e2e.conftest import skopeo_tags
from tests.rig.judge import judge_registry_image


def _dockerfile(base: str) -> str:
    return f"""\
FROM {base}
ARG FLAVOUR=plain
WORKDIR /app
COPY a.txt ./
RUN echo "RAN-$(echo STEP)-ONE $FLAVOUR" && cat /app/a.txt > /app/one.txt && rm /bin/ls
COPY b.txt ./
RUN echo RAN-$(echo STEP)-TWO && test ! -e /bin/ls && cat /app/b.txt > /app/two.txt
RUN echo RAN-$(echo STEP)-THREE && date +%N > /app/three.txt
"""


def _ran(run) -> set[str]:
    text = run.stdout + run.stderr
    return {n for n in ("ONE", "TWO", "THREE") if f"RAN-STEP-{n}\n" in text or f"RAN-STEP-{n} " in text}


def _build(kiln, registry, ctx, repo, *extra):
    ref = registry.ref(f"{repo}:v1")
    run = kiln.build(ctx, "--destination", ref, "--insecure-registry", registry.host, "--cache", *extra).check()
    return run, ref


def test_second_build_runs_nothing_and_is_reproducible(kiln, base_images, plain_registry):
    repo = f"cache/repro-{uuid.uuid4().hex[:8]}"
    ctx = kiln.context({"Dockerfile": _dockerfile(base_images.busybox_index), "a.txt": "A\n", "b.txt": "B\n"})
    first, ref = _build(kiln, plain_registry, ctx, repo, "--reproducible", "--cache-copy-layers")
    assert _ran(first) == {"ONE", "TWO", "THREE"}
    report1 = judge_registry_image(plain_registry, ref)
    tags = skopeo_tags(plain_registry, f"{repo}/cache")
    assert len(tags) >= 5, tags          # 2 COPY + 3 RUN entries, stored in <destination>/cache
    second, _ = _build(kiln, plain_registry, ctx, repo, "--reproducible", "--cache-copy-layers")
    assert _ran(second) == set(), second.stderr[-3000:]
    report2 = judge_registry_image(plain_registry, ref)
    assert report2.manifest_digest == report1.manifest_digest
    assert report2.read("app/three.txt") == report1.read("app/three.txt")
    assert "bin/.wh.ls" in report2.layers[-4].names(), "the whiteout comes back as a whiteout"
    fs = report2.filesystem()
    assert "bin/ls" not in fs and "app/one.txt" in fs


def _pushed_stats(run, repo: str) -> tuple[int, int, int]:
    """(uploaded, mounted, already there) of the final push to `repo` (not the cache images)."""
    for line in (run.stdout + run.stderr).splitlines():
        if f"/{repo}@sha256:" in line and "blobs uploaded" in line:
            text = line.split("(", 1)[1]
            nums = [int(w) for w in text.replace(",", " ").split() if w.isdigit()]
            return nums[0], nums[1], nums[2]
    raise AssertionError(f"no push line for {repo}")


def test_cached_layers_are_mounted_not_uploaded_again(kiln, base_images, plain_registry):
    repo = f"cache/mount-{uuid.uuid4().hex[:8]}"
    ctx = kiln.context({"Dockerfile": _dockerfile(base_images.busybox_index), "a.txt": "A\n", "b.txt": "B\n"})
    first, _ = _build(kiln, plain_registry, ctx, repo)
    uploaded, mounted, existed = _pushed_stats(first, repo)
    # WORKDIR, COPY, COPY are not cached by default; the three RUN layers were uploaded to the cache
    # repository in the background and are mounted from there (the base layer from its own repository).
    assert mounted == 1 + 3, first.stderr[-3000:]
    assert uploaded == 3 + 1, first.stderr[-3000:]         # WORKDIR/COPY/COPY, config
    assert first.stderr.count(f"to {plain_registry.host}/{repo}/cache\"") == 2 * 3   # layer + config each
    assert "Using caching version" not in first.stderr
    second, ref = _build(kiln, plain_registry, ctx, repo)
    assert _ran(second) == set()
    assert second.stderr.count("Using caching version of cmd: RUN") == 3
    uploaded, mounted, existed = _pushed_stats(second, repo)
    # everything is in the repository already (HEAD 200): nothing mounted, nothing but new layers uploaded
    assert mounted == 0 and uploaded <= 1 + 3 + 1, second.stderr[-3000:]
    judge_registry_image(plain_registry, ref)
    # COPY steps were never stored: with --cache-copy-layers their lookups miss, and the RUN steps after
    # each miss are still looked up and hit (kaniko stops looking after the first miss)
    third, _ = _build(kiln, plain_registry, ctx, repo, "--cache-copy-layers")
    assert third.stderr.count("msg=\"cache miss: ") == 2 and _ran(third) == set(), third.stderr[-3000:]


def test_changed_renamed_and_unrelated_sources(kiln, base_images, plain_registry):
    repo = f"cache/keys-{uuid.uuid4().hex[:8]}"
    files = {"Dockerfile": _dockerfile(base_images.busybox_index), "a.txt": "A\n", "b.txt": "B\n",
             ".dockerignore": "ignored/\n", "ignored/x": "1\n"}
    ctx = kiln.context(files)
    args = ("--cache-copy-layers",)
    first, ref = _build(kiln, plain_registry, ctx, repo, *args)
    assert _ran(first) == {"ONE", "TWO", "THREE"}
    first_names = [sorted(l.names()) for l in judge_registry_image(plain_registry, ref).layers]

    # an unrelated context file, and a change under an ignored directory: nothing runs
    with open(os.path.join(ctx, "README.md"), "w") as f:
        f.write("unrelated\n")
    with open(os.path.join(ctx, "ignored", "x"), "w") as f:
        f.write("2\n")
    assert _ran(_build(kiln, plain_registry, ctx, repo, *args)[0]) == set()

    # one COPY'd file changes: exactly the steps from that COPY on run again
    with open(os.path.join(ctx, "b.txt"), "w") as f:
        f.write("B2\n")
    run, ref = _build(kiln, plain_registry, ctx, repo, *args)
    assert _ran(run) == {"TWO", "THREE"}
    assert "Using caching version of cmd: COPY a.txt" in run.stderr
    assert "Using caching version of cmd: COPY b.txt" not in run.stderr
    report = judge_registry_image(plain_registry, ref)
    assert report.read("app/two.txt") == b"B2\n" and report.read("app/one.txt") == b"A\n"
    # the steps that ran after cache hits snapshot exactly what they changed: the index followed the
    # extracted layers
    assert [sorted(l.names()) for l in report.layers] == first_names

    # a build arg the first RUN sees changes: everything from that RUN on runs
    run, _ = _build(kiln, plain_registry, ctx, repo, *args, "--build-arg", "FLAVOUR=spicy")
    assert _ran(run) == {"ONE", "TWO", "THREE"}


def test_renamed_or_chmodded_directory_source_invalidates(kiln, base_images, plain_registry):
    repo = f"cache/rename-{uuid.uuid4().hex[:8]}"
    dockerfile = f"""\
FROM {base_images.busybox_index}
COPY src/ /src/
RUN echo RAN-$(echo STEP)-ONE && ls -l /src > /listing
"""
    ctx = kiln.context({"Dockerfile": dockerfile, "src/x.py": "print(1)\n", "src/sub/y.py": "y\n"})
    assert _ran(_build(kiln, plain_registry, ctx, repo)[0]) == {"ONE"}
    assert _ran(_build(kiln, plain_registry, ctx, repo)[0]) == set()
    os.rename(os.path.join(ctx, "src", "x.py"), os.path.join(ctx, "src", "z.py"))
    run, ref = _build(kiln, plain_registry, ctx, repo)
    assert _ran(run) == {"ONE"}, "a renamed source invalidates the steps after its COPY"
    assert b"z.py" in judge_registry_image(plain_registry, ref).read("listing")
    assert _ran(_build(kiln, plain_registry, ctx, repo)[0]) == set()
    os.chmod(os.path.join(ctx, "src", "z.py"), 0o755)
    assert _ran(_build(kiln, plain_registry, ctx, repo)[0]) == {"ONE"}, "a chmodded source invalidates"


def _blob_file(registry, digest: str) -> str:
    hexd = digest.split(":", 1)[1]
    return os.path.join(registry.storage_dir, "docker", "registry", "v2", "blobs", "sha256", hexd[:2], hexd, "data")


def test_corrupt_cache_blob_falls_back_to_running_the_step(kiln, base_images, plain_registry):
    repo = f"cache/corrupt-{uuid.uuid4().hex[:8]}"
    dockerfile = f"FROM {base_images.busybox_index}\nRUN echo RAN-$(echo STEP)-ONE && echo {uuid.uuid4().hex} > /id\n"
    ctx = kiln.context({"Dockerfile": dockerfile})
    assert _ran(_build(kiln, plain_registry, ctx, repo)[0]) == {"ONE"}
    tags = skopeo_tags(plain_registry, f"{repo}/cache")
    assert len(tags) == 1
    raw = subprocess.run(["skopeo", "inspect", "--raw", *plain_registry.skopeo_args(""),
                          f"docker://{plain_registry.host}/{repo}/cache:{tags[0]}"],
                         capture_output=True, text=True, check=True).stdout
    layer = json.loads(raw)["layers"][0]["digest"]
    path = _blob_file(plain_registry, layer)
    with open(path, "r+b") as f:
        f.seek(20)
        f.write(b"corrupted!")
    run, _ = _build(kiln, plain_registry, ctx, repo)
    assert _ran(run) == {"ONE"}
    assert "unusable" in run.stderr and layer in run.stderr, run.stderr[-3000:]


def test_cache_repo_behind_bearer_auth(kiln, base_images, token_registry):
    repo = f"private/cache-{uuid.uuid4().hex[:8]}"
    ctx = kiln.context({"Dockerfile": _dockerfile(base_images.busybox_index), "a.txt": "A\n", "b.txt": "B\n"})
    ref = token_registry.ref(f"{repo}:v1")
    args = ("--destination", ref, "--registry-certificate", f"{token_registry.host}={token_registry.ca_path}",
            "--insecure-registry", base_images.busybox_index.split("/")[0], "--cache")
    first = kiln.build(ctx, *args, docker_config=token_registry.docker_config_dir).check()
    assert _ran(first) == {"ONE", "TWO", "THREE"}
    assert len(skopeo_tags(token_registry, f"{repo}/cache")) == 3
    second = kiln.build(ctx, *args, docker_config=token_registry.docker_config_dir).check()
    assert _ran(second) == set(), second.stderr[-3000:]
    scopes = [s for entry in token_registry.token_log() if entry.get("granted") for s in entry.get("scopes", [])]
    assert any(f"repository:{repo}/cache:" in s for s in scopes), scopes[-10:]
    # without credentials the build is refused before it starts (the push permission check)...
    empty = os.path.join(kiln.context({"config.json": "{}"}))
    refused = kiln.build(ctx, *args, docker_config=empty)
    assert _ran(refused) == set()
    refused.refused(f"cannot push to {ref}", "denied (anonymous)")
    # ...and with the check skipped the cache cannot be read: every step runs (and the push fails)
    third = kiln.build(ctx, *args, "--skip-push-permission-check", docker_config=empty)
    assert _ran(third) == {"ONE", "TWO", "THREE"}
    third.refused(f"blob HEAD {token_registry.host}/{repo}: HEAD /v2/{repo}/blobs/sha256:",
                  "denied (anonymous): Unauthorized (HTTP 401)")


def test_copy_from_a_stage_follows_that_stage(kiln, base_images, plain_registry):
    repo = f"cache/from-{uuid.uuid4().hex[:8]}"
    dockerfile = f"""\
FROM {base_images.busybox_index} AS build
COPY in.txt /in.txt
RUN echo RAN-$(echo STEP)-ONE && tr a-z A-Z < /in.txt > /out.txt
FROM {base_images.busybox_index}
COPY --from=build /out.txt /app/out.txt
RUN echo RAN-$(echo STEP)-TWO && cat /app/out.txt > /app/copy.txt
"""
    ctx = kiln.context({"Dockerfile": dockerfile, "in.txt": "hello\n", "other.txt": "o\n"})
    args = ("--cache-copy-layers",)
    assert _ran(_build(kiln, plain_registry, ctx, repo, *args)[0]) == {"ONE", "TWO"}
    assert _ran(_build(kiln, plain_registry, ctx, repo, *args)[0]) == set()
    with open(os.path.join(ctx, "in.txt"), "w") as f:
        f.write("changed\n")
    run, ref = _build(kiln, plain_registry, ctx, repo, *args)
    assert _ran(run) == {"ONE", "TWO"}, "COPY --from must not reuse a layer of the old stage (kaniko #1348)"
    assert judge_registry_image(plain_registry, ref).read("app/copy.txt") == b"CHANGED\n"


def test_oci_layout_cache_repo_and_ttl(kiln, base_images, plain_registry, tmp_path):
    repo = f"cache/layout-{uuid.uuid4().hex[:8]}"
    layout = str(tmp_path / "cache-layout")
    os.makedirs(layout)
    ctx = kiln.context({"Dockerfile": _dockerfile(base_images.busybox_index), "a.txt": "A\n", "b.txt": "B\n"})
    ref = plain_registry.ref(f"{repo}:v1")

    def build(*extra):
        return kiln.build(ctx, "--destination", ref, "--insecure-registry", plain_registry.host, "--cache",
                          f"--cache-repo=oci:{layout}", *extra).check()

    assert _ran(build()) == {"ONE", "TWO", "THREE"}
    assert os.path.exists(os.path.join(layout, "index.json"))
    assert skopeo_tags(plain_registry, f"{repo}/cache") == [], "the layout is the cache, not the registry"
    assert _ran(build()) == set()
    time.sleep(1.1)
    expired = build("--cache-ttl=1s")
    assert _ran(expired) == {"ONE", "TWO", "THREE"} and "expired" in expired.stderr


def test_run_layers_off_and_no_push_cache(kiln, base_images, plain_registry):
    repo = f"cache/flags-{uuid.uuid4().hex[:8]}"
    ctx = kiln.context({"Dockerfile": _dockerfile(base_images.busybox_index), "a.txt": "A\n", "b.txt": "B\n"})
    _build(kiln, plain_registry, ctx, repo, "--no-push-cache")
    assert skopeo_tags(plain_registry, f"{repo}/cache") == []
    _build(kiln, plain_registry, ctx, repo, "--cache-run-layers=false", "--cache-copy-layers")
    assert len(skopeo_tags(plain_registry, f"{repo}/cache")) == 2, "only the two COPY steps are cached"
    run, _ = _build(kiln, plain_registry, ctx, repo, "--cache-run-layers=false", "--cache-copy-layers")
    assert _ran(run) == {"ONE", "TWO", "THREE"} and run.stderr.count("Using caching version of cmd: COPY") == 2


def test_a_failed_build_keeps_what_it_cached(kiln, base_images, plain_registry):
    repo = f"cache/failed-{uuid.uuid4().hex[:8]}"
    ok = f"FROM {base_images.busybox_index}\nRUN echo RAN-$(echo STEP)-ONE && echo 1 > /one\n"
    ctx = kiln.context({"Dockerfile": ok + "RUN exit 3\n"})
    ref = plain_registry.ref(f"{repo}:v1")
    failed = kiln.build(ctx, "--destination", ref, "--insecure-registry", plain_registry.host, "--cache")
    assert _ran(failed) == {"ONE"}
    failed.refused("The command '/bin/sh -c exit 3' returned a non-zero code: 3")
    assert skopeo_tags(plain_registry, repo) == [], "a failed build pushes no image"
    assert len(skopeo_tags(plain_registry, f"{repo}/cache")) == 1
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(ok + "RUN echo RAN-$(echo STEP)-TWO\n")
    run, ref = _build(kiln, plain_registry, ctx, repo)
    assert _ran(run) == {"TWO"}
    first = judge_registry_image(plain_registry, ref).config["history"]
    assert first[-1]["empty_layer"] is True, "RUN TWO changes no file"
    again, _ = _build(kiln, plain_registry, ctx, repo)
    assert _ran(again) == set(), "a step without a layer is cached too (a zero-layer cache image)"
    history = judge_registry_image(plain_registry, ref).config["history"]
    assert [(h["created_by"], h.get("empty_layer", False)) for h in history] == \
        [(h["created_by"], h.get("empty_layer", False)) for h in first]


def test_docker_format_and_zstd_builds_hit_their_own_entries(kiln, base_images, plain_registry):
    repo = f"cache/formats-{uuid.uuid4().hex[:8]}"
    ctx = kiln.context({"Dockerfile": _dockerfile(base_images.busybox_index), "a.txt": "A\n", "b.txt": "B\n"})
    assert _ran(_build(kiln, plain_registry, ctx, repo, "--image-format=docker")[0]) == {"ONE", "TWO", "THREE"}
    run, ref = _build(kiln, plain_registry, ctx, repo, "--image-format=docker")
    assert _ran(run) == set()
    report = judge_registry_image(plain_registry, ref)
    assert all(l.media_type.startswith("application/vnd.docker.") for l in report.layers)
    # zstd layers are other bytes: other keys, so the gzip entries are not used
    run, ref = _build(kiln, plain_registry, ctx, repo, "--compression=zstd", "--image-format=oci")
    assert _ran(run) == {"ONE", "TWO", "THREE"}
    run, ref = _build(kiln, plain_registry, ctx, repo, "--compression=zstd", "--image-format=oci")
    assert _ran(run) == set()
    assert judge_registry_image(plain_registry, ref).layers[-1].media_type.endswith("zstd")

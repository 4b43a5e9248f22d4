"""The warmer fills --cache-dir; a build with that cache pulls nothing for its base images."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from executor.cache.base import BaseImageCache
from executor.image import Platform
from tests.e2e.conftest import REPO
from tests.rig.judge import judge_registry_image
from tests.rig.registry import start_registry


def _warmer(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_REGISTRY", "DOCKER_CONFIG"))}
    env["PYTHONPATH"] = REPO
    return subprocess.run([sys.executable, "-c", "import sys; from executor.main import warmer_main; "
                           "sys.exit(warmer_main())", "--log-format", "text", *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def _refused(host: str) -> bool:
    addr, port = host.split(":")
    try:
        socket.create_connection((addr, int(port)), timeout=2).close()
        return False
    except OSError:
        return True


def test_warmed_build_works_with_the_base_registry_stopped(kiln, base_images, plain_registry, tmp_path):
    running = start_registry("plain", str(tmp_path / "base-registry"))
    try:
        base = base_images.copy_image(base_images.busybox_index, running.registry, "base/busybox:1")
        dockerfile = f"ARG BASE={base}\nFROM $BASE AS first\nRUN echo one > /one\nFROM first\nRUN echo two > /two\n"
        ctx = kiln.context({"Dockerfile": dockerfile})
        cache_dir = str(tmp_path / "cache")
        warm = _warmer("--dockerfile", os.path.join(ctx, "Dockerfile"), "--cache-dir", cache_dir)
        assert warm.returncode == 0, warm.stderr
        refs = os.listdir(os.path.join(cache_dir, "refs"))
        assert len(refs) == 1, "the second FROM names a stage, not an image"
        with open(os.path.join(cache_dir, "refs", refs[0])) as f:
            entry = json.load(f)
        assert entry["reference"] == base
        again = _warmer("--image", base, "--cache-dir", cache_dir)
        assert again.returncode == 0 and "already in the cache" in again.stderr, again.stderr
    finally:
        running.stop()
    assert _refused(running.registry.host)
    ref = plain_registry.ref("cache/warmed:v1")
    run = kiln.build(ctx, "--destination", ref, "--insecure-registry", plain_registry.host,
                     "--cache-dir", cache_dir).check()
    assert "in the base image cache" in run.stderr
    report = judge_registry_image(plain_registry, ref)
    assert report.read("one") == b"one\n" and report.read("two") == b"two\n"
    # without the cache the same build cannot start: its base image's registry is gone
    failed = kiln.build(ctx, "--destination", ref, "--insecure-registry", plain_registry.host,
                        "--cache-dir", str(tmp_path / "empty"))
    host = running.registry.host
    assert failed.refused() == (f"Dockerfile:2: FROM {host}/base/busybox:1: cannot reach registry {host} "
                                f"(connection refused) for {host}/base/busybox:1")


def test_expired_or_damaged_entries_are_not_used(base_images, plain_registry, tmp_path):
    from executor.registry import RegistryClient
    cache = BaseImageCache(str(tmp_path / "c"), ttl=3600)
    client = RegistryClient(blob_dir=cache.blob_dir)
    platform = Platform.parse("linux/amd64")
    digest = cache.warm(client, base_images.busybox_index, platform)
    image = cache.pull(base_images.busybox_index, platform)
    assert image is not None and image.digest == digest
    assert BaseImageCache(cache.directory, ttl=0).pull(base_images.busybox_index, platform) is None
    # expired, but the registry says the tag still names the cached manifest: the cached blobs serve
    current = BaseImageCache(cache.directory, ttl=0, client=client).pull(base_images.busybox_index, platform)
    assert current is not None and current.digest == digest
    assert current.layers[0].path == cache.blob_path(current.layers[0].digest)
    pinned = base_images.busybox_index.rsplit(":", 1)[0] + "@" + digest
    assert cache.pull(pinned, platform) is None, "a different reference is a different entry"
    layer = image.layers[0]
    with open(cache.blob_path(layer.digest), "r+b") as f:
        f.seek(10)
        f.write(b"xx")
    assert cache.pull(base_images.busybox_index, platform) is None
    assert cache.warm(client, base_images.busybox_index, platform) == digest   # damaged: pulled again
    assert cache.pull(base_images.busybox_index, platform) is not None


def test_damaged_cache_entries_are_named_and_pulled_again(base_images, tmp_path, caplog):
    """A cached blob that does not hash to its digest (BaseCacheError; DigestMismatch for a manifest or config)
    is not used: one warning names the image and the blob, and the build pulls the image instead."""
    import hashlib
    import logging

    from executor.registry import RegistryClient
    cache = BaseImageCache(str(tmp_path / "c"), ttl=3600)
    client = RegistryClient(blob_dir=cache.blob_dir)
    platform = Platform.parse("linux/amd64")
    ref = base_images.busybox_index
    cache.warm(client, ref, platform)
    image = cache.pull(ref, platform)
    assert image is not None
    caplog.set_level(logging.WARNING, logger="executor.cache")

    layer_path = cache.blob_path(image.layers[0].digest)
    with open(layer_path, "r+b") as f:
        f.seek(10)
        f.write(b"xx")
    got = "sha256:" + hashlib.sha256(open(layer_path, "rb").read()).hexdigest()
    assert cache.pull(ref, platform) is None
    assert caplog.messages[-1] == (f"base image cache: {ref} is damaged (layer {image.layers[0].digest} hashes to "
                                   f"{got} ({image.layers[0].size} bytes)); pulling it")
    os.unlink(layer_path)
    cache.warm(client, ref, platform)

    config_path = cache.blob_path(image.config_descriptor().digest)
    with open(config_path, "ab") as f:
        f.write(b" ")
    got = "sha256:" + hashlib.sha256(open(config_path, "rb").read()).hexdigest()
    assert cache.pull(ref, platform) is None
    assert caplog.messages[-1] == (f"base image cache: {ref} is damaged (blob {image.config_descriptor().digest} "
                                   f"is corrupt: its bytes hash to {got}); pulling it")


def test_the_warmer_warms_every_platform_and_a_multi_platform_build_uses_them(kiln, base_images, plain_registry,
                                                                              tmp_path):
    """`--custom-platform` takes a list in the warmer as in the executor: each platform's image is cached, and a
    two-platform build then needs the base's registry for neither."""
    running = start_registry("plain", str(tmp_path / "base-registry"))
    try:
        base = base_images.copy_image(base_images.busybox_index, running.registry, "base/busybox:multi")
        cache_dir = str(tmp_path / "cache")
        warm = _warmer("--image", base, "--cache-dir", cache_dir, "--customPlatform=linux/amd64,linux/arm64")
        assert warm.returncode == 0, warm.stderr
        assert len(os.listdir(os.path.join(cache_dir, "refs"))) == 2, warm.stderr
    finally:
        running.stop()
    assert _refused(running.registry.host)
    ctx = kiln.context({"Dockerfile": f"FROM {base}\nCOPY f /f\n", "f": "x\n"})
    layout = str(tmp_path / "layout")
    run = kiln.build(ctx, "--no-push", "--oci-layout-path", layout, "--cache-dir", cache_dir,
                     "--custom-platform", "linux/amd64", "--custom-platform", "linux/arm64").check()
    assert run.stderr.count("in the base image cache") >= 2, run.stderr[-3000:]
    with open(os.path.join(layout, "index.json")) as f:
        (entry,) = json.load(f)["manifests"]
    with open(os.path.join(layout, "blobs", "sha256", entry["digest"].split(":")[1])) as f:
        index = json.load(f)
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]

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
    failed.refused(f"Dockerfile:2: FROM {host}/",
                   f"cannot reach registry {host} (connection refused) for {host}/base/busybox")


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

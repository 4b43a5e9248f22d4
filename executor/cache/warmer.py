"""`warmer`: store base images (manifest, config, layers) in `--cache-dir` for later builds.

Images come from `--image` (repeatable) and from every `FROM` of `--dockerfile` that names an image
(ARGs before the first FROM expanded with `--build-arg`; stages and scratch skipped).
"""
from __future__ import annotations

import logging
import os
from typing import Callable

from executor.dockerfile import parse, shell
from executor.image import Platform, host_platform
from executor.options import WarmerOptions
from executor.registry import RegistryClient

from .base import BaseImageCache

log = logging.getLogger(__name__)


def dockerfile_images(path: str, build_args: dict[str, str]) -> list[tuple[str, str]]:
    """(image, platform text or "") for every FROM of the Dockerfile that is not a stage or scratch."""
    with open(path, "rb") as f:
        dockerfile = parse(f.read(), path)
    env: dict[str, str] = {}
    for arg in dockerfile.global_args:
        for a in arg.args:
            if a.key in build_args:
                env[a.key] = build_args[a.key]
            elif a.default is not None:
                env[a.key] = shell.expand(a.default, env, dockerfile.escape)
    seen_stages: set[str] = set()
    out: list[tuple[str, str]] = []
    for st in dockerfile.stages:
        name = shell.expand(st.base_name, env, dockerfile.escape)
        if name.lower() != "scratch" and name.lower() not in seen_stages:
            platform = shell.expand(st.platform, env, dockerfile.escape) if st.platform else ""
            out.append((name, platform))
        if st.name:
            seen_stages.add(st.name.lower())
        seen_stages.add(str(st.index))
    return out


def warm(opts: WarmerOptions, client_factory: Callable[[str], RegistryClient]) -> int:
    """Fill the cache; returns the exit code. `client_factory(blob_dir)` makes the registry client."""
    cache = BaseImageCache(opts.cache_dir, opts.cache_ttl)
    os.makedirs(cache.blob_dir, exist_ok=True)
    client: RegistryClient = client_factory(cache.blob_dir)
    defaults = [Platform.parse(p) for p in opts.platforms] or [host_platform()]
    wanted: list[tuple[str, Platform]] = [(name, default) for name in opts.images for default in defaults]
    if opts.dockerfile:
        for name, platform in dockerfile_images(opts.dockerfile, dict(opts.build_args)):
            if platform:      # FROM --platform=... names its own
                wanted.append((name, Platform.parse(platform)))
            else:
                wanted.extend((name, default) for default in defaults)
    failures = 0
    done: set[tuple[str, str]] = set()
    for name, platform in wanted:
        if (name, str(platform)) in done:
            continue
        done.add((name, str(platform)))
        try:
            cache.warm(client, name, platform, force=opts.force)
        except Exception as e:
            failures += 1
            log.error("Failed to cache image %s: %s", name, e)
    client.close()
    return 1 if failures else 0

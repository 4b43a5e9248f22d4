"""kiln's caches: the layer cache in a registry (`--cache`, `--cache-repo`, `--cache-ttl`,
`--cache-copy-layers`, `--cache-run-layers`, `--no-push-cache`) and the base-image cache
(`--cache-dir`, filled by `warmer`).

Decisions:
  * Each cached step is a one-layer image `<cache-repo>:<key>` (zero layers for a step that changed no
    file), as kaniko does, so any registry works; `--cache-repo=oci:PATH` keeps them in an OCI layout.
    The default repository is `<first destination's repository>/cache`.
  * Keys chain per stage (see `keys`): a miss does not turn lookups off.
  * Uploads run in a background thread; the build waits for them before its own push, which then mounts
    the cached blobs from the cache repository (or skips them by HEAD).
  * `--compressed-caching=false` is accepted and has no effect: kiln's layers are files on disk, never
    held in memory, so there is nothing for it to save.
  * `--cache-dir` is read whenever it is a directory (kaniko reads it whenever it is set).
"""
from __future__ import annotations

import logging
import os
from typing import Any

from executor.registry import Reference, RegistryClient

from .base import BaseImageCache
from .steps import LayerCache, StageSteps
from .store import CacheEntry, LayoutStore, RegistryStore

log = logging.getLogger(__name__)

__all__ = ["LayerCache", "StageSteps", "BaseImageCache", "RegistryStore", "LayoutStore", "CacheEntry",
           "attach", "cache_repo_for"]


def cache_repo_for(opts: Any) -> str:
    """--cache-repo, or `<first destination's registry/repository>/cache`."""
    if opts.cache_repo:
        return opts.cache_repo
    if not opts.destinations:
        return ""
    ref = Reference.parse(opts.destinations[0])
    return f"{ref.registry}/{ref.repository}/cache"


def attach(opts: Any, builder: Any, client: RegistryClient) -> LayerCache | None:
    """Give `builder` the caches the options ask for; returns the layer cache (or None)."""
    if opts.cache_dir and os.path.isdir(opts.cache_dir):
        builder.base_cache = BaseImageCache(opts.cache_dir, opts.cache_ttl, client)
    if not opts.cache:
        return None
    if builder.settings.single_snapshot:
        log.warning("--cache has no effect with --single-snapshot: there are no per-step layers to cache")
        return None
    repo = cache_repo_for(opts)
    if not repo:
        log.warning("--cache without --cache-repo nor --destination: no cache repository, cache disabled")
        return None
    platform = builder.settings.platform
    push = not opts.no_push_cache
    if repo.startswith("oci:"):
        store = LayoutStore(os.path.abspath(repo[4:]), opts.cache_ttl, platform, push)
    else:
        store = RegistryStore(client, repo, opts.cache_ttl, platform, push)
    if not getattr(opts, "compressed_caching", True):
        log.info("--compressed-caching=false: kiln's cached layers are files on disk; nothing to change")
    from executor.build.builder import _now
    settings = builder.settings
    cache = LayerCache(store, run_layers=opts.cache_run_layers, copy_layers=opts.cache_copy_layers,
                       key_settings={"compression": settings.compression, "level": settings.compression_level,
                                     "epoch": settings.epoch},
                       now=lambda: _now(settings.epoch))
    builder.cache = cache
    log.info("Layer cache in %s (ttl %.0fh, RUN %s, COPY/ADD %s)", store.name, opts.cache_ttl / 3600,
             "on" if opts.cache_run_layers else "off", "on" if opts.cache_copy_layers else "off")
    return cache

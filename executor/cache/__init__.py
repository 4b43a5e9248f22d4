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

from typing import TYPE_CHECKING, Any

from executor.registry import Reference

if TYPE_CHECKING:
    from executor.image import Platform
    from executor.registry import RegistryClient

    from .base import BaseImageCache
    from .steps import CacheHit, LayerCache, StageSteps
    from .store import CacheEntry, LayoutStore, RegistryStore

log = logging.getLogger(__name__)

# The submodules load when a cache is asked for (--cache, --cache-dir) or a name below is used: a build
# without caches does not pay their imports at start-up (issue 21)
_LAZY = {"BaseImageCache": "base", "CacheHit": "steps", "LayerCache": "steps", "StageSteps": "steps",
         "CacheEntry": "store", "LayoutStore": "store", "RegistryStore": "store"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

__all__ = ["LayerCache", "StageSteps", "CacheHit", "BaseImageCache", "RegistryStore", "LayoutStore", "CacheEntry",
           "layer_cache", "base_image_cache", "cache_repo_for"]


def cache_repo_for(cache_repo: str, destinations: list[str]) -> str:
    """--cache-repo, or `<first destination's registry/repository>/cache`."""
    if cache_repo:
        return cache_repo
    if not destinations:
        return ""
    ref = Reference.parse(destinations[0])
    return f"{ref.registry}/{ref.repository}/cache"


def base_image_cache(cache_dir: str, ttl: float, client: RegistryClient) -> BaseImageCache | None:
    """The base-image cache of --cache-dir, when it is a directory (kaniko reads it whenever it is set)."""
    if cache_dir and os.path.isdir(cache_dir):
        from .base import BaseImageCache

        return BaseImageCache(cache_dir, ttl, client)
    return None


def layer_cache(*, enabled: bool, repo: str, destinations: list[str], ttl: float, run_layers: bool,
                copy_layers: bool, push: bool, single_snapshot: bool, platform: Platform,
                key_settings: dict, client: RegistryClient) -> LayerCache | None:
    """The layer cache the options ask for (--cache, --cache-repo, --cache-ttl, --cache-run-layers,
    --cache-copy-layers, --no-push-cache), or None. `key_settings` (compression, level, epoch) go into
    every key: a layer written otherwise is another layer."""
    if not enabled:
        return None
    if single_snapshot:
        log.warning("--cache has no effect with --single-snapshot: there are no per-step layers to cache")
        return None
    repo = cache_repo_for(repo, destinations)
    if not repo:
        log.warning("--cache without --cache-repo nor --destination: no cache repository, cache disabled")
        return None
    from .steps import LayerCache
    from .store import LayoutStore, RegistryStore

    if repo.startswith("oci:"):
        store = LayoutStore(os.path.abspath(repo[4:]), ttl, platform, push)
    else:
        store = RegistryStore(client, repo, ttl, platform, push)
    cache = LayerCache(store, run_layers=run_layers, copy_layers=copy_layers, key_settings=key_settings)
    log.info("Layer cache in %s (ttl %.0fh, RUN %s, COPY/ADD %s)", store.name, ttl / 3600,
             "on" if run_layers else "off", "on" if copy_layers else "off")
    return cache

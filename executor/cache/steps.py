"""The layer cache as the build loop sees it: a key chain per stage, lookups before a step, stores after.

`LayerCache.begin_stage` gives a `StageSteps`; for each instruction the builder calls `replay(inst, ctx)`
(True: the step was applied from the cache, nothing else to do) and, when it ran the step itself,
`ran(inst, ctx)` after committing its layer. A hit extracts the cached layer onto the root (the
snapshotter's index follows, so the next snapshot is right) and appends the same layer and history
text the step would have produced. Lookups go on after a miss: a key only depends on its inputs.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from executor.commands.addurl import is_git_source, is_url
from executor.dockerfile.instructions import AddInstruction, CopyInstruction, Instruction, RunInstruction
from executor.image import HistoryEntry, Image

from . import keys as _keys
from .store import Store

log = logging.getLogger(__name__)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    stored: int = 0
    hit_steps: list[str] = field(default_factory=list)


class LayerCache:
    """The `--cache` of one build: which steps are looked up, where entries live, the stage keys."""

    def __init__(self, store: Store, run_layers: bool, copy_layers: bool, key_settings: dict[str, Any],
                 now: Callable[[], str]):
        self.store = store
        self.run_layers = run_layers
        self.copy_layers = copy_layers
        self.key_settings = key_settings
        self.now = now
        self.stage_keys: dict[int, str] = {}
        self.files = _keys.FileDigests()
        self.stats = CacheStats()
        self._finished = False

    def lookup(self, key: str):
        return self.store.lookup(key)

    def store_layer(self, key: str, layer, created_by: str) -> None:
        self.stats.stored += 1
        self.store.store(key, layer, created_by)

    def begin_stage(self, builder: Any, stage: Any, image: Image, continues: int | None) -> "StageSteps":
        platform = str(builder._platform_for(stage))
        if continues is not None:
            base = "stage:" + self.stage_keys.get(continues, "")
        elif builder.bases[stage.index].lower() == "scratch":
            base = "scratch"
        else:
            base = "image:" + image.digest
        key = _keys.stage_key(base, platform, self.key_settings)
        log.debug("cache: stage %s starts from key %s (%s)", stage.ref, key, base)
        self.stage_keys[stage.index] = key
        return StageSteps(self, builder, stage, key, platform)

    def finish(self, cancel: bool = False) -> None:
        """Wait for background uploads (`cancel`: drop those not started); log what the cache did.
        Safe to call more than once."""
        if self._finished:
            return
        self._finished = True
        self.store.finish(cancel)
        log.info("cache: %d hits, %d misses, %d entries stored in %s", self.stats.hits, self.stats.misses,
                 self.stats.stored, self.store.name)


class StageSteps:
    def __init__(self, cache: LayerCache, builder: Any, stage: Any, key: str, platform: str):
        self.cache = cache
        self.builder = builder
        self.stage = stage
        self.key = key
        self.platform = platform
        self._pending: str | None = None
        self._cacheable = False
        self._result_chained = False
        self._before = (0, 0)

    # ---- what a step's key is made of ----------------------------------------------------------
    def cacheable(self, inst: Instruction) -> bool:
        if isinstance(inst, RunInstruction):
            return self.cache.run_layers
        if isinstance(inst, (CopyInstruction, AddInstruction)):
            return self.cache.copy_layers and not self._remote(inst)
        return False

    @staticmethod
    def _remote(inst: Instruction) -> bool:
        return isinstance(inst, AddInstruction) and any(is_url(s) or is_git_source(s) for s in inst.sources)

    def _identity(self, ref: str, inst: Instruction) -> str:
        other = self.builder.dockerfile.stage(ref)
        if other is not None and other.index < self.stage.index:
            return "stage:" + self.cache.stage_keys.get(other.index, "")
        image = self.builder.pull(ref, self.builder.settings.platform, inst)
        return "image:" + image.digest

    def step_key(self, inst: Instruction, ctx: Any) -> str:
        cfg = ctx.image.config
        config = {"user": cfg.user, "workdir": cfg.working_dir, "shell": cfg.shell, "platform": self.platform}
        sources: list[str] = []
        if isinstance(inst, (CopyInstruction, AddInstruction)):
            written = [ctx.expand(s) for s in inst.sources]
            local = [s for s in written if not (is_url(s) or is_git_source(s))]
            from_ = ctx.expand(inst.from_) if getattr(inst, "from_", "") else ""
            if from_:
                sources.append(self._identity(from_, inst))
                root, excluded = ctx.source_root(from_), None
            else:
                root, excluded = ctx.context_dir, ctx.excluded
            if local and root:
                sources.append(_keys.sources_digest(root, local, excluded, self.cache.files))
        elif isinstance(inst, RunInstruction):
            for m in inst.expanded_mounts(ctx.expand):
                if m.type != "bind":
                    continue
                if m.from_:
                    sources.append(self._identity(m.from_, inst))
                    root = ctx.source_root(m.from_)
                else:
                    root = ctx.context_dir
                if root:
                    sources.append(_keys.sources_digest(root, [m.source or "/"], None, self.cache.files))
        return _keys.step_key(self.key, inst, ctx.expansion_env(), config, sources)

    # ---- the hooks -----------------------------------------------------------------------------
    def replay(self, inst: Instruction, ctx: Any) -> bool:
        """Compute the step's key; apply the step from the cache when it is there. True on a hit."""
        image: Image = ctx.image
        self._before = (len(image.layers), len(image.config.history))
        self._result_chained = self._remote(inst)
        try:
            self._pending = self.step_key(inst, ctx)
        except Exception as e:   # the step itself will say what is wrong with it
            log.debug("cache: no key for %s: %s", inst.keyword, e)
            self._pending = _keys.Hasher(_keys.KEY_VERSION, "unkeyed", self.key, str(e)).hexdigest()
            self._cacheable = False
            self._result_chained = True
            return False
        self._cacheable = self.cacheable(inst)
        if not self._cacheable:
            return False
        entry = self.cache.lookup(self._pending)
        if entry is None:
            self.cache.stats.misses += 1
            return False
        history = dict(created=self.cache.now(), created_by=entry.created_by, comment="buildkit.dockerfile.v0")
        if entry.layer is not None:
            self.builder.snapshotter.extract(entry.blob_path, name=entry.layer.digest)
            image.append_layer(entry.layer, HistoryEntry(**history))
        else:
            image.append_history(HistoryEntry(**history, empty_layer=True))
        log.info("Using caching version of cmd: %s", (inst.original or inst.keyword).splitlines()[0])
        self.cache.stats.hits += 1
        self.cache.stats.hit_steps.append(entry.created_by)
        self._advance(self._pending)
        return True

    def ran(self, inst: Instruction, ctx: Any) -> None:
        """After the builder ran and committed the step: store its layer, move the chain on."""
        image: Image = ctx.image
        layers_before, history_before = self._before
        layer = image.layers[-1] if len(image.layers) > layers_before else None
        key = self._pending or self.key
        if self._cacheable and len(image.config.history) > history_before:
            created_by = image.config.history[-1].created_by
            if layer is not None and len(image.layers) == layers_before + 1:
                self.cache.store_layer(key, layer, created_by)
                image.layers[-1] = self.cache.store.source_of(layer)
            elif layer is None:
                self.cache.store_layer(key, None, created_by)
        if self._result_chained:
            key = _keys.chain_after(key, layer.diff_id if layer is not None else "no layer")
        self._advance(key)

    def _advance(self, key: str) -> None:
        self.key = key
        self.cache.stage_keys[self.stage.index] = key
        self._pending = None

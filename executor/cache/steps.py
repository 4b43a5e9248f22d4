"""The layer cache as the build loop sees it (`executor.engine.protocols.StepCache`): a key chain per stage,
a lookup before each step, a store after a step that ran.

`LayerCache.begin_stage(start)` gives a `StageSteps`; for each instruction the build loop calls
`lookup(inst, ctx)` (a `CacheHit`: the loop applies its layer and history text instead of running the step)
and, when it ran the step itself, `ran(inst, ctx, layer, created_by)`, which stores the step's layer and
hands back the layer the image should hold (one the push can mount from the cache repository). Lookups go on
after a miss: a key only depends on its inputs. The cache never touches the build loop, the root or the
image: what it knows of a stage comes in `StageStart`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from executor.commands.copying.url import is_git_source, is_url
from executor.dockerfile.instructions import AddInstruction, CopyInstruction, Instruction, RunInstruction
from executor.image import Layer

from . import keys as _keys
from .store import Store

log = logging.getLogger(__name__)


@dataclass
class CacheStats:
    """Counts of one build's layer-cache hits, misses and stores (and the history texts of the hits), logged when
    the cache finishes."""
    hits: int = 0
    misses: int = 0
    stored: int = 0
    hit_steps: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CacheHit:
    """A step found in the cache: its layer (None: the step changed no file), the layer's blob on disk
    and the history text the step wrote."""
    layer: Layer | None
    blob_path: str
    created_by: str


class LayerCache:
    """The `--cache` of one build: which steps are looked up, where entries live, the stage keys."""

    def __init__(self, store: Store, run_layers: bool, copy_layers: bool, key_settings: dict[str, Any]):
        self.store = store
        self.run_layers = run_layers
        self.copy_layers = copy_layers
        self.key_settings = key_settings
        self.stage_keys: dict[int, str] = {}
        self.files = _keys.FileDigests()
        self.stats = CacheStats()
        self._finished = False

    def lookup(self, key: str):
        return self.store.lookup(key)

    def store_layer(self, key: str, layer: Layer | None, created_by: str) -> None:
        self.stats.stored += 1
        self.store.store(key, layer, created_by)

    def source_identity(self, source: str) -> str:
        """`stage:<index>` becomes `stage:<that stage's key>`; `image:<digest>` and `scratch` stay."""
        if source.startswith("stage:"):
            return "stage:" + self.stage_keys.get(int(source[len("stage:"):]), "")
        return source

    def begin_stage(self, start: Any) -> "StageSteps":
        """`start`: an `executor.engine.protocols.StageStart`."""
        base = self.source_identity(start.base)
        key = _keys.stage_key(base, start.platform, self.key_settings)
        log.debug("cache: stage %s starts from key %s (%s)", start.ref, key, base)
        self.stage_keys[start.index] = key
        return StageSteps(self, start.index, key, start.platform,
                          lambda ref: self.source_identity(start.identify(ref)))

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
    def __init__(self, cache: LayerCache, stage_index: int, key: str, platform: str,
                 identity: Callable[[str], str]):
        self.cache = cache
        self.stage_index = stage_index
        self.key = key
        self.platform = platform
        self.identity = identity        # a --from reference -> "stage:<key>" or "image:<digest>"
        self._pending: str | None = None
        self._cacheable = False
        self._result_chained = False

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

    def step_key(self, inst: Instruction, ctx: Any) -> str:
        cfg = ctx.image.config
        config = {"user": cfg.user, "workdir": cfg.working_dir, "shell": cfg.shell, "platform": self.platform}
        sources: list[str] = []
        if isinstance(inst, (CopyInstruction, AddInstruction)):
            expanded = ctx.expanded(inst)
            local = [s for s in expanded.sources if not (is_url(s) or is_git_source(s))]
            from_ = getattr(expanded, "from_", "")
            if from_:
                sources.append(self.identity(from_))
                root, excluded = ctx.source_root(from_), None
            else:
                root, excluded = ctx.context_dir, ctx.excluded
            if local and root:
                sources.append(_keys.sources_digest(root, local, excluded, self.cache.files))
        elif isinstance(inst, RunInstruction):
            for m in ctx.expanded(inst).mounts:
                if m.type != "bind":
                    continue
                if m.from_:
                    sources.append(self.identity(m.from_))
                    root = ctx.source_root(m.from_)
                else:
                    root = ctx.context_dir
                if root:
                    sources.append(_keys.sources_digest(root, [m.source or "/"], None, self.cache.files))
        return _keys.step_key(self.key, inst, ctx.expansion_env(), config, sources)

    # ---- the hooks -----------------------------------------------------------------------------
    def lookup(self, inst: Instruction, ctx: Any) -> CacheHit | None:
        """Compute the step's key; the cached step when it is there."""
        self._result_chained = self._remote(inst)
        try:
            self._pending = self.step_key(inst, ctx)
        except Exception as e:   # the step itself will say what is wrong with it
            log.debug("cache: no key for %s: %s", inst.keyword, e)
            self._pending = _keys.Hasher(_keys.KEY_VERSION, "unkeyed", self.key, str(e)).hexdigest()
            self._cacheable = False
            self._result_chained = True
            return None
        self._cacheable = self.cacheable(inst)
        if not self._cacheable:
            return None
        entry = self.cache.lookup(self._pending)
        if entry is None:
            self.cache.stats.misses += 1
            return None
        self.cache.stats.hits += 1
        self.cache.stats.hit_steps.append(entry.created_by)
        self._advance(self._pending)
        return CacheHit(entry.layer, entry.blob_path, entry.created_by)

    @property
    def consulted(self) -> bool:
        return self._cacheable

    def ran(self, inst: Instruction, ctx: Any, layer: Layer | None, created_by: str) -> Layer | None:
        """After the build loop ran the step: store its layer (when it wrote history), move the chain on.
        Returns the layer the image should hold."""
        key = self._pending or self.key
        if self._cacheable and created_by:
            self.cache.store_layer(key, layer, created_by)
            if layer is not None:
                layer = self.cache.store.source_of(layer)
        if self._result_chained:
            key = _keys.chain_after(key, layer.diff_id if layer is not None else "no layer")
        self._advance(key)
        return layer

    def _advance(self, key: str) -> None:
        self.key = key
        self.cache.stage_keys[self.stage_index] = key
        self._pending = None

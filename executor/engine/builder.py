"""The build loop: stage by stage, instruction by instruction, against one root.

For each stage: run the base image's ONBUILD triggers, then dispatch every instruction to its command module
and turn what it changed into a layer (walking the root after RUN, the written paths after COPY/ADD). The
base's files reach the root only when an instruction needs them (RUN, COPY, ADD, WORKDIR): a stage of
metadata alone extracts nothing, and its image is the base's layers and a new config; the root is wiped
first unless it already holds the start of the stage's layers (a stage continuing the one just built, layers
a cache hit added). `--extract=eager` extracts at the start of every stage instead.
Stages that a later COPY --from reads are kept as hard-linked trees in kiln's directory before the root is
wiped. The target stage's image is what the sinks write.

The loop owns no file system, registry or cache code: it is handed a snapshotter, an image source, an
optional layer cache and a redactor (see `executor.engine.protocols`), so it runs as well on fakes.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

from executor import commands, floor, progress
from executor.commands.base import CommandContext, Outcome
from executor.dockerfile import Dockerfile, DockerfileError, Stage, select_target, shell
from executor.dockerfile import args as build_args
from executor.dockerfile.history import COMMENT
from executor.dockerfile.instructions import ArgInstruction, Instruction, from_node
from executor.dockerfile.parser import parse_nodes
from executor.engine.protocols import (ImageSource, LayerSink, Redactor, Snapshotter, StageCache, StageStart,
                                       StepCache)
from executor.engine.stages import StagePlan, base_stage, plan, stage_refs
from executor.image import HistoryEntry, Image, Layer, Platform, host_platform, timestamp
from executor.image import mediatypes as mt
from snapshot.errors import UnsafeEntryError

SCRATCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"   # BuildKit's default for linux
log = logging.getLogger(__name__)


class BuildError(Exception):
    """A build that cannot go on; the message names the instruction, file and line where it can."""


@dataclass
class BuildSettings:
    """What the build loop needs from the command line."""
    root: str
    kiln_dir: str
    platform: Platform
    build_args: dict[str, str] = field(default_factory=dict)
    targets: list[str] = field(default_factory=list)   # --target: the first is the result; [] the last stage
    skip_unused_stages: bool = False
    single_snapshot: bool = False
    extract: str = "lazy"                     # "lazy": a stage's base goes onto the root when a step needs it
    materialize: bool = False                 # --materialize: the root ends holding the result's files
    extract_retries: int = 0                  # --image-fs-extract-retry: again after a failed fetch + extract
    epoch: int | None = None                  # --reproducible / SOURCE_DATE_EPOCH
    image_format: str = ""                    # "", mediatypes.OCI or mediatypes.DOCKER
    secrets: dict = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)     # --annotation: the manifest's
    output: Callable[[str], None] | None = None   # RUN output lines
    build_platform: Platform = field(default_factory=host_platform)


@dataclass
class StageResult:
    """A built stage: its image, the ARGs in scope at its end and, when a later stage copies from it, its saved
    root; the builder keeps one per stage (and memoises them)."""
    stage: Stage
    image: Image
    args: build_args.StageArgs | None = None  # the ARGs in scope at the stage's end (a child stage inherits them)
    saved_root: str | None = None             # a copy of the stage's root, for later COPY --from


class Builder:
    def __init__(self, dockerfile: Dockerfile, settings: BuildSettings, *, snapshotter: Snapshotter | None,
                 images: ImageSource, work_dir: str, cache: StepCache | None = None,
                 redact: Redactor | None = None, context_dir: str | None = None,
                 excluded: Callable[[str], bool] | None = None, run: Callable | None = None,
                 memo: dict[str, StageResult] | None = None, layer_sink: LayerSink | None = None):
        self.dockerfile = dockerfile
        self.settings = settings
        self._snapshotter = snapshotter       # None: a plan only (describe), no build
        self.images = images
        self.cache = cache
        self.redact: Redactor = redact or (lambda text: text)
        self.context_dir = context_dir
        self.excluded = excluded
        self.work_dir = work_dir
        self.run = run
        self.memo = memo                    # stages built for other platforms of the same run, by _stage_key
        self.layer_sink = layer_sink        # the result's layers, as soon as each is written (push while building)
        self.stage_keys: dict[int, str] = {}
        self.results: dict[int, StageResult] = {}
        self.images_pulled: dict[str, Image] = {}
        self.image_roots: dict[str, str] = {}
        self.root_layers: list[str] | None = None  # digests of the layers on the root (None: nothing extracted)
        self.root_changes_of: int | None = None    # the stage whose unsnapshotted changes are on the root
        self.steps_run = 0                         # steps begun so far (the progress counter)
        target, host = settings.platform, settings.build_platform
        self.build_args = build_args.BuildArgs(
            given=dict(settings.build_args),
            predefined={**build_args.platform_args(
                build_args.PlatformTriple(target.os, target.architecture, target.variant or ""),
                build_args.PlatformTriple(host.os, host.architecture, host.variant or "")),
                "TARGETSTAGE": self._target_stage_name(dockerfile, settings.targets)})
        self.global_scope = build_args.GlobalScope(self.build_args)
        for arg in dockerfile.global_args:
            for a in arg.args:
                default = arg.expand_word(lambda w: shell.expand(w, self.global_scope.values, dockerfile.escape),
                                          a.default) if a.default is not None else None
                self.global_scope.declare(a.key, default)
        self.bases: dict[int, str] = {st.index: self._expand_global(st.base_name, st.from_)
                                      for st in dockerfile.stages}

    @staticmethod
    def _target_stage_name(dockerfile: Dockerfile, targets: list[str]) -> str:
        """The builtin ARG TARGETSTAGE (Dockerfile 1.11, moby/buildkit#5431): the stage the build targets
        (the first --target, else the last stage) by name, or "default" when it has none."""
        stage = select_target(dockerfile, targets[0]) if targets else dockerfile.stages[-1]
        return stage.name or "default"

    # ---- planning ----------------------------------------------------------------------------------
    def _expand_global(self, word: str, where: Instruction) -> str:
        try:
            return shell.expand(word, self.global_scope.values, self.dockerfile.escape)
        except Exception as e:  # ExpansionError and friends carry their own text
            raise where.error(str(e)) from None

    def plan(self) -> StagePlan:
        targets = [select_target(self.dockerfile, t) for t in self.settings.targets] or [self.dockerfile.stages[-1]]
        return plan(self.dockerfile, targets, self.bases, self.settings.skip_unused_stages,
                    lambda word: shell.expand(word, self.global_scope.values, self.dockerfile.escape))

    @property
    def snapshotter(self) -> Snapshotter:
        if self._snapshotter is None:
            raise BuildError("this build loop was made without a snapshotter: it can describe a build, not run it")
        return self._snapshotter

    def describe(self) -> list[str]:
        """The plan of the build (`--dryrun`), one line per step: each stage's base resolved to its digest
        (its manifest and config fetched, no layer), its ONBUILD triggers, its instructions, the stages
        kept for a later COPY --from. Runs, extracts and pushes nothing."""
        stage_plan = self.plan()
        lines: list[str] = []
        for stage in stage_plan.stages:
            name = self.bases[stage.index]
            lines.append(f"FROM {name}" + (f" AS {stage.name}" if stage.name else "") +
                         ("   # the result" if stage is stage_plan.final and len(stage_plan.stages) > 1 else ""))
            triggers: list[str] = []
            if base_stage(self.dockerfile, stage, name) is not None:
                lines.append(f"  CONTINUE stage {name}")
            elif name.lower() != "scratch":
                platform = self.platform_for(stage)
                image = self.pull(name, platform, stage.from_)
                lines.append(f"  PULL {name} {image.digest} ({platform}, {len(image.layers)} layers)")
                triggers = list(image.config.on_build or [])
            lines.extend(f"  ONBUILD {t}" for t in triggers)
            lines.extend(f"  {(inst.original or inst.keyword).splitlines()[0]}" for inst in stage.instructions)
            if stage_plan.copied_from.get(stage.index):
                lines.append(f"  SAVE stage {stage.ref} for COPY --from")
        return lines

    # ---- the whole build ---------------------------------------------------------------------------
    def build(self) -> Image:
        stage_plan = self.plan()
        progress.emit("build.start", total_steps=sum(len(st.instructions) for st in stage_plan.stages))
        for position, stage in enumerate(stage_plan.stages):
            is_last = position == len(stage_plan.stages) - 1
            key = self._stage_key(stage, stage_plan) if self.memo is not None else ""
            done = self.memo.get(key) if self.memo is not None else None
            if done is not None:
                # the same stage with the same inputs was built for another platform of this run (a
                # `FROM --platform=$BUILDPLATFORM` stage, say): its result serves again, as BuildKit solves
                # one LLB graph once
                log.info("Stage %s (FROM %s): built already for another platform, reused", stage.ref,
                         self.bases[stage.index])
                self.results[stage.index] = StageResult(stage, done.image.copy(), done.args, done.saved_root)
                continue
            log.info("Building stage %s (FROM %s)", stage.ref, self.bases[stage.index])
            result = self.build_stage(stage, is_result=stage is stage_plan.final)
            self.results[stage.index] = result
            if not is_last and stage_plan.copied_from.get(stage.index):
                self._ensure_root(stage, result.image)
                result.saved_root = self._save_root(stage)
                # a RUN can remove kiln's directory: the kept root is made again from the stage's layers
                # (executor.floor), unless --single-snapshot left changes no layer holds
                exact = not (self.settings.single_snapshot and self.root_changes_of == stage.index)
                floor.keep_tree(result.saved_root, self._unpacker(result.saved_root, result.image) if exact else None)
            if self.memo is not None:
                self.memo[key] = StageResult(stage, result.image.copy(), result.args, result.saved_root)
        self.build_args.warn_unconsumed()
        image = self.results[stage_plan.final.index].image
        if self.settings.materialize:
            self._ensure_root(stage_plan.final, image)      # kaniko's --materialize
        if self.settings.labels:
            labels = image.config.labels
            labels.update(self.settings.labels)
            image.config.labels = labels
        image.config.created = self._now()
        image.annotations.update(self.settings.annotations)
        if self.settings.image_format:
            image = image.converted(self.settings.image_format)
        image.validate()
        return image

    def _now(self) -> str:
        return timestamp(self.settings.epoch)

    def _stage_key(self, stage: Stage, stage_plan: StagePlan) -> str:
        """What a stage's result depends on beyond the Dockerfile and the context (which every platform of a
        run shares): the platform it runs on, the values of the ARGs it and its FROM ancestors declare (the
        platform ARGs among them), and the keys of the stages it builds on or copies from. Equal keys mean
        the same stage twice: a multi-platform build reuses it."""
        chain, current = [], stage
        while current is not None:
            chain.append(current)
            current = base_stage(self.dockerfile, current, self.bases[current.index])
        names = sorted({a.key for st in chain for inst in st.instructions
                        if isinstance(inst, ArgInstruction) for a in inst.args})
        sources = []
        for ref in stage_refs(stage) + ([self.bases[stage.index]] if len(chain) > 1 else []):
            try:
                ref = shell.expand(ref, self.global_scope.values, self.dockerfile.escape)
            except Exception:   # reported when the instruction runs
                pass
            other = self.dockerfile.stage(ref)
            if other is not None and other.index in self.stage_keys:
                sources.append(self.stage_keys[other.index])
        key = json.dumps([stage.index, str(self.platform_for(stage)), self.bases[stage.index],
                          [(n, self.global_scope.values.get(n), self.build_args.given.get(n)) for n in names],
                          sources])
        self.stage_keys[stage.index] = key
        return key

    # ---- one stage ---------------------------------------------------------------------------------
    def platform_for(self, stage: Stage) -> Platform:
        if stage.platform:
            text = self._expand_global(stage.platform, stage.from_)
            try:
                return Platform.parse(text)
            except ValueError as e:
                raise stage.from_.error(f"FROM --platform={text}: {e}") from None
        return self.settings.platform

    def run_platform(self, stage: Stage) -> Platform:
        """The platform whose binaries the stage's RUN steps execute: its own FROM --platform, else that of the
        stage it continues (FROM <stage>), else the build's."""
        current: Stage | None = stage
        while current is not None:
            if current.platform:
                return self.platform_for(current)
            current = base_stage(self.dockerfile, current, self.bases[current.index])
        return self.settings.platform

    def run_platforms(self) -> dict[str, list[str]]:
        """Platform -> the stages of this build (its targets, unused stages skipped as the build skips them)
        that RUN commands on it: what the kernel must be able to execute before anything is pulled."""
        needs: dict[str, list[str]] = {}
        for stage in self.plan().stages:
            if any(inst.keyword == "RUN" for inst in stage.instructions):
                needs.setdefault(str(self.run_platform(stage)), []).append(stage.ref)
        return needs

    def base_image(self, stage: Stage) -> tuple[Image, int | None]:
        """The stage's base image, and the index of the stage it continues (if its base is a stage)."""
        name = self.bases[stage.index]
        base = base_stage(self.dockerfile, stage, name)
        if base is not None:
            if base.index not in self.results:
                raise stage.from_.error(f"FROM {name}: stage {base.ref} was not built")
            return self.results[base.index].image.copy(), base.index
        platform = self.platform_for(stage)
        if name.lower() == "scratch":
            fmt = self.settings.image_format or mt.OCI
            image = Image.empty(platform, fmt=fmt, created=self._now())
            # BuildKit's emptyImage: WorkingDir "/" and the default PATH (docker build gives both)
            image.config.working_dir = "/"
            image.config.env = [f"PATH={SCRATCH_PATH}"]
            return image, None
        return self.pull(name, platform, stage.from_).copy(), None

    def pull(self, name: str, platform: Platform, where: Instruction | None) -> Image:
        """The image `name`; a failure is `Dockerfile:N: FROM NAME: why` at `where` (None: the caller names the
        instruction, as COPY --from and RUN --mount from= do)."""
        key = f"{name}|{platform}"
        if key not in self.images_pulled:
            log.info("Retrieving image %s (%s)", name, platform)
            try:
                image = self.images.pull(name, platform)
            except Exception as e:
                if where is None:
                    raise
                raise where.error(f"FROM {name}: {e}") from None
            actual = image.config.platform
            if actual.os and actual.architecture and not platform.matches(actual):
                # BuildKit's InvalidBaseImagePlatform check: a single-platform image of another platform
                # is used as it is, with a warning (its binaries may not run here; the result is labelled
                # with the image's own platform)
                at = f"{where.location}: " if where is not None and getattr(where, "location", None) else ""
                log.warning("%sInvalidBaseImagePlatform: Base image %s was pulled with platform %s, expected %s "
                            "for current build", at, name, actual, platform)
            self.images_pulled[key] = image
        return self.images_pulled[key]

    def _ensure_root(self, stage: Stage, image: Image) -> None:
        """Bring the root to `image`'s files before an instruction that reads or writes them.

        The root holds the layers `root_layers` (digests, in order) and, with --single-snapshot, the changes
        of stage `root_changes_of` that no layer holds yet. When those layers begin `image`'s own (and any
        unrecorded changes are this stage's own, or the stage's it continues), only the missing layers are
        extracted: a stage
        continuing the previous one, or layers a cache hit added; otherwise the root is wiped (not before
        the first extraction: the container's own files stay, outside every layer) and all are extracted.
        A stage that never reads or writes files (metadata only) never comes here: nothing is extracted."""
        want = [layer.digest for layer in image.layers]
        have = self.root_layers
        reuse = have is not None and want[:len(have)] == have and self.root_changes_of in (None, stage.index)
        if reuse:
            todo = image.layers[len(have):]
            if todo:
                log.debug("stage %s: %d more layers onto the root", stage.ref, len(todo))
        else:
            if have is not None:
                log.info("Wiping the root for stage %s", stage.ref)
                self.snapshotter.wipe()
            todo = image.layers
            self.root_changes_of = None
        # Extraction keeps the index up to date; the first time, the index also takes in the files the root
        # held before the build (the container's own), which belong to no layer and must never show up in one:
        # listed now, indexed after the extraction (those no layer wrote)
        before = self.snapshotter.existing() if have is None else None
        self.images.prefetch(todo)      # every download starts now, a few at a time; each extraction follows
        for layer in todo:
            self._fetch_and_extract(layer)
        if before is not None:
            self.snapshotter.take_in(before)
        self.root_layers = want

    def _fetch_and_extract(self, layer: Layer) -> None:
        """One base layer onto the root, extracted as its bytes arrive and verified at their end (a
        mismatch fails the build before any step runs). With --image-fs-extract-retry N a failure is tried
        again N times, extracting over what the failed attempt wrote as kaniko's retry does; a layer that
        would write outside the root is refused at once, never retried."""
        attempts = max(0, self.settings.extract_retries) + 1
        for attempt in range(1, attempts + 1):
            try:
                log.info("Extracting layer %s", layer.digest)
                self.images.extract(layer, self.snapshotter.extract)
                return
            except UnsafeEntryError:
                raise
            except Exception as e:
                if attempt == attempts:
                    raise
                log.warning("fetching and extracting layer %s failed (%s); --image-fs-extract-retry: attempt %d "
                            "of %d", layer.digest, e, attempt + 1, attempts)

    def _onbuild_triggers(self, image: Image, stage: Stage) -> list[Instruction]:
        triggers = image.config.on_build or []
        if not triggers:
            return []
        image.config.on_build = None
        text = "".join(t + "\n" for t in triggers)
        where = f"ONBUILD of {self.bases[stage.index]}"
        try:
            return [from_node(node, where) for node in parse_nodes(text, where).nodes]
        except DockerfileError as e:
            raise stage.from_.error(f"ONBUILD trigger of {self.bases[stage.index]}: {e}") from None

    def _stage_cache(self, stage: Stage, image: Image, continues: int | None) -> StageCache | None:
        if self.cache is None:
            return None
        if continues is not None:
            base = f"stage:{continues}"
        elif self.bases[stage.index].lower() == "scratch":
            base = "scratch"
        else:
            base = "image:" + image.digest
        return self.cache.begin_stage(StageStart(
            index=stage.index, ref=stage.ref, platform=str(self.platform_for(stage)), base=base,
            identify=lambda ref: self.identify(ref, stage)))

    def identify(self, ref: str, current: Stage) -> str:
        """What a `--from` reference of `current` names: `stage:<index>` or `image:<digest>`."""
        other = self.dockerfile.stage(ref)
        if other is not None and other.index < current.index:
            return f"stage:{other.index}"
        return "image:" + self.pull(ref, self.settings.platform, current.from_).digest

    def build_stage(self, stage: Stage, is_result: bool) -> StageResult:
        image, continues = self.base_image(stage)
        if continues is not None and self.root_changes_of == continues:
            self.root_changes_of = stage.index        # the continued stage's unsnapshotted files are ours now
        eager = self.settings.extract == "eager"
        if eager:
            self._ensure_root(stage, image)
        parent = self.results[continues].args if continues is not None else None
        scope = parent.inherit() if parent is not None else build_args.StageArgs(self.build_args, self.global_scope)
        ctx = CommandContext(
            root=self.settings.root, image=image, args=scope, escape=self.dockerfile.escape,
            work_dir=self.work_dir, context_dir=self.context_dir, excluded=self.excluded,
            source_root=lambda ref: self.source_root(ref, stage), secrets=self.settings.secrets,
            cache_mount_dir=os.path.join(self.settings.kiln_dir, "cache-mounts"), output=self.settings.output,
            run=self.run)
        os.makedirs(ctx.cache_mount_dir, exist_ok=True)
        instructions = self._onbuild_triggers(image, stage) + list(stage.instructions)
        single = self.settings.single_snapshot
        offer = self._offer if is_result and self.layer_sink is not None else None
        if offer:
            offer(image.layers)        # the base's layers: mounted (or found) while the steps run
        steps = self._stage_cache(stage, image, continues)
        for inst in instructions:
            log.info("%s", inst.original.splitlines()[0] if inst.original else inst.keyword)
            started, layers_before = self._step_started(stage, inst), len(image.layers)
            if steps is not None and self._replay(steps, inst, ctx):
                if eager:
                    self._ensure_root(stage, image)
                self._step_finished(stage, inst, image, started, layers_before, "hit")
                if offer:
                    offer(image.layers[layers_before:])
                continue
            touches = commands.touches_root(inst)
            if touches:
                self._ensure_root(stage, image)
            outcome: Outcome = commands.execute(inst, ctx)
            self._commit(ctx, outcome, defer=single, steps=steps, inst=inst)
            if touches and single:
                self.root_changes_of = stage.index
            self._step_finished(stage, inst, image, started, layers_before,
                                "miss" if steps is not None and steps.consulted else "")
            if offer and not (steps is not None and steps.consulted):
                # (a layer the cache stores is uploaded to the cache repository in the background already;
                # the push mounts it from there instead of sending its bytes twice)
                offer(image.layers[layers_before:])
        if single and is_result and self.root_changes_of == stage.index:
            layer_file = self.snapshotter.snapshot()
            if layer_file is not None:
                image.append_layer(Layer.from_layer_file(layer_file, image.format),
                                   HistoryEntry(created=self._now(), created_by="single snapshot",
                                                comment="kiln --single-snapshot"))
                if offer:
                    offer(image.layers[-1:])
        return StageResult(stage, image, scope)

    def _offer(self, layers: list[Layer]) -> None:
        for layer in layers:
            if not layer.foreign:
                self.layer_sink(layer)

    # ---- progress events (executor.progress: the live display, the build report, provenance) ------------
    def _step_text(self, inst: Instruction) -> str:
        return self.redact(inst.original or inst.keyword)

    def _step_started(self, stage: Stage, inst: Instruction) -> float:
        self.steps_run += 1
        progress.emit("step.start", number=self.steps_run, stage=stage.ref, instruction=self._step_text(inst))
        return time.monotonic()

    def _step_finished(self, stage: Stage, inst: Instruction, image: Image, started: float, layers_before: int,
                       cache: str) -> None:
        if not progress.listening():
            return
        added = image.layers[layers_before:]
        layer = {"digest": added[-1].digest, "size": added[-1].size, "mediaType": added[-1].media_type} \
            if added else None
        progress.emit("step.end", number=self.steps_run, stage=stage.ref, instruction=self._step_text(inst),
                      keyword=inst.keyword, start_line=inst.location.start_line, end_line=inst.location.end_line,
                      seconds=time.monotonic() - started, cache=cache, layer=layer,
                      chain=[l.descriptor.to_dict() for l in image.layers],
                      network=inst.keyword == "RUN" and getattr(inst, "network", "default") != "none")

    def _replay(self, steps: StageCache, inst: Instruction, ctx: CommandContext) -> bool:
        """Apply `inst` from the layer cache when it is there: the same layer and history text into the
        image (the layer reaches the root only when a later step needs the files). True on a hit."""
        hit = steps.lookup(inst, ctx)
        if hit is None:
            return False
        history = HistoryEntry(created=self._now(), created_by=hit.created_by, comment=COMMENT,
                               empty_layer=hit.layer is None)
        if hit.layer is not None:
            ctx.image.append_layer(hit.layer, history)
        else:
            ctx.image.append_history(history)
        log.info("Using caching version of cmd: %s", (inst.original or inst.keyword).splitlines()[0])
        return True

    def _commit(self, ctx: CommandContext, outcome: Outcome, defer: bool, steps: StageCache | None,
                inst: Instruction) -> None:
        """Turn what a step changed into a layer (or a history entry alone) of the stage's image."""
        image = ctx.image
        layer_file = None
        if not defer:
            if outcome.snapshot == "walk":
                layer_file = self.snapshotter.snapshot()
            elif outcome.snapshot == "paths" and outcome.paths:
                layer_file = self.snapshotter.snapshot_paths(outcome.paths)
        # BuildKit writes build-arg values into the history (`RUN |1 TOKEN=...`); what the redactor masks
        # (secret values) is never written into an image.
        created_by = self.redact(outcome.created_by)
        layer = Layer.from_layer_file(layer_file, image.format) if layer_file is not None else None
        if steps is not None:
            layer = steps.ran(inst, ctx, layer, created_by)
        if layer is not None:
            image.append_layer(layer, HistoryEntry(created=self._now(), created_by=created_by, comment=COMMENT))
            if self.root_layers is not None:
                self.root_layers.append(layer.digest)     # written from the root: the root has it
        elif created_by:
            image.append_history(HistoryEntry(created=self._now(), created_by=created_by, comment=COMMENT,
                                              empty_layer=True))

    # ---- other stages' and images' roots, for COPY --from and RUN --mount from= ----------------------
    def source_root(self, ref: str, current: Stage) -> str:
        other = self.dockerfile.stage(ref)
        if other is not None and other.index < current.index:
            result = self.results.get(other.index)
            if result is None or result.saved_root is None:
                raise BuildError(f"stage {other.ref} is needed by stage {current.ref} but was not kept")
            return result.saved_root
        if other is not None:
            raise BuildError(f"stage {other.ref} is not before stage {current.ref}")
        if ref not in self.image_roots:
            image = self.pull(ref, self.settings.platform, None)     # COPY --from / RUN --mount name the line
            directory = tempfile.mkdtemp(prefix="image-", dir=self.work_dir)
            unpack = self._unpacker(directory, image)
            unpack()
            floor.keep_tree(directory, unpack)
            self.image_roots[ref] = directory
        return self.image_roots[ref]

    def _unpacker(self, directory: str, image: Image) -> Callable[[], None]:
        def unpack() -> None:
            self.snapshotter.unpack_into(directory, [(self.images.blob_file(layer), layer.digest)
                                                     for layer in image.layers])
        return unpack

    def _save_root(self, stage: Stage) -> str:
        """Keep the stage's files for later COPY --from (the snapshotter links them, costing no copying)."""
        directory = os.path.join(self.work_dir, "stages", str(stage.index))
        log.info("Saving the files of stage %s for later stages", stage.ref)
        self.snapshotter.save_tree(directory)
        return directory


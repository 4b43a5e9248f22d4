"""The build loop: stage by stage, instruction by instruction, against one root.

For each stage: wipe the root (unless it continues from the stage just built), extract the base image's
layers onto it, run the base image's ONBUILD triggers, then dispatch every instruction to its command
module and turn what it changed into a layer (walking the root after RUN, the written paths after COPY/ADD).
Stages that a later COPY --from reads are kept as hard-linked trees in kiln's directory before the root is
wiped. The target stage's image is what the sinks write.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from executor import commands, logs
from executor.build import args as build_args
from executor.build.stages import StagePlan, base_stage, plan
from executor.commands.base import CommandContext, Outcome
from executor.dockerfile import Dockerfile, DockerfileError, Stage, shell
from executor.dockerfile.instructions import Instruction, from_node
from executor.dockerfile.parser import parse_nodes
from executor.image import HistoryEntry, Image, Layer, Platform
from executor.image import mediatypes as mt
from executor.registry import RegistryClient
from snapshot import IgnoreList, Snapshotter

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
    build_args: dict[str, str]
    target: str = ""
    skip_unused_stages: bool = False
    snapshot_mode: str = "exact"
    single_snapshot: bool = False
    compression: str = "gzip"
    compression_level: int | None = None
    epoch: int | None = None                  # --reproducible / SOURCE_DATE_EPOCH
    ignore_paths: list[str] = field(default_factory=list)
    image_format: str = ""                    # "", "oci" or "docker"
    secrets: dict = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    output: Callable[[str], None] | None = None


@dataclass
class StageResult:
    stage: Stage
    image: Image
    saved_root: str | None = None             # a copy of the stage's root, for later COPY --from


def _now(epoch: int | None) -> str:
    moment = datetime.fromtimestamp(epoch if epoch is not None else time.time(), tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if epoch is not None else
                                                     f".{moment.microsecond:06d}Z")


class Builder:
    def __init__(self, dockerfile: Dockerfile, settings: BuildSettings, client: RegistryClient,
                 context_dir: str | None, excluded: Callable[[str], bool] | None, work_dir: str):
        self.dockerfile = dockerfile
        self.settings = settings
        self.client = client
        self.context_dir = context_dir
        self.excluded = excluded
        self.work_dir = work_dir
        self.results: dict[int, StageResult] = {}
        self.images_pulled: dict[str, Image] = {}
        self.image_roots: dict[str, str] = {}
        host = Platform.parse(f"linux/{_host_arch()}")
        target = settings.platform
        self.build_args = build_args.BuildArgs(
            given=dict(settings.build_args),
            predefined=build_args.platform_args(
                build_args.PlatformTriple(target.os, target.architecture, target.variant or ""),
                build_args.PlatformTriple(host.os, host.architecture, host.variant or "")))
        self.global_scope = build_args.GlobalScope(self.build_args)
        for arg in dockerfile.global_args:
            for a in arg.args:
                default = shell.expand(a.default, self.global_scope.values, dockerfile.escape) \
                    if a.default is not None else None
                self.global_scope.declare(a.key, default)
        os.makedirs(os.path.join(work_dir, "layers"), exist_ok=True)
        if os.path.realpath(settings.root) != "/":
            # A scratch root stands for the image's "/", which is 0755 (a fresh tmp dir is 0700, and
            # USER would then not even reach /bin/sh); a layer's "./" entry may still change it.
            os.chmod(settings.root, 0o755)
        self.ignore = IgnoreList.from_system(settings.root, kiln_dir=settings.kiln_dir, extra=settings.ignore_paths)
        self.snapshotter = Snapshotter(settings.root, self.ignore, os.path.join(work_dir, "layers"),
                                       compression=settings.compression, level=settings.compression_level,
                                       epoch=settings.epoch, mode=settings.snapshot_mode)
        self.root_state: int | None = None     # index of the stage whose files are on the root now
        self.cache = None                      # executor.cache.LayerCache with --cache
        self.base_cache = None                 # executor.cache.BaseImageCache with --cache-dir

    # ---- planning ----------------------------------------------------------------------------------
    def _expand_global(self, word: str, where: Instruction) -> str:
        try:
            return shell.expand(word, self.global_scope.values, self.dockerfile.escape)
        except Exception as e:  # ExpansionError and friends carry their own text
            raise where.error(str(e)) from None

    def plan(self) -> StagePlan:
        if self.settings.target:
            from executor.dockerfile import select_target
            target = select_target(self.dockerfile, self.settings.target)
        else:
            target = self.dockerfile.stages[-1]
        bases = {st.index: self._expand_global(st.base_name, st.from_) for st in self.dockerfile.stages}
        self.bases = bases
        return plan(self.dockerfile, target, bases, self.settings.skip_unused_stages,
                    lambda word: shell.expand(word, self.global_scope.values, self.dockerfile.escape))

    # ---- the whole build ---------------------------------------------------------------------------
    def build(self) -> Image:
        stage_plan = self.plan()
        final: StageResult | None = None
        for position, stage in enumerate(stage_plan.stages):
            is_last = position == len(stage_plan.stages) - 1
            log.info("Building stage %s (FROM %s)", stage.ref, self.bases[stage.index])
            final = self.build_stage(stage, stage_plan, is_last)
            self.results[stage.index] = final
            if not is_last and stage_plan.copied_from.get(stage.index):
                final.saved_root = self._save_root(stage)
        assert final is not None
        self.build_args.warn_unconsumed()
        image = final.image
        if self.settings.labels:
            labels = image.config.labels
            labels.update(self.settings.labels)
            image.config.labels = labels
        image.config.created = _now(self.settings.epoch)
        if self.settings.image_format:
            image = image.converted(self.settings.image_format)
        image.validate()
        return image

    # ---- one stage ---------------------------------------------------------------------------------
    def _platform_for(self, stage: Stage) -> Platform:
        if stage.platform:
            text = self._expand_global(stage.platform, stage.from_)
            try:
                return Platform.parse(text)
            except ValueError as e:
                raise stage.from_.error(f"FROM --platform={text}: {e}") from None
        return self.settings.platform

    def base_image(self, stage: Stage) -> tuple[Image, int | None]:
        """The stage's base image, and the index of the stage it continues (if its base is a stage)."""
        name = self.bases[stage.index]
        base = base_stage(self.dockerfile, stage, name)
        if base is not None:
            if base.index not in self.results:
                raise stage.from_.error(f"FROM {name}: stage {base.ref} was not built")
            return self.results[base.index].image.copy(), base.index
        platform = self._platform_for(stage)
        if name.lower() == "scratch":
            fmt = self.settings.image_format or mt.OCI
            image = Image.empty(platform, fmt=fmt, created=_now(self.settings.epoch))
            # BuildKit's emptyImage: WorkingDir "/" and the default PATH (docker build gives both)
            image.config.working_dir = "/"
            image.config.env = [f"PATH={SCRATCH_PATH}"]
            return image, None
        return self.pull(name, platform, stage.from_).copy(), None

    def pull(self, name: str, platform: Platform, where: Instruction) -> Image:
        key = f"{name}|{platform}"
        if key not in self.images_pulled:
            log.info("Retrieving image %s (%s)", name, platform)
            try:
                cached = self.base_cache.pull(name, platform) if self.base_cache is not None else None
                self.images_pulled[key] = cached or self.client.pull(name, platform)
            except Exception as e:
                raise where.error(f"FROM {name}: {e}") from None
        return self.images_pulled[key]

    def _prepare_root(self, stage: Stage, image: Image, continues: int | None) -> None:
        if continues is not None and self.root_state == continues:
            log.debug("stage %s continues from the root of stage %s", stage.ref, continues)
            return
        first = self.root_state is None
        if not first:
            log.info("Wiping the root for stage %s", stage.ref)
            self.snapshotter.wipe()
        for layer in image.layers:
            with layer.open_blob() as blob:
                path = getattr(blob, "name", None)
            if not path or not os.path.isfile(path):
                path = self._materialise(layer)
            log.info("Extracting layer %s", layer.digest)
            self.snapshotter.extract(path, name=layer.digest)
        if first:
            # Extraction keeps the index up to date; the first stage also finds the files the root held
            # before the build (the container's own), which belong to no layer and must not show up in one.
            self.snapshotter.reindex()

    def _materialise(self, layer: Layer) -> str:
        path = os.path.join(self.work_dir, "blobs", layer.digest.replace(":", "-"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with layer.open_blob() as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        return path

    def _onbuild_triggers(self, image: Image, stage: Stage) -> list[Instruction]:
        triggers = image.config.on_build or []
        if not triggers:
            return []
        image.config.on_build = None
        text = "".join(t + "\n" for t in triggers)
        instructions: list[Instruction] = []
        try:
            result = parse_nodes(text, f"ONBUILD of {self.bases[stage.index]}")
            for node in result.nodes:
                instructions.append(from_node(node, f"ONBUILD of {self.bases[stage.index]}"))
        except DockerfileError as e:
            raise stage.from_.error(f"ONBUILD trigger of {self.bases[stage.index]}: {e}") from None
        return instructions

    def build_stage(self, stage: Stage, stage_plan: StagePlan, is_last: bool) -> StageResult:
        image, continues = self.base_image(stage)
        self._prepare_root(stage, image, continues)
        self.root_state = stage.index
        scope = build_args.StageArgs(self.build_args, self.global_scope)
        ctx = CommandContext(
            root=self.settings.root, image=image, args=scope, escape=self.dockerfile.escape,
            work_dir=self.work_dir, context_dir=self.context_dir, excluded=self.excluded,
            source_root=lambda ref: self.source_root(ref, stage), secrets=self.settings.secrets,
            cache_mount_dir=os.path.join(self.settings.kiln_dir, "cache-mounts"), output=self.settings.output)
        os.makedirs(ctx.cache_mount_dir, exist_ok=True)
        instructions = self._onbuild_triggers(image, stage) + list(stage.instructions)
        single = self.settings.single_snapshot
        steps = self.cache.begin_stage(self, stage, image, continues) if self.cache is not None else None
        for inst in instructions:
            log.info("%s", inst.original.splitlines()[0] if inst.original else inst.keyword)
            if steps is not None and steps.replay(inst, ctx):    # applied from the layer cache
                continue
            outcome: Outcome = commands.execute(inst, ctx)
            self._commit(ctx, inst, outcome, defer=single)
            if steps is not None:
                steps.ran(inst, ctx)
        if single and is_last:
            layer_file = self.snapshotter.snapshot()
            if layer_file is not None:
                image.append_layer(Layer.from_layer_file(layer_file, image.format),
                                   HistoryEntry(created=_now(self.settings.epoch), created_by="single snapshot",
                                                comment="kiln --single-snapshot"))
        return StageResult(stage, image)

    def _commit(self, ctx: CommandContext, inst: Instruction, outcome: Outcome, defer: bool) -> None:
        image = ctx.image
        created = _now(self.settings.epoch)
        layer_file = None
        if not defer:
            if outcome.snapshot == "walk":
                layer_file = self.snapshotter.snapshot()
            elif outcome.snapshot == "paths" and outcome.paths:
                layer_file = self.snapshotter.snapshot_paths(outcome.paths)
        # BuildKit writes build-arg values into the history (`RUN |1 TOKEN=...`); kiln masks every value the
        # log masks (--build-arg values, secrets), so none of them is ever written into an image.
        created_by = logs.REDACTOR.redact(outcome.created_by)
        if layer_file is not None:
            image.append_layer(Layer.from_layer_file(layer_file, image.format),
                               HistoryEntry(created=created, created_by=created_by,
                                            comment="buildkit.dockerfile.v0"))
        elif created_by:
            image.append_history(HistoryEntry(created=created, created_by=created_by,
                                              comment="buildkit.dockerfile.v0", empty_layer=True))

    # ---- other stages' and images' roots, for COPY --from and RUN --mount from= ----------------------
    def source_root(self, ref: str, current: Stage) -> str:
        other = self.dockerfile.stage(ref)
        if other is not None and other.index < current.index:
            result = self.results.get(other.index)
            if result is None or result.saved_root is None:
                raise BuildError(f"stage {other.ref} is needed by stage {current.ref} but was not kept")
            return result.saved_root
        if other is not None:
            raise BuildError(f"--from={ref}: stage {other.ref} is not before stage {current.ref}")
        if ref not in self.image_roots:
            image = self.pull(ref, self.settings.platform, current.from_)
            directory = tempfile.mkdtemp(prefix="image-", dir=self.work_dir)
            snap = Snapshotter(directory, IgnoreList(directory), os.path.join(self.work_dir, "layers"))
            for layer in image.layers:
                with layer.open_blob() as blob:
                    path = getattr(blob, "name", None)
                if not path or not os.path.isfile(path):
                    path = self._materialise(layer)
                snap.extract(path, name=layer.digest)
            self.image_roots[ref] = directory
        return self.image_roots[ref]

    def _save_root(self, stage: Stage) -> str:
        """Keep the stage's files for later COPY --from: a hard-linked tree, so it costs no copying."""
        directory = os.path.join(self.work_dir, "stages", str(stage.index))
        log.info("Saving the files of stage %s for later stages", stage.ref)
        link_tree(self.settings.root, directory, self.ignore)
        return directory


def link_tree(src_root: str, dest: str, ignore: IgnoreList) -> None:
    """Mirror `src_root` into `dest` with hard links, keeping metadata and hard-link groups.

    Across mounts (kiln's directory on a volume, or a bind mount) linking fails, and the files are
    copied instead; names that shared an inode in the root then share one in the copy."""
    os.makedirs(dest, exist_ok=True)
    src_root = os.path.abspath(src_root)
    dirs: list[tuple[str, os.stat_result]] = []
    copies: dict[tuple[int, int], str] = {}
    for current, dirnames, filenames in os.walk(src_root):
        rel_dir = os.path.relpath(current, src_root)
        rel_dir = "" if rel_dir == "." else rel_dir
        kept = []
        for d in dirnames:
            rel = os.path.join(rel_dir, d)
            if ignore.covers(rel):
                continue
            host = os.path.join(current, d)
            st = os.lstat(host)
            target = os.path.join(dest, rel)
            if os.path.islink(host):
                _link_or_copy(host, target, st, copies)
                continue
            os.mkdir(target)
            dirs.append((target, st))
            kept.append(d)
        dirnames[:] = kept
        for f in filenames:
            rel = os.path.join(rel_dir, f)
            if ignore.covers(rel):
                continue
            host = os.path.join(current, f)
            _link_or_copy(host, os.path.join(dest, rel), os.lstat(host), copies)
    for target, st in reversed(dirs):
        os.chown(target, st.st_uid, st.st_gid)
        os.chmod(target, st.st_mode & 0o7777)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def _link_or_copy(host: str, target: str, st: os.stat_result, copies: dict[tuple[int, int], str]) -> None:
    try:
        os.link(host, target, follow_symlinks=False)
        return
    except OSError:
        pass
    key = (st.st_dev, st.st_ino)
    if st.st_nlink > 1 and key in copies:
        os.link(copies[key], target, follow_symlinks=False)
        return
    if os.path.islink(host):
        os.symlink(os.readlink(host), target)
        os.lchown(target, st.st_uid, st.st_gid)
    elif os.path.isfile(host):
        shutil.copy2(host, target, follow_symlinks=False)
        os.chown(target, st.st_uid, st.st_gid)
        os.chmod(target, st.st_mode & 0o7777)
        for name in os.listxattr(host, follow_symlinks=False):
            os.setxattr(target, name, os.getxattr(host, name, follow_symlinks=False), follow_symlinks=False)
    else:
        os.mknod(target, st.st_mode, st.st_rdev)
        os.chown(target, st.st_uid, st.st_gid)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    if st.st_nlink > 1:
        copies[key] = target


def _host_arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
            "riscv64": "riscv64", "i686": "386"}.get(machine, machine)

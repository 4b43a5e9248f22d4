"""One executor run: options -> context -> Dockerfile -> build -> sinks.

Nothing leaves for a registry, a tarball or a layout until every stage has built; the image goes to every
registry destination (blobs first, manifest last) before the tar, the layout and the digest files are
written. A build cancelled by SIGTERM/SIGINT pushes nothing.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sys
import tempfile

from executor import floor, masking, timings
from executor.cache import base_image_cache, layer_cache
from executor.dockerfile import Dockerfile, DockerfileError, parse
from executor.engine.builder import BuildError, Builder, BuildSettings
from executor.engine.buckets import context_source
from executor.engine.context import ContextError, prepare_context, resolve_dockerfile
from executor.engine.images import RegistryImages
from executor.engine import preflight
from executor.engine import attestations
from executor.engine.output import write_outputs
from executor.engine.report import BuildReport, observe, progress_mode
from executor.image import Image, Platform
from executor.image.imageindex import Artifact, ImageIndex
from executor.image import mediatypes as mt
from executor.options import Options, WarmerOptions
from executor.registry import RegistryClient
from executor.registry.auth import hold_config
from executor.registry.transport import hold_ca
from executor.run import BuildCancelled, supervise
from executor.run.binfmt import EmulationError, check_emulation
from snapshot import IgnoreList, Snapshotter

log = logging.getLogger(__name__)


def source_date_epoch(opts: Options) -> int | None:
    if opts.reproducible:
        return 0
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    if value.isdigit():
        return int(value)
    return None


def _dockerignore(context_dir: str, dockerfile_path: str):
    """The context's .dockerignore as a predicate; the Dockerfile and .dockerignore are never hidden."""
    from executor.dockerfile.dockerignore import read_dockerignore

    matcher = read_dockerignore(context_dir, dockerfile_path)
    if not matcher.patterns:
        return None
    protected = [".dockerignore"]
    if dockerfile_path.startswith(context_dir.rstrip("/") + "/"):
        protected.append(os.path.relpath(dockerfile_path, context_dir))
    return matcher.with_always_included(protected).matches


def _inside_root(root: str, paths: list[str]) -> list[str]:
    """Image paths of those `paths` that lie under the root: kiln's own inputs (the context, the
    Dockerfile's directory) must survive extraction and wiping, and never show up in a layer."""
    real_root = os.path.realpath(root)
    found = []
    for path in paths:
        real = os.path.realpath(path)
        if real == real_root:
            continue
        if real_root == "/":
            found.append(real)
        elif real.startswith(real_root + "/"):
            found.append(real[len(real_root):])
    return found


def _debug_shell(root: str) -> list[str]:
    """The debug image's /busybox (kaniko's :debug) is kiln's own tool, not part of any image it builds."""
    if os.path.realpath(root) == "/" and os.path.isfile("/busybox/busybox"):
        return ["/busybox"]
    return []


def run(opts: Options) -> int:
    """The executor: build, then write the image wherever the options say. Returns the exit code."""
    if not opts.destinations and not opts.no_push and not opts.tar_path and not opts.oci_layout_path:
        raise BuildError("no destination: give --destination, or --no-push (with --tar-path or "
                         "--oci-layout-path to keep the image)")
    os.makedirs(opts.kaniko_dir, exist_ok=True)
    killed = _sweep_stale_work_dirs(opts.kaniko_dir)
    work_dir = tempfile.mkdtemp(prefix="build-", dir=opts.kaniko_dir)
    lock_fd = _hold_work_dir(work_dir)
    try:
        with supervise(), observe(progress_mode(opts.progress, opts.log_format)) as report:
            return _run(opts, work_dir, dirty_root=killed > 0, report=report)
    except BuildCancelled as cancelled:
        log.error("build cancelled by signal %d: nothing was pushed", cancelled.signum)
        return getattr(cancelled, "exit_code", 128 + cancelled.signum)
    finally:
        floor.release()
        shutil.rmtree(work_dir, ignore_errors=True)
        os.close(lock_fd)


_WORK_LOCK = ".kiln-build.lock"


def _hold_work_dir(work_dir: str) -> int:
    """Lock a file in the work dir for the life of this process: the kernel drops the lock when the
    process dies, even by SIGKILL, so a later build can tell a dead build's leftovers from a live one."""
    staging = os.path.join(work_dir, _WORK_LOCK + ".new")
    fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.rename(staging, os.path.join(work_dir, _WORK_LOCK))   # appears already locked: no sweeper can win it
    return fd


def _sweep_stale_work_dirs(kaniko_dir: str) -> int:
    """Remove the work dirs of builds that were killed (their lock is free); live builds keep theirs.
    Returns how many were removed."""
    removed = 0
    for name in os.listdir(kaniko_dir):
        path = os.path.join(kaniko_dir, name)
        if not name.startswith("build-") or os.path.islink(path) or not os.path.isdir(path):
            continue
        try:
            fd = os.open(os.path.join(path, _WORK_LOCK), os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue   # no lock file (yet, or an older kiln's): leave it alone
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue   # a live build holds it
        finally:
            os.close(fd)
        log.info("removing %s, left by a build that was killed", path)
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def _may_add(dockerfile: Dockerfile) -> bool:
    """Whether the Dockerfile has an ADD (of a git repository, maybe) or an ONBUILD (an ADD, maybe, in a child).
    A base image's own ONBUILD ADD of a git repository, in a stage that starts after a RUN, is not seen here: it
    imports its modules then (what a RUN that removed /kaniko would break, see executor.floor)."""
    return any(inst.keyword in ("ADD", "ONBUILD") for stage in dockerfile.stages for inst in stage.instructions)


def _run(opts: Options, work_dir: str, dirty_root: bool = False, report: BuildReport | None = None) -> int:
    client = RegistryClient(opts.registry, blob_dir=os.path.join(opts.kaniko_dir, "blobs"))
    # held across RUN steps (executor.floor): what the registry client reads later is read before the first RUN
    floor.configure(opts.kaniko_dir, work_dir, holders=[lambda: hold_ca(opts.registry),
                                                        lambda: hold_config(opts.registry.docker_config_dir)])
    with timings.phase("Preflight (registry ping, push permission)"):
        preflight.check(opts, client)        # before anything is fetched, pulled or run
    try:
        with timings.phase("Build context"):
            context = prepare_context(context_source(opts.context, opts.bucket), os.path.join(work_dir, "context"),
                                      opts.context_sub_path, git=opts.git)
    except ContextError as e:
        raise BuildError(str(e)) from None
    try:
        dockerfile_path = resolve_dockerfile(opts.dockerfile, context.directory, work_dir)
        with open(dockerfile_path, "rb") as f:
            text = f.read()
        dockerfile = parse(text, opts.dockerfile if not dockerfile_path.startswith(work_dir) else "Dockerfile")
        if not attestations.wanted(opts):
            floor.leave_out("attest")   # no --sbom, no --provenance: their scanners and writers are not preloaded
            if not _may_add(dockerfile):
                floor.leave_out("git")  # no ADD of a git repository either: dulwich is not preloaded
        platforms = [Platform.parse(p) for p in opts.platforms]
        epoch = source_date_epoch(opts)
        level = opts.compression_level if opts.compression_level >= 0 else None
        images = RegistryImages(client, os.path.join(work_dir, "blobs"),
                                base_image_cache(opts.cache_dir, opts.cache_ttl, client))
        redact = masking.redactor(masking.masked_values(opts, os.environ)).redact
        excluded = _dockerignore(context.directory, dockerfile_path)
        multi = len(platforms) > 1
        memo: dict | None = {} if multi else None     # stages equal across platforms are built once

        def make_builder(platform: Platform, snapshotter: Snapshotter | None, cache=None, where: str = work_dir,
                         layer_sink=None):
            settings = BuildSettings(
                root=opts.root, kiln_dir=opts.kaniko_dir, platform=platform, build_args=dict(opts.build_args),
                targets=list(opts.targets), skip_unused_stages=opts.skip_unused_stages,
                single_snapshot=opts.single_snapshot, extract=opts.extract,
                materialize=opts.materialize or opts.sbom,   # the SBOM reads the final image's files on the root
                extract_retries=opts.image_fs_extract_retry, epoch=epoch,
                image_format={"oci": mt.OCI, "docker": mt.DOCKER}.get(opts.image_format, ""),
                secrets=dict(opts.secrets), labels=dict(opts.labels), annotations=dict(opts.annotations))
            return Builder(dockerfile, settings, snapshotter=snapshotter, images=images, cache=cache, redact=redact,
                           context_dir=context.directory, excluded=excluded, work_dir=where, memo=memo,
                           layer_sink=layer_sink)

        planners = [make_builder(p, None) for p in platforms]
        if opts.dryrun:      # the root is not touched at all
            _dry_run(opts, planners, multi)
            return 0
        needs: dict[str, list[str]] = {}
        for planner in planners:
            for platform_text, stages in planner.run_platforms().items():
                known = needs.setdefault(platform_text, [])
                known.extend(s for s in stages if s not in known)
        try:
            check_emulation(needs, str(planners[0].settings.build_platform))
        except EmulationError as e:
            raise BuildError(str(e)) from None
        snapshotter = _snapshotter(opts, work_dir, epoch, level, ignore_paths=list(opts.ignore_paths) + _inside_root(
            opts.root, [context.directory, os.path.dirname(dockerfile_path)]) + _debug_shell(opts.root))
        if dirty_root:
            # the killed build had extracted its base and run commands over the root: what is there now is
            # neither the container's own files nor any image's, so start from a clean root (as a later
            # stage does)
            log.warning("a build killed earlier left files in the root %s: wiping it first", opts.root)
            snapshotter.wipe()
        elif opts.pre_cleanup:
            # kaniko's --pre-cleanup: the container's own files (all but kiln's, the mounts and the ignore
            # list) go before the first base is extracted
            log.info("--pre-cleanup: wiping the root %s before the build", opts.root)
            snapshotter.wipe()
        built: list[Image] = []
        artifacts: list[Artifact] = []
        previous: Builder | None = None
        # push while building: each layer of the result goes to the destinations as soon as it is written
        early = client.early_uploads(opts.destinations) if opts.destinations and not opts.no_push else None
        sink = (lambda layer: early.offer(layer.descriptor, layer.open_blob, layer.source)) if early else None
        try:
            for number, platform in enumerate(platforms):
                if multi:
                    log.info("Building for platform %s (%d of %d)", platform, number + 1, len(platforms))
                if previous is not None and previous.root_layers is not None:
                    # each platform starts from its own base, as a later stage does: the root is wiped
                    log.info("Wiping the root for platform %s", platform)
                    snapshotter.wipe()
                where = work_dir
                if multi:
                    where = os.path.join(work_dir, f"platform-{number}")
                    os.makedirs(where, exist_ok=True)
                cache = layer_cache(
                    enabled=opts.cache, repo=opts.cache_repo, destinations=list(opts.destinations), ttl=opts.cache_ttl,
                    run_layers=opts.cache_run_layers, copy_layers=opts.cache_copy_layers, push=not opts.no_push_cache,
                    single_snapshot=opts.single_snapshot, platform=platform, client=client,
                    key_settings={"compression": opts.compression, "level": level, "epoch": epoch})
                builder = make_builder(platform, snapshotter, cache, where, sink)
                try:
                    with timings.phase("Total Build Time"):
                        image = builder.build()
                except BuildCancelled:
                    if cache is not None:
                        cache.finish(cancel=True)     # queued cache uploads dropped
                    raise
                finally:
                    if cache is not None:
                        cache.finish()        # uploads done (a failed build keeps what it cached); the push mounts them
                if attestations.wanted(opts):
                    image = attestations.prepare(image)
                    artifacts.append(attestations.make(
                        opts, image, builder, report or BuildReport(), context,
                        _config_path(dockerfile_path, context.directory), text, opts.root,
                        lambda path: snapshotter.ignore.covers(path.lstrip("/"))))
                clash = next((b for b in built if b.config.platform.matches(image.config.platform)), None)
                if clash is not None:
                    raise BuildError(f"--custom-platform {platform}: the result is a {image.config.platform} image, as "
                                     f"is the one built for {platforms[built.index(clash)]} (a base image has no "
                                     f"{platform} variant: see the InvalidBaseImagePlatform warning); an index holds "
                                     "one image per platform")
                built.append(image)
                previous = builder
        except BaseException:
            if early is not None:
                early.finish(cancel=True)     # queued blobs dropped; nothing is tagged
            raise
        with timings.phase("Total Push Time"):
            confirmed = early.finish() if early is not None else None
        result: Image | ImageIndex = built[0]
        if multi or artifacts:
            result = ImageIndex(tuple(built), tuple(artifacts))
            if multi:
                log.info("Image index %s: %s", result.digest,
                         ", ".join(f"{i.config.platform} {i.digest}" for i in built))
        with timings.phase("Total Push Time"):
            write_outputs(result, opts, client, report, confirmed)
    except (ContextError, DockerfileError) as e:
        raise BuildError(str(e)) from None
    finally:
        context.close()
    if opts.cleanup:
        snapshotter.wipe()
    return 0


def _config_path(dockerfile_path: str, context_dir: str) -> str:
    """The Dockerfile as the provenance names it: relative to the context when it is inside it (BuildKit's
    `filename`), else its base name."""
    real, ctx = os.path.realpath(dockerfile_path), os.path.realpath(context_dir)
    if real.startswith(ctx.rstrip("/") + "/"):
        return os.path.relpath(real, ctx)
    return os.path.basename(dockerfile_path)


def _dry_run(opts: Options, builders: list[Builder], multi: bool) -> None:
    """--dryrun: print the plan (stages, resolved bases, steps, outputs) on stdout, for each platform; nothing is
    run, extracted or pushed (kaniko's fork renders its plan the same way and returns no image)."""
    lines: list[str] = []
    for builder in builders:
        if multi:
            lines.append(f"PLATFORM {builder.settings.platform}")
        lines.extend(builder.describe())
    if opts.destinations and not opts.no_push:
        lines.append("PUSH " + " ".join(opts.destinations))
    if opts.tar_path:
        lines.append(f"TAR {opts.tar_path}")
    if opts.oci_layout_path:
        lines.append(f"OCI LAYOUT {opts.oci_layout_path}")
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()
    log.info("--dryrun: nothing was run, extracted or pushed")


def _snapshotter(opts: Options, work_dir: str, epoch: int | None, level: int | None,
                 ignore_paths: list[str]) -> Snapshotter:
    """The filesystem engine of the root: the ignore list (mounts, kiln's directory, --ignore-path, kiln's
    own inputs) and where layers are written."""
    layers = os.path.join(work_dir, "layers")
    os.makedirs(layers, exist_ok=True)
    if os.path.realpath(opts.root) != "/":
        # A scratch root stands for the image's "/", which is 0755 (a fresh tmp dir is 0700, and
        # USER would then not even reach /bin/sh); a layer's "./" entry may still change it.
        os.chmod(opts.root, 0o755)
    if opts.ignore_var_run:
        # kaniko's --ignore-var-run (default true): /var/run is neither extracted, snapshotted nor wiped (a
        # pod's runtime mounts live there); false keeps it, and only what is mounted below it is ignored
        ignore_paths = [*ignore_paths, "/var/run"]
    ignore = IgnoreList.from_system(opts.root, kiln_dir=opts.kaniko_dir, extra=ignore_paths)
    return Snapshotter(opts.root, ignore, layers, compression=opts.compression, level=level, epoch=epoch,
                       mode=opts.snapshot_mode)


def warm(opts: WarmerOptions) -> int:
    """The warmer: base images into --cache-dir (executor.cache.warmer)."""
    from executor.cache.warmer import warm as warm_images   # the executor's start-up does not load it

    return warm_images(opts, lambda blob_dir: RegistryClient(opts.registry, blob_dir=blob_dir))

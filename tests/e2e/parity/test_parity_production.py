"""Issue 19 item 4: parity on the path users run. test_parity.py builds every case with kiln in a scratch root
(`--root DIR`, each RUN chrooted in fresh namespaces); a Kubernetes Job, a GitLab job or a Tekton task runs
kiln differently: as PID 1 of its executor image, building on `/` itself, RUN run directly in the container
(process-group teardown), stage files under /kaniko, the context a volume at /workspace. This module builds a
representative set of cases that way and judges them by the very test of test_parity.py, unchanged: the same
case loading and context (caseload.py), the same docker build of the case (conftest's `docker_builds`, shared
with test_parity.py when both run), the same comparison (compare.py) and the same accepted differences, pending
bugs, stale-acceptance and failure checks. Only `kiln` differs: `PodKiln.build` runs the executor image that
kiln built of itself (tests/test_executor_image/kilnimage.py) under runc as a pod would:

* PID 1 = the image's entrypoint (/kaniko/executor) with the container's args; root, the capability set a
  Kubernetes pod gets without a securityContext (Docker's and containerd's default, `DEFAULT_CAPS`; no seccomp
  profile, as the kubelet's default), the host's network (the rig's registry and HTTP server on 127.0.0.1),
  /etc/hosts, resolv.conf and hostname bind-mounted as the kubelet does;
* `/` an overlay mount over the unpacked image, fresh for every build (as containerd's overlayfs snapshotter
  gives a pod its root);
* the case's context bind-mounted at /workspace (`--context dir:///workspace`); the test's directory (the
  `docker load` tar kiln writes with `--tar-path`, the secrets' files) bind-mounted at /parity, as a volume.

Every case builds in a pod of its own, as in production (one build per container; a second build in the same
container would start from what the first left on `/`). Pods run one at a time while docker builds two at a
time in the background, as in test_parity.py. Differences seen only on this path are kept in the case's
expect.yaml under `production:` (README.md).

Time, measured on the 2-core machine under other agents' load (load average 6-9): the module alone 74-77 s
with the executor image cached (38 s at a lighter load), 258 s cold (the builder base and both executor image
targets built first: 167 s). Each case costs one executor run, 1.5-4 s. In the whole suite the docker builds
are those test_parity.py makes anyway (shared by case name), and the executor image is the one
tests/test_executor_image and tests/test_deploy build anyway (once per session, `kiln_built_image`), so the
module adds only its pods. It is not skipped by KILN_SKIP_SLOW: this is the only parity on the production
path (`-m "not slow"` deselects it).

    python -m pytest -q -rx tests/e2e/parity/test_parity_production.py
"""
from __future__ import annotations

import dataclasses
import inspect
import logging
import os

import pytest

from tests.e2e.conftest import BuildRun
from tests.e2e.parity import test_parity
from tests.e2e.parity.caseload import CASES, Case
from tests.test_executor_image.kilnimage import DEFAULT_CAPS, KilnImage, Mount, Pod, kiln_built_image

log = logging.getLogger("kiln.parity.production")

pytestmark = pytest.mark.slow

# The cases built on the production path, each with what it checks there that the scratch root cannot. The
# choice: every part of a build that behaves differently when kiln owns `/` and RUN runs without a chroot:
# the snapshot of `/` (whiteouts, type changes, special files, hard links, metadata-only changes, xattrs),
# RUN's identity and environment (users, what a RUN sees of the pod), every RUN --mount type (placed on `/`
# itself, under the pod's own mounts: the pod has no CAP_SYS_ADMIN, executor/run/placing.py), stage switching on `/` (multi-stage, --target, ONBUILD), COPY/ADD
# writing onto `/` (tars, owners, modes), the config, and a failing RUN's exit status.
PRODUCTION_CASES: dict[str, str] = {
    # RUN as users
    "user_groups": "USER name, name:group, uid:gid, back to root: RUN's identity from the image's /etc/passwd on /",
    "user_numeric": "USER of uids not in /etc/passwd and `nobody`; files they write in a 1777 directory",
    # whiteouts and type changes: the snapshot of / after RUN removes base files
    "run_whiteouts": "rm -rf of base directories and files, recreated directories (opaque vs whiteouts)",
    "run_type_changes": "directory <-> file <-> symlink replacements seen by the snapshot of /",
    "delete_then_copy": "RUN deletes base files, COPY puts new ones at the same paths on /",
    # special files, metadata-only changes
    "run_special_files": "fifo, dangling symlink, 1777 directory, empty file made by a RUN on /",
    "run_metadata_only": "chmod/chown/setuid/touch without content change: the snapshot must see it on /",
    # hard links
    "run_hardlink_to_base": "a RUN links a base file (/bin/busybox): the layer's hard link group",
    "hardlinks_from_stage": "COPY --from of hard-linked files: the previous stage's files on / (a saved stage)",
    "copy_context_hardlinks": "hard links in the context volume at /workspace",
    # COPY/ADD: tars, owners, modes, capabilities
    "add_tar_gz": "ADD of a gzip'd tar (unpacked onto /), ADD --chown of it, COPY of it (not unpacked)",
    "add_tar_links": "a tar with hard links unpacked onto /",
    "copy_chown": "COPY --chown by name (the image's /etc/passwd on /), by id, user only, group only, from ARG",
    "copy_chmod": "COPY --chmod 0640/755/4755 and --chown with --chmod",
    "copy_caps": "security.capability from the context volume and through COPY --from on /",
    # every RUN --mount type
    "mount_bind": "--mount=type=bind from the context, from a stage, rw: mounted on / under the pod's mounts",
    "mount_cache": "--mount=type=cache kept across RUNs (under /kaniko), id, sharing=locked",
    "mount_cache_user": "a cache mount owned by uid 1000 used by USER app",
    "mount_secret": "--mount=type=secret: default target /run/secrets, target and mode, a missing optional one",
    "mount_tmpfs": "--mount=type=tmpfs on / (a new and a nested target)",
    "mount_over_existing": "cache and tmpfs mounted over an image directory of /; what shows after",
    "mount_cache_from": "a cache seeded from a stage (from=, source=; copied by kiln itself: its image has no cp), "
                        "a one-file bind from a stage",
    "mount_secret_options": "secrets with uid/gid/mode, a target in a directory made for it, read as USER app",
    "mount_bind_dockerignore": "binds of the context as .dockerignore leaves it (a filtered copy)",
    "run_heredoc_script": "a #! heredoc run as a file at /dev/pipes (under the pod's /dev mount)",
    # multi-stage, ONBUILD
    "multistage_chain": "FROM a previous stage, COPY --from by index and by name: stages replace / in turn",
    "multistage_target": "--target of a middle stage; COPY --from with hard links, owners, symlinks",
    "onbuild": "ONBUILD triggers run when a later stage starts FROM the parent",
    "onbuild_copy": "an ONBUILD COPY from the context volume, then a stage copies its result",
    # metadata
    "metadata": "every config instruction (ENV, LABEL, EXPOSE, VOLUME, USER, WORKDIR, CMD, ...): config and history",
    "volume_then_run": "VOLUME then RUN writing into it, and COPY into it",
    # what a RUN sees in the pod
    "run_environment": "RUN's environment, umask, cwd, id: nothing of the executor's own environment leaks",
    "run_sandbox_probe": "what a RUN sees of the pod: /etc/hosts, resolv.conf, capabilities, mounts",
    # a failure
    "run_failure": "a failing RUN: its exit status reported, no image written",
}

_BY_NAME = {c.name: c for c in CASES}
_missing = sorted(set(PRODUCTION_CASES) - set(_BY_NAME))
if _missing:
    raise ValueError(f"PRODUCTION_CASES names cases that tests/e2e/parity/cases lacks: {_missing}")

CONTEXT = "/workspace"      # where the pod sees the context (the executor image's WORKDIR)
VOLUME = "/parity"          # where the pod sees the test's own directory (output tar, secrets)
POD_TIMEOUT = 600           # a hang guard only (cases take seconds)


@dataclasses.dataclass
class PodKiln:
    """`kiln` for test_parity's test: one executor run as PID 1 of a pod of the kiln-built executor image.
    Paths of the test's directory in the arguments become the pod's view of it (VOLUME)."""
    image: KilnImage
    test_dir: str           # the test's tmp_path: the context, the output tar and the secrets live in it
    workdir: str
    last: BuildRun | None = None

    def build(self, context: str, *args: str, timeout: float = POD_TIMEOUT) -> BuildRun:
        test_dir = self.test_dir.rstrip("/")

        def inside(arg: str) -> str:
            return arg.replace(test_dir + "/", VOLUME + "/")

        argv = ["--context", f"dir://{CONTEXT}", "--log-format", "text", *(inside(a) for a in args)]
        pod = Pod(self.image, self.workdir, extra_args=argv, caps=list(DEFAULT_CAPS), overlay_rootfs=True,
                  mounts=[Mount(context, CONTEXT, rw=True), Mount(test_dir, VOLUME, rw=True)])
        log.info("pod %s: /kaniko/executor %s", pod.cid, " ".join(argv))
        proc = pod.run(timeout=timeout)
        self.last = BuildRun(proc.returncode, proc.stdout, proc.stderr, "/", "/kaniko")
        return self.last


@pytest.fixture(scope="session")
def executor_image(plain_registry, tmp_path_factory: pytest.TempPathFactory) -> KilnImage:
    return kiln_built_image(plain_registry, "executor", str(tmp_path_factory.mktemp("production-parity")))


def production_variant(case: Case) -> Case:
    """The case as this module judges it: its own accepted differences, less those its expect.yaml `production:`
    section names `absent` (they must not occur here), plus that section's; its pending bug replaces the case's."""
    prod = case.production
    if prod is None:
        return case
    gone = {(a.subject, a.attribute) for a in prod.absent}
    unknown = gone - {(a.subject, a.attribute) for a in case.accepted}
    if unknown:
        raise ValueError(f"{case.name}/expect.yaml: production absent names no accepted difference: {sorted(unknown)}")
    kept = [a for a in case.accepted if (a.subject, a.attribute) not in gone]
    variant = dataclasses.replace(case, accepted=kept + prod.accepted)
    if prod.pending:
        variant = dataclasses.replace(variant, pending=prod.pending, pending_subjects=prod.pending_subjects)
    return variant


for _name in PRODUCTION_CASES:
    _prod = _BY_NAME[_name].production
    if _prod and _prod.pending and test_parity.KILN_FAILS in _prod.pending_subjects and not _prod.pending_error:
        raise ValueError(f"{_name}/expect.yaml: production pending {test_parity.KILN_FAILS} without pending_error "
                         "(the message kiln prints while the bug stands)")


@pytest.mark.parametrize("case", [pytest.param(_BY_NAME[n], id=n) for n in PRODUCTION_CASES])
def test_production_path_builds_what_docker_builds(case: Case, executor_image: KilnImage, request, tmp_path,
                                                   tmp_path_factory: pytest.TempPathFactory):
    """test_parity's test, with kiln in a pod instead of a scratch root; its other fixtures as it names them."""
    judge = test_parity.test_kiln_builds_what_docker_builds
    # the pod's bundle (its overlay root's upper and work directories) outside the directory it sees as a volume
    kiln = PodKiln(executor_image, str(tmp_path), str(tmp_path_factory.mktemp(f"pod-{case.name}")))
    variant = production_variant(case)
    kwargs = {}
    for name in inspect.signature(judge).parameters:
        kwargs[name] = variant if name == "case" else kiln if name == "kiln" else request.getfixturevalue(name)
    try:
        judge(**kwargs)
    except pytest.xfail.Exception:
        # a pending bug that makes kiln refuse the build: it must still be that bug, in kiln's words
        prod = case.production
        if kiln.last is not None and kiln.last.returncode != 0 and prod and prod.pending_error:
            assert prod.pending_error in kiln.last.stderr, \
                f"{case.name}: kiln failed, but not with the pending bug's message {prod.pending_error!r}:\n" + \
                kiln.last.stderr[-3000:]
        raise

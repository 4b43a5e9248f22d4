"""Issue 4: every case built by kiln and by `docker build` (BuildKit) from the same base images, the two
images compared path by path and config field by field. Differences that remain are accepted in the
case's expect.yaml with a reason; a case with `pending:` is a known kiln bug (strict xfail)."""
from __future__ import annotations

import logging
import os
import time

import pytest

from tests.e2e.parity.caseload import CASES, Case
from tests.e2e.parity.compare import Difference, compare
from tests.e2e.parity.conftest import write_secrets
from tests.rig.judge import judge_docker_tar

log = logging.getLogger("kiln.parity")
SESSION_START = time.time()   # files with mtimes after this were written by the builds


def _param(case: Case):
    marks = [pytest.mark.xfail(reason=case.pending, strict=True)] if case.pending else []
    return pytest.param(case, id=case.name, marks=marks)


def _mount_stub(d: Difference) -> bool:
    """dockerd 20.10's BuildKit (0.8) leaves the empty directories runc creates as mount points (/dev,
    /proc, /sys) in a RUN's layer when the base image lacks them; BuildKit 0.11 removes them
    (moby/buildkit#3307, #3314), as kiln and kaniko never create them."""
    return d.subject in ("dev", "proc", "sys") and d.attribute == "exists" and (d.kiln, d.docker) == (False, True)


def _healthcheck_start_interval(d: Difference) -> bool:
    """kiln writes HEALTHCHECK's created_by as current BuildKit does, with StartInterval (moby 25);
    dockerd 20.10's HealthConfig has no such field. Only that one "0s" may differ."""
    if not (d.subject.startswith("history.") and isinstance(d.kiln, tuple) and isinstance(d.docker, tuple)):
        return False
    (mine, mine_empty), (theirs, theirs_empty) = d.kiln, d.docker
    return mine.startswith("HEALTHCHECK ") and mine_empty == theirs_empty and \
        mine.replace(' "0s" "0s" ', ' "0s" ', 1) == theirs


DOCKER_20_10 = (_mount_stub, _healthcheck_start_interval)


def _accepted(case: Case, diff: Difference) -> bool:
    if any(known(diff) for known in DOCKER_20_10):
        return True
    return any(a.subject == diff.subject and a.attribute in (None, diff.attribute) for a in case.accepted)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_kiln_builds_what_docker_builds(case: Case, kiln, parity_bases, docker_builds, plain_registry,
                                        tmp_path):
    ctx = case.make_context(str(tmp_path / "context"))
    out = str(tmp_path / "kiln.tar")
    argv = ["--no-push", "--tar-path", out, "--destination", f"parity/{case.name}:latest",
            "--insecure-registry", plain_registry.host]
    for k, v in case.build_args(parity_bases.busybox, parity_bases.debian).items():
        argv += ["--build-arg", f"{k}={v}"]
    if case.target:
        argv += ["--target", case.target]
    for sid, path in write_secrets(case, str(tmp_path)).items():
        argv += ["--secret", f"id={sid},src={path}"]
    run = kiln.build(ctx, *argv)
    docker = docker_builds[case.name].result()
    assert docker.error is None, docker.error
    run.check()
    mine = judge_docker_tar(out, unpack=False, workdir=str(tmp_path))

    diffs = compare(mine, docker.report, SESSION_START)
    unexplained = [d for d in diffs if not _accepted(case, d)]
    for d in diffs:
        if d not in unexplained:
            log.info("%s: accepted difference %s", case.name, d)
    stale = [a for a in case.accepted
             if not any(d.subject == a.subject and a.attribute in (None, d.attribute) for d in diffs)]
    assert not unexplained, f"{case.name}: kiln's image differs from docker build's:\n" + \
        "\n".join(str(d) for d in unexplained)
    assert not stale, f"{case.name}: expect.yaml accepts differences that no longer occur: {stale}"

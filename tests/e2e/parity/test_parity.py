"""Issue 4: every case built by kiln and by `docker build` (BuildKit) from the same base images, the two
images compared path by path and config field by field. Differences that remain are accepted in the
case's expect.yaml with a reason; a case with `pending:` is a known kiln bug (strict xfail)."""
from __future__ import annotations

import logging
import os
import re
import time

import pytest

from tests.e2e.parity.caseload import CASES, Case
from tests.e2e.parity.compare import Difference, compare
from tests.e2e.conftest import registry_tags
from tests.e2e.parity.conftest import write_secrets
from tests.rig.judge import LayerReport, judge_docker_tar

log = logging.getLogger("kiln.parity")
SESSION_START = time.time()        # files with mtimes after this were written by the builds
FAILED_REPO = "parity-fail"        # where the cases that must fail push (nothing may arrive)
KILN_FAILS = "kiln-build-fails"   # a pending_subjects entry: the bug makes kiln refuse the Dockerfile


# KILN_PARITY_EXTRACT=eager runs the whole suite with kiln's --extract=eager (every stage's base extracted at its
# start) instead of the default lazy extraction; test_extract_modes.py checks both give the same image.
EXTRACT = (f"--extract={os.environ['KILN_PARITY_EXTRACT']}",) if os.environ.get("KILN_PARITY_EXTRACT") else ()


def _param(case: Case):
    return pytest.param(case, id=case.name)


RUNTIME_STUBS = {"dev", "proc", "sys", "etc"}


def _stub_paths(case: Case) -> set[str]:
    """Paths runc or BuildKit create to mount on during the case's RUNs: /dev, /proc, /sys, /etc (for
    hosts and resolv.conf) and every RUN --mount target with its parents (a secret's default target is
    /run/secrets/ID)."""
    with open(os.path.join(case.directory, "Dockerfile")) as f:
        text = f.read()
    paths = set(RUNTIME_STUBS)
    for spec in re.findall(r"--mount=(\S+)", text):
        fields = dict(kv.partition("=")[::2] for kv in spec.split(","))
        target = fields.get("target") or fields.get("dst") or fields.get("destination")
        if not target and fields.get("type") == "secret":
            target = f"/run/secrets/{fields.get('id') or os.path.basename(fields.get('source', ''))}"
        parts = (target or "").strip("/").split("/")
        paths.update("/".join(parts[:i]) for i in range(1, len(parts) + 1) if parts[0])
    return paths


def _mount_stub(case: Case, d: Difference) -> bool:
    """dockerd 20.10's BuildKit (0.8) leaves the empty directories runc creates as mount points (/dev,
    /proc, /sys, RUN --mount targets and their parents) in a RUN's layer when the image lacks them;
    BuildKit 0.11 removes them (moby/buildkit#3307, #3314), and kiln, like kaniko, never adds them."""
    return d.attribute == "exists" and (d.kiln, d.docker) == (False, True) and d.subject in _stub_paths(case)


def _hollow(layer: LayerReport) -> bool:
    """A layer of dockerd 20.10's BuildKit holding nothing, or only the directories runc touched to mount
    on (/etc for hosts and resolv.conf, /dev, /proc, /sys): a RUN or WORKDIR that changed nothing. Current
    BuildKit and kiln write no layer for those (history empty_layer)."""
    return all(m.type == "dir" and m.path in RUNTIME_STUBS for m in layer.members)


def _healthcheck_start_interval(d: Difference) -> bool:
    """kiln writes HEALTHCHECK's created_by as current BuildKit does, with StartInterval (moby 25);
    dockerd 20.10's HealthConfig has no such field. Only that one "0s" may differ."""
    if not (d.subject.startswith("history.") and isinstance(d.kiln, tuple) and isinstance(d.docker, tuple)):
        return False
    (mine, mine_empty), (theirs, theirs_empty) = d.kiln, d.docker
    without = re.sub(r'^(HEALTHCHECK &\{\[.*?\] (?:"[^"]*" ){3})"0s" ', r"\1", mine)
    return mine.startswith("HEALTHCHECK ") and mine_empty == theirs_empty and without == theirs


def _copy_flags_in_history(d: Difference) -> bool:
    """dockerd 20.10's BuildKit writes COPY/ADD history without their --chown/--chmod/--link flags;
    current BuildKit's dispatchCopy names them and kiln follows it (executor/dockerfile/history.py)."""
    if not (d.subject.startswith("history.") and isinstance(d.kiln, tuple) and isinstance(d.docker, tuple)):
        return False
    (mine, mine_empty), (theirs, theirs_empty) = d.kiln, d.docker
    stripped = re.sub(r" --(chown|chmod)=\S+| --link\b", "", mine)
    return mine.startswith(("COPY ", "ADD ")) and mine_empty == theirs_empty and stripped == theirs


def _arg_values_in_history(d: Difference) -> bool:
    """Current BuildKit's dispatchArg writes each ARG with the value it took (`ARG B=cli`, `ARG
    TARGETARCH=amd64`) and kiln follows it; dockerd 20.10's BuildKit writes the Dockerfile's text (`ARG B`).
    The same names in the same order are required."""
    if not (d.subject.startswith("history.") and isinstance(d.kiln, tuple) and isinstance(d.docker, tuple)):
        return False
    (mine, mine_empty), (theirs, theirs_empty) = d.kiln, d.docker
    names = lambda text: [t.split("=", 1)[0] for t in text.split()[1:]]
    return mine.startswith("ARG ") and theirs.startswith("ARG ") and mine_empty == theirs_empty and \
        names(mine) == names(theirs)


DOCKER_20_10 = (_healthcheck_start_interval, _copy_flags_in_history, _arg_values_in_history)


def _accepted(case: Case, diff: Difference) -> bool:
    if _mount_stub(case, diff) or any(known(diff) for known in DOCKER_20_10):
        return True
    return any(a.subject == diff.subject and a.attribute in (None, diff.attribute) for a in case.accepted)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_kiln_builds_what_docker_builds(case: Case, kiln, parity_bases, docker_builds, plain_registry,
                                        tmp_path):
    ctx = case.make_context(str(tmp_path / "context"))
    out = str(tmp_path / "kiln.tar")
    if case.fail:   # pushed for real: the failed build must leave no tag behind
        argv = ["--tar-path", out, "--destination", plain_registry.ref(f"{FAILED_REPO}/{case.name}:latest"),
                "--insecure-registry", plain_registry.host]
    else:
        argv = ["--no-push", "--tar-path", out, "--destination", f"parity/{case.name}:latest",
                "--insecure-registry", plain_registry.host]
    build_args = case.build_args(parity_bases.busybox, parity_bases.debian, parity_bases.http,
                                 parity_bases.onbuild, parity_bases.extra)
    for k, v in build_args.items():
        argv += ["--build-arg", f"{k}={v}"]
    if case.target:
        argv += ["--target", case.target]
    for sid, path in write_secrets(case, str(tmp_path)).items():
        argv += ["--secret", f"id={sid},src={path}"]
    run = kiln.build(ctx, *argv, *case.kiln_args, *EXTRACT)
    docker = docker_builds[case.name].result()
    assert docker.error is None, docker.error
    if case.fail:
        assert docker.failed_build is not None, "docker build was expected to fail"
        assert run.returncode != 0, "kiln built what docker build refuses"
        # the user reads why, in one error line naming what is at fault, and no traceback (case.yaml `error:`)
        line = run.refused(*case.error)
        missing = [o for o in case.output if o not in run.stdout + run.stderr]
        assert not missing, f"kiln's output lacks {missing}:\n{run.stderr[-3000:]}"
        status = re.search(r"exit code: (\d+)", docker.failed_build)
        if status:      # a RUN failed: kiln reports the same exit status
            assert f"returned a non-zero code: {status.group(1)}" in line, line
        assert not os.path.exists(out), "a failed build writes no image"
        assert registry_tags(plain_registry, f"{FAILED_REPO}/{case.name}") == [], "a failed build pushes no tag"
        return
    if run.returncode != 0 and case.pending and KILN_FAILS in case.pending_subjects:
        pytest.xfail(f"known kiln bug: {case.pending}")
    run.check()
    mine = judge_docker_tar(out, unpack=False, workdir=str(tmp_path))

    diffs = compare(mine, docker.report, SESSION_START, hollow=_hollow)
    unexplained = [d for d in diffs if not _accepted(case, d)]
    for d in diffs:
        if d not in unexplained:
            log.info("%s: accepted difference %s", case.name, d)
    stale = [a for a in case.accepted if not a.optional
             and not any(d.subject == a.subject and a.attribute in (None, d.attribute) for d in diffs)]
    if case.pending:
        # a known kiln bug: exactly its differences make the case an expected failure; fixed, it fails
        assert unexplained, f"{case.name}: the pending kiln bug is fixed; drop `pending` from expect.yaml"
        assert sorted({d.subject for d in unexplained}) == sorted(set(case.pending_subjects)), \
            f"{case.name}: differences other than the pending bug's:\n" + "\n".join(str(d) for d in unexplained)
        pytest.xfail(f"known kiln bug: {case.pending}")
    assert not unexplained, f"{case.name}: kiln's image differs from docker build's:\n" + \
        "\n".join(str(d) for d in unexplained)
    assert not stale, f"{case.name}: expect.yaml accepts differences that no longer occur: {stale}"

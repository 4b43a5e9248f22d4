"""Issue 4: every case built by kiln and by `docker build` (BuildKit) from the same base images, the two
images compared path by path and config field by field. Differences that remain are accepted in the
case's expect.yaml with a reason; a case with `pending:` is a known kiln bug (strict xfail)."""
from __future__ import annotations

import logging
import os
import re
import time

import pytest

from tests.e2e.parity.caseload import CASES, Case, engine_version
from tests.e2e.parity.compare import Difference, compare
from tests.e2e.conftest import registry_tags
from tests.e2e.parity.conftest import write_secrets
from tests.rig.judge import judge_docker_tar

log = logging.getLogger("kiln.parity")
SESSION_START = time.time()        # files with mtimes after this were written by the builds
FAILED_REPO = "parity-fail"        # where the cases that must fail push (nothing may arrive)
KILN_FAILS = "kiln-build-fails"   # a pending_subjects entry: the bug makes kiln refuse the Dockerfile


# KILN_PARITY_EXTRACT=eager runs the whole suite with kiln's --extract=eager (every stage's base extracted at its
# start) instead of the default lazy extraction; test_extract_modes.py checks both give the same image.
EXTRACT = (f"--extract={os.environ['KILN_PARITY_EXTRACT']}",) if os.environ.get("KILN_PARITY_EXTRACT") else ()


def _param(case: Case):
    return pytest.param(case, id=case.name)


RUNTIME_MOUNT_POINTS = ("dev", "proc", "sys")
HOLLOW = {"dev", "proc", "sys", "etc"}


def _runtime_mount_point(d: Difference, docker_empty_dirs: set[str]) -> bool:
    """/dev, /proc, /sys: runc creates them in the rootfs of a RUN to mount on when the image lacks them,
    and BuildKit keeps these empty directories in the RUN's layer (measured with docker 26.1.5 and 28.5.2;
    on purpose: moby/buildkit#7039 recreates them for rootless workers so that every worker's output is
    the same). kiln, like kaniko, never writes them: a deliberate difference (docs/differences.md). The
    stubs of RUN --mount targets are removed since BuildKit 0.11 (moby/buildkit#3307, #3314): not accepted."""
    return d.attribute == "exists" and (d.kiln, d.docker) == (False, True) and \
        d.subject in RUNTIME_MOUNT_POINTS and d.subject in docker_empty_dirs


def _mount_target_parents(case: Case) -> set[str]:
    """The directories holding the case's RUN --mount targets (a secret's default target is
    /run/secrets/ID): BuildKit makes a stub there to mount on and removes it after the RUN, which changes
    the parent's mtime (the stubs themselves are gone since BuildKit 0.11, moby/buildkit#3307, #3314)."""
    parents: set[str] = set()
    for spec in re.findall(r"--mount=(\S+)", case.dockerfile_text):
        fields = dict(kv.partition("=")[::2] for kv in spec.split(","))
        target = fields.get("target") or fields.get("dst") or fields.get("destination")
        if not target and fields.get("type") == "secret":
            target = f"/run/secrets/{fields.get('id') or os.path.basename(fields.get('source', ''))}"
        parts = (target or "").strip("/").split("/")[:-1]
        parents.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return parents


def _hollow(case: Case):
    """A layer of docker's holding nothing, or only directories runc or BuildKit touched to mount on: /etc
    (its mtime changes when BuildKit removes the /etc/hosts and /etc/resolv.conf stubs it bound), /dev,
    /proc, /sys, and the parents of the case's RUN --mount targets. dockerd writes one for a RUN or WORKDIR
    that changed nothing (measured with docker 26.1.5 and 28.5.2, overlay2 image store); kiln, like kaniko,
    writes no layer then (history empty_layer): a deliberate difference (docs/differences.md)."""
    touched = HOLLOW | _mount_target_parents(case)
    return lambda layer: all(m.type == "dir" and m.path in touched for m in layer.members)


def _arg_values_in_history(d: Difference) -> bool:
    """BuildKit writes each ARG's history with the value it took (`ARG B=cli`, `ARG TARGETARCH=amd64`, the
    global ARG's value for a bare `ARG B`) since v0.14.0 (moby/buildkit#4856, commit 47a52a17b, "avoid
    evaluating ARG default if unused"); before, with the Dockerfile's text (`ARG B`, `ARG B=${A}-2`). kiln
    follows current BuildKit. Measured: docker 26.1.5 writes the text, 28.5.2 the values as kiln. The same
    names in the same order are required."""
    if not (d.subject.startswith("history.") and isinstance(d.kiln, tuple) and isinstance(d.docker, tuple)):
        return False
    (mine, mine_empty), (theirs, theirs_empty) = d.kiln, d.docker
    if not (mine.startswith("ARG ") and theirs.startswith("ARG ") and mine_empty == theirs_empty):
        return False
    # kiln's names are the words before a "=" (a value may hold spaces: `a4=123 456`); docker's text has
    # `NAME` or `NAME=default as written`
    mine_names = [m.group(1) for w in mine.split()[1:] if (m := re.match(r"([A-Za-z_]\w*)=", w))]
    theirs_names = [m.group(1) for w in theirs.split()[1:] if (m := re.match(r"([A-Za-z_]\w*)(=|$)", w))]
    return mine_names == theirs_names


def history_rules(version: tuple[int, ...]) -> tuple:
    """Rules for history texts an older reference writes differently from current BuildKit."""
    return (_arg_values_in_history,) if version < (28,) else ()


def _accepted(case: Case, diff: Difference, version: tuple[int, ...], docker_empty_dirs: set[str]) -> bool:
    if _runtime_mount_point(diff, docker_empty_dirs) or any(known(diff) for known in history_rules(version)):
        return True
    return any(a.subject == diff.subject and a.attribute in (None, diff.attribute)
               for a in case.accepted if a.applies(version))


def _empty_dirs(report) -> set[str]:
    """Directories of an image's merged filesystem with nothing below them."""
    view = report.filesystem()
    parents = {p.rsplit("/", 1)[0] for p in view if "/" in p}
    return {p for p, (_, m) in view.items() if m.type == "dir" and p not in parents}


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_kiln_builds_what_docker_builds(case: Case, kiln, parity_bases, dockerd, docker_builds, plain_registry,
                                        tmp_path):
    version = engine_version(dockerd.version)
    if not case.runs_with(version):
        pytest.skip(f"the case needs docker {case.docker} as its reference (its case.yaml says why); this is "
                    f"docker {dockerd.version}: scripts/parity-newest-docker.sh runs it")
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

    diffs = compare(mine, docker.report, SESSION_START, hollow=_hollow(case))
    empty_dirs = _empty_dirs(docker.report)
    unexplained = [d for d in diffs if not _accepted(case, d, version, empty_dirs)]
    for d in diffs:
        if d not in unexplained:
            log.info("%s: accepted difference %s", case.name, d)
    stale = [a for a in case.accepted if not a.optional and a.applies(version)
             and not any(d.subject == a.subject and a.attribute in (None, d.attribute) for d in diffs)]
    if case.pending:
        # a known kiln bug: exactly its differences make the case an expected failure; fixed, it fails
        assert unexplained, f"{case.name}: the pending kiln bug is fixed; drop `pending` from expect.yaml"
        assert sorted({d.subject for d in unexplained}) == sorted(case.pending_for(version)), \
            f"{case.name}: differences other than the pending bug's:\n" + "\n".join(str(d) for d in unexplained)
        pytest.xfail(f"known kiln bug: {case.pending}")
    assert not unexplained, f"{case.name}: kiln's image differs from docker build's:\n" + \
        "\n".join(str(d) for d in unexplained)
    assert not stale, f"{case.name}: expect.yaml accepts differences that no longer occur: {stale}"

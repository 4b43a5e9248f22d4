"""The parity suite's own rules (no docker needed): the case loader refuses cases the suite cannot judge honestly;
docker version constraints of accepted differences and pending subjects."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.parity.caseload import CASES, Accepted, Case, engine_version, load_cases, version_matches


def _case(root: Path, name: str, case_yaml: str) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nRUN exit 3\n")
    (directory / "case.yaml").write_text(case_yaml)
    return directory


@pytest.mark.parametrize("case_yaml", ["fail: true\n", "fail: true\nerror: []\n", "fail: true\nerror: ['  ']\n"])
def test_a_failure_case_without_an_expected_message_is_rejected(tmp_path: Path, case_yaml: str) -> None:
    _case(tmp_path, "fail_silent", case_yaml)
    with pytest.raises(ValueError) as err:
        load_cases(str(tmp_path))
    assert str(err.value).startswith("fail_silent/case.yaml: fail: true without error: a case that must fail states "
                                     "what the user must read")


@pytest.mark.parametrize("case_yaml", ["error: ['returned a non-zero code: 3']\n", "output: ['RUN exit 3']\n"])
def test_an_expected_message_without_fail_is_rejected(tmp_path: Path, case_yaml: str) -> None:
    _case(tmp_path, "not_failing", case_yaml)
    with pytest.raises(ValueError, match=r"^not_failing/case\.yaml: error:/output: without fail: true$"):
        load_cases(str(tmp_path))


def test_a_failure_case_with_its_message_loads(tmp_path: Path) -> None:
    _case(tmp_path, "fail_run", "fail: true\nerror: \"returned a non-zero code: 3\"\noutput: [RUN exit 3]\n")
    (case,) = load_cases(str(tmp_path))
    assert case.fail and case.error == ["returned a non-zero code: 3"] and case.output == ["RUN exit 3"]


def test_every_failure_case_of_the_suite_states_its_message() -> None:
    failing = [c for c in CASES if c.fail]
    assert len(failing) >= 12, [c.name for c in failing]
    assert all(c.error for c in failing)



def test_engine_version_is_the_numeric_release():
    assert engine_version("26.1.5+dfsg1") == (26, 1, 5)
    assert engine_version("28.5.2+dfsg4") == (28, 5, 2)
    with pytest.raises(ValueError, match="not a docker version: 'dev'"):
        engine_version("dev")


@pytest.mark.parametrize("constraint, version, expected", [
    ("<28", (26, 1, 5), True), ("<28", (28, 5, 2), False), ("<=28.5.2", (28, 5, 2), True),
    ("<=28.5.2", (28, 5, 3), False), (">=28", (28,), True), (">=26,<28", (27, 0, 1), True),
    (">=26,<28", (25, 9), False), ("==28.5", (28, 5, 0), True),
])
def test_version_constraints(constraint, version, expected):
    assert version_matches(constraint, version) is expected


def test_a_malformed_constraint_is_refused():
    with pytest.raises(ValueError, match=r"bad docker version constraint '28\+'"):
        version_matches("28+", (28,))


def test_accepted_and_pending_subjects_follow_the_reference_version():
    assert Accepted("f", "mode", "r", docker="<28").applies((26, 1, 5))
    assert not Accepted("f", "mode", "r", docker="<28").applies((28, 5, 2))
    assert Accepted("f", "mode", "r").applies((28, 5, 2))
    case = Case("c", "/nonexistent", pending="bug", pending_subjects=["out"],
                pending_versioned={"history.5": ">=28"})
    assert case.pending_for((26, 1, 5)) == {"out"}
    assert case.pending_for((28, 5, 2)) == {"out", "history.5"}


def test_a_case_may_need_a_newer_docker_frontend():
    assert Case("c", "/nonexistent", docker=">=28").runs_with((28, 5, 2))
    assert not Case("c", "/nonexistent", docker=">=28").runs_with((26, 1, 5))
    assert Case("c", "/nonexistent").runs_with((26, 1, 5))

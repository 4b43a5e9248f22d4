"""The parity suite's own rules: docker version constraints of accepted differences and pending subjects."""
from __future__ import annotations

import pytest

from tests.e2e.parity.caseload import Accepted, Case, engine_version, version_matches


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

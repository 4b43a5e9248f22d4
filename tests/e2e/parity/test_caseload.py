"""The case loader refuses cases the parity suite cannot judge honestly (no docker needed)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.parity.caseload import CASES, load_cases


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

"""Every Dockerfile under malformed/ must fail at parse time naming its file, its line and
a clear message (expected.yaml is the sidecar table)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from executor.dockerfile import DockerfileError, parse, select_target

HERE = Path(__file__).parent / "malformed"
EXPECTED = yaml.safe_load((HERE / "expected.yaml").read_text())
FILES = sorted(HERE.glob("*.Dockerfile"))


def test_every_file_has_an_expectation_and_back():
    assert len(FILES) >= 50
    assert {p.stem for p in FILES} == set(EXPECTED)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_malformed(path: Path):
    want = EXPECTED[path.stem]
    with pytest.raises(DockerfileError) as info:
        parse(path.read_text(), path.name)
    err = info.value
    assert err.file == path.name
    assert err.line == want["line"], str(err)
    assert want["message"] in err.message, str(err)
    assert str(err).startswith(f"{path.name}:{want['line']}: ")


def test_select_target():
    df = parse("FROM a AS base\nFROM base AS Final\nFROM scratch\n")
    assert select_target(df, "base").index == 0
    assert select_target(df, "FINAL").name == "final"
    assert select_target(df, "2").index == 2
    assert select_target(df, "").index == 2
    assert select_target(df, None).index == 2
    with pytest.raises(DockerfileError) as info:
        select_target(df, "missing")
    assert str(info.value) == 'Dockerfile: target stage "missing" could not be found (stages: base, final)'

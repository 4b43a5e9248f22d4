"""Property: any set of flag values, written in any mix of pflag spellings and any order, parses to
those values."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from executor.cli import parse_executor_args
from tests.test_cli.test_flags import field_of
from tests.test_cli import kaniko_flags as kf

SIMPLE = {f.name: f for f in kf.EXECUTOR_FLAGS
          if f.type in ("bool", "string", "int") and f.name not in kf.EXECUTOR_DEPRECATED
          and f.name not in ("verbosity", "log-format", "snapshot-mode", "custom-platform", "kaniko-dir",
                             "context", "no-push")}
FIELD = {"destination": "destinations", "ignore-path": "ignore_paths", "insecure-registry": "registry.insecure_registries"}
REPEATABLE = ["destination", "ignore-path", "insecure-registry"]

text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
BOOL_TEXT = {True: ["", "=true", "=1", "=t", "=T", "=TRUE", "=True"],
             False: ["=false", "=0", "=f", "=F", "=FALSE", "=False"]}


@st.composite
def invocation(draw: st.DrawFn) -> tuple[list[str], dict[str, Any]]:
    chosen = draw(st.lists(st.sampled_from(sorted(SIMPLE)), unique=True, max_size=12))
    words: list[list[str]] = []
    repeats: list[tuple[str, str]] = []  # (field, value) for each repeatable occurrence, by index in words
    expected: dict[str, Any] = {}
    for name in chosen:
        flag = SIMPLE[name]
        if flag.type == "bool":
            value = draw(st.booleans())
            words.append([f"--{name}{draw(st.sampled_from(BOOL_TEXT[value]))}"])
        elif flag.type == "int":
            value = draw(st.integers(-10**6, 10**6))
            words.append(draw(st.sampled_from([[f"--{name}", str(value)], [f"--{name}={value}"]])))
        else:
            value = draw(text)
            forms = [[f"--{name}={value}"], [f"--{name}", value]]
            if flag.short:
                forms += [[f"-{flag.short}", value], [f"-{flag.short}={value}"]]
                if value and not value.startswith("="):
                    forms.append([f"-{flag.short}{value}"])
            words.append(draw(st.sampled_from(forms)))
        expected[field_of(name)] = value
        repeats.append(("", ""))
    for name in REPEATABLE:
        values = draw(st.lists(text, max_size=3))
        for value in values:
            words.append(draw(st.sampled_from([[f"--{name}", value], [f"--{name}={value}"]])))
            repeats.append((FIELD[name], value))
        expected[FIELD[name]] = []
    order = draw(st.permutations(range(len(words))))
    for i in order:  # repeatables: the values in the order they end up on the command line
        field, value = repeats[i]
        if field:
            expected[field].append(value)
    argv = [w for i in order for w in words[i]]
    return ["--no-push", *argv], expected


@settings(max_examples=300, deadline=None)
@given(invocation())
def test_any_spelling_any_order(case: tuple[list[str], dict[str, Any]]) -> None:
    argv, expected = case
    opts = parse_executor_args(argv, env={}, platform_default="linux/amd64")
    for field, value in expected.items():
        got = opts
        for part in field.split("."):
            got = getattr(got, part)
        assert got == value, (field, argv)

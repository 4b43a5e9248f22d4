"""Logging as kaniko's logrus prints it; secrets never reach the output."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from executor import logs


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    for h in list(root.handlers):
        if h.get_name() == "kiln":
            root.removeHandler(h)
    root.setLevel(level)
    logs.REDACTOR.clear()


def emit(stream: io.StringIO, level: int, msg: str, *args: object) -> list[str]:
    logging.getLogger("executor.test").log(level, msg, *args)
    return stream.getvalue().splitlines()


def test_color_on_a_terminal() -> None:
    out = FakeTty()
    logs.configure("info", "color", False, stream=out)
    (line,) = emit(out, logging.WARNING, "Retrieving image %s", "alpine")
    assert re.fullmatch(r"\x1b\[33mWARN\x1b\[0m\[\d{4}\] Retrieving image alpine {21} ", line)


def test_color_without_a_terminal_is_plain() -> None:
    out = io.StringIO()
    logs.configure("info", "color", False, stream=out)
    (line,) = emit(out, logging.INFO, "Built cross stage deps")
    assert "\x1b" not in line
    assert re.fullmatch(r"INFO\[\d{4}\] Built cross stage deps {22} ", line)


def test_color_with_timestamp() -> None:
    out = io.StringIO()
    logs.configure("info", "color", True, stream=out)
    (line,) = emit(out, logging.ERROR, "boom")
    assert re.match(r"ERRO\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)\] boom", line)


def test_text_is_logfmt() -> None:
    out = io.StringIO()
    logs.configure("debug", "text", False, stream=out)
    lines = emit(out, logging.DEBUG, 'say "hi"\tnow') + []
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r'time="[^"]+" level=debug msg="say \\"hi\\"\\tnow"', lines[0])
    logging.getLogger("x").info("bare")
    assert out.getvalue().splitlines()[1].endswith("level=info msg=bare")


def test_json_lines() -> None:
    out = io.StringIO()
    logs.configure("trace", "json", False, stream=out)
    logging.getLogger("x").log(logs.TRACE, "a <b> & c")
    logging.getLogger("x").warning("w")
    first, second = out.getvalue().splitlines()
    assert list(json.loads(first)) == ["level", "msg", "time"]
    assert json.loads(first)["level"] == "trace" and json.loads(first)["msg"] == "a <b> & c"
    assert "\\u003cb\\u003e \\u0026" in first
    assert json.loads(second)["level"] == "warning"


@pytest.mark.parametrize("verbosity,shown", [
    ("panic", []), ("fatal", ["fatal"]), ("error", ["fatal", "error"]), ("warn", ["fatal", "error", "warning"]),
    ("info", ["fatal", "error", "warning", "info"]),
    ("debug", ["fatal", "error", "warning", "info", "debug"]),
    ("trace", ["fatal", "error", "warning", "info", "debug", "trace"]),
])
def test_levels_filter(verbosity: str, shown: list[str]) -> None:
    out = io.StringIO()
    logs.configure(verbosity, "json", False, stream=out)
    log = logging.getLogger("executor.levels")
    for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG, logs.TRACE):
        log.log(level, "m")
    assert [json.loads(line)["level"] for line in out.getvalue().splitlines()] == shown


def test_trace_is_below_debug() -> None:
    assert logs.TRACE < logging.DEBUG
    assert logs.parse_level("TRACE") == logs.TRACE


@pytest.mark.parametrize("bad", ["loud", "", "warnings"])
def test_bad_level(bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid log level"):
        logs.configure(bad, "color", False, stream=io.StringIO())


def test_bad_format() -> None:
    with pytest.raises(ValueError, match="not a valid log format"):
        logs.configure("info", "xml", False, stream=io.StringIO())


def test_reconfigure_replaces_the_handler() -> None:
    out1, out2 = io.StringIO(), io.StringIO()
    logs.configure("info", "json", False, stream=out1)
    logs.configure("info", "json", False, stream=out2)
    logging.getLogger("x").info("once")
    assert out1.getvalue() == "" and len(out2.getvalue().splitlines()) == 1


@pytest.mark.parametrize("fmt", ["color", "text", "json"])
def test_secrets_are_redacted_in_every_format(fmt: str) -> None:
    out = io.StringIO()
    logs.configure("debug", fmt, False, stream=out)
    logs.register_secret("hunter2-token")
    logs.register_secret("line-one\nline-two\n")
    log = logging.getLogger("executor.secret")
    log.info("token is %s", "hunter2-token")
    log.info("url https://u:hunter2-token@host and line-two")
    try:
        raise RuntimeError("failed with hunter2-token")
    except RuntimeError:
        log.exception("oops %s", "line-one\nline-two")
    text = out.getvalue()
    assert "hunter2" not in text and "line-one" not in text and "line-two" not in text
    assert text.count("***") >= 4


def test_short_values_are_not_registered() -> None:
    assert logs.register_secret("ab") is False
    assert logs.register_secret("abc") is True
    assert logs.REDACTOR.redact("ab abc") == "ab ***"


def test_longest_secret_wins() -> None:
    logs.register_secret("pass")
    logs.register_secret("password123")
    assert logs.REDACTOR.redact("password123 pass") == "*** ***"

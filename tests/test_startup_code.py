"""executor.startup_code: what start-up compiles (dataclass methods, regular expressions), kept like byte code
(issue 21's start-up).

A class made from the table must be the class `dataclasses` makes by itself, a pattern the pattern `re` makes;
tables that do not fit (another Python, a damaged file, a class changed since) must change nothing."""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import marshal
import os
import re
from dataclasses import InitVar, dataclass, field

import pytest

from executor import startup_code
from tests.rig.fresh import fresh_python


def _classes():
    """Classes using what kiln's dataclasses use (defaults, factories, frozen, order, kw_only, slots, InitVar,
    __post_init__), created anew on each call so that `dataclasses` generates their methods again."""

    @dataclass
    class Plain:
        """-"""
        a: int
        b: str = "x"
        c: list[int] = field(default_factory=list)

    @dataclass(frozen=True, order=True)
    class Frozen:
        """-"""
        n: int
        name: str = ""

    @dataclass(kw_only=True, slots=True)
    class Slotted:
        """-"""
        path: str
        mode: int = 0o644

    @dataclass
    class Derived:
        """-"""
        total: int = 0
        seed: InitVar[int] = 1

        def __post_init__(self, seed: int) -> None:
            self.total += seed

    return Plain, Frozen, Slotted, Derived


def _behaviour(classes) -> list:
    Plain, Frozen, Slotted, Derived = classes
    p1, p2 = Plain(1), Plain(1)
    p1.c.append(5)
    out = [repr(p1), p1 == Plain(1, "x", [5]), p2.c, p1.c is not p2.c]
    f = Frozen(2, "b")
    out += [repr(f), hash(f) == hash(Frozen(2, "b")), Frozen(1) < Frozen(2), repr(sorted([Frozen(3), Frozen(1)]))]
    with pytest.raises(dataclasses.FrozenInstanceError) as e:
        f.n = 3
    out.append(str(e.value))
    s = Slotted(path="/etc")
    out += [repr(s), hasattr(s, "__dict__"), Slotted.__slots__]
    with pytest.raises(TypeError) as e:
        Slotted("/etc")
    out.append(str(e.value))
    out += [Derived(total=2, seed=3).total, repr(Derived())]
    return out


def _methods(classes) -> list:
    return [getattr(c, m).__code__ for c in classes for m in ("__init__", "__repr__", "__eq__") if m in c.__dict__]


def test_a_class_from_the_table_is_the_class_dataclasses_makes(monkeypatch):
    recorder = startup_code._Exec({}, recording=True)
    monkeypatch.setattr(dataclasses, "exec", recorder, raising=False)
    compiled = _classes()
    assert recorder.misses > 0 and recorder.hits == 0
    table = dict(recorder.codes)

    hook = startup_code._Exec(table)
    monkeypatch.setattr(dataclasses, "exec", hook, raising=False)
    from_table = _classes()
    assert hook.misses == 0 and hook.hits == recorder.misses    # every text found, none compiled
    assert _behaviour(from_table) == _behaviour(compiled)
    assert _methods(from_table) == _methods(compiled)           # the same code, compared by content

    monkeypatch.delattr(dataclasses, "exec")
    assert _behaviour(_classes()) == _behaviour(compiled)       # and the same as without any table


def test_a_text_the_table_lacks_is_compiled_as_before(monkeypatch):
    hook = startup_code._Exec({"def __create_fn__():\n pass": compile("pass", "<string>", "exec")})
    monkeypatch.setattr(dataclasses, "exec", hook, raising=False)
    classes = _classes()
    assert hook.hits == 0 and hook.misses > 0
    assert len(hook.codes) == 1                                 # not recording: the table is left as it was
    monkeypatch.delattr(dataclasses, "exec")
    assert _behaviour(classes) == _behaviour(_classes())


_ORIGINAL_RE_COMPILE = startup_code.installed()[1].original if startup_code.installed()[1] else re._compiler.compile


@contextlib.contextmanager
def _nothing_installed():
    """No tables in this process for the duration (the test process may run with the checkout's own)."""
    hook, regex = startup_code.installed()
    startup_code.uninstall()
    try:
        yield
    finally:
        startup_code.uninstall()
        if hook:
            dataclasses.exec = hook
        if regex:
            re._compiler.compile = regex


def _table_file(path, payload: bytes, magic: bytes = startup_code.HEADER) -> str:
    path.write_bytes(magic + payload)
    return str(path)


@pytest.mark.parametrize("case, magic, payload, message", [
    ("another Python", b"\x00\x01\r\n", marshal.dumps({"dataclass": {}, "regex": {}}),
     "written by another Python, not used"),
    ("another regular-expression engine", importlib.util.MAGIC_NUMBER + b"\0\0\0\0",
     marshal.dumps({"dataclass": {}, "regex": {}}), "written by another Python, not used"),
    ("damaged", startup_code.HEADER, b"\xff\x00garbage", "not read: bad marshal data"),
    ("not a table", startup_code.HEADER, marshal.dumps(["def f(): pass"]),
     "not the tables of start-up code, not used"),
    ("text instead of code", startup_code.HEADER, marshal.dumps({"dataclass": {"x": "y"}, "regex": {}}),
     "not the tables of start-up code, not used"),
])
def test_a_table_that_does_not_fit_changes_nothing(tmp_path, caplog, case, magic, payload, message):
    path = _table_file(tmp_path / "table.marshal", payload, magic)
    with _nothing_installed():
        with caplog.at_level(logging.DEBUG, logger="executor.startup_code"):
            assert startup_code.install(path) is None
        assert startup_code.installed() == (None, None)
        assert "exec" not in dataclasses.__dict__ and re._compiler.compile is _ORIGINAL_RE_COMPILE
        assert caplog.messages and caplog.messages[-1].startswith(f"start-up code {path}")
        assert message in caplog.messages[-1]


def test_no_table_file_is_no_change(tmp_path):
    with _nothing_installed():
        assert startup_code.install(str(tmp_path / "absent.marshal")) is None
        assert startup_code.installed() == (None, None)


def _python(code: str) -> str:
    """Run `code` in a fresh interpreter (no class of kiln created yet) with this checkout first on sys.path."""
    proc = fresh_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_the_written_tables_hold_everything_a_build_compiles(tmp_path):
    """write() in one interpreter; in another, install() of that file, kiln's start-up set and then everything
    the floor preloads before a first RUN: not one dataclass text or regular expression compiled."""
    table = str(tmp_path / "table.marshal")
    texts, patterns = map(int, _python(
        f"from executor import startup_code; print(*startup_code.write({table!r}))").split())
    assert texts > 300                  # kiln has ~140 dataclasses, each with __init__, __repr__, __eq__...
    assert patterns > 100               # kiln's, the standard library's and requests' module-level patterns
    out = _python(f"""
        from executor import startup_code
        startup_code.uninstall()
        classes, regex = startup_code.install({table!r})
        import re, executor
        re.purge()
        executor.quiet_requests()       # what the package compiles as it loads (before this install)
        import executor.main, executor.engine.session
        start = classes.hits, regex.hits
        from executor import floor
        floor.preload()
        print(*start, classes.hits, classes.misses, regex.hits, regex.misses)
    """)
    start_classes, start_regex, hits, misses, regex_hits, regex_misses = map(int, out.split())
    assert misses == 0 and regex_misses == 0
    assert 200 < start_classes < hits   # texts shared by classes with the same fields count once in `texts`
    assert 50 < start_regex < regex_hits


# patterns like kiln's, the standard library's and urllib3's, with their flags
_PATTERNS = [
    (r"(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*)(?::(?P<tag>[\w][\w.-]{0,127}))?", 0),
    (r"^\s*(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*?)\s*$", re.MULTILINE),
    (r"(?i)^(?:[a-z][a-z0-9+.-]*):", 0),
    (rb"[\x00-\x1f\x7f]", 0),
    (r"caf\u00e9|\bword\b", re.IGNORECASE | re.UNICODE),
    (r"a{2,5}?(b|c)*d+$", re.ASCII | re.DOTALL | re.VERBOSE),
]
_SUBJECTS = ["busybox:1.36", "KEY = value  ", "HTTPS://x", "Café word", "aaabcbcdd", "\n", ""]


def _results(compiled) -> list:
    out = []
    for pattern in compiled:
        out.append((pattern.pattern, pattern.flags, pattern.groups, dict(pattern.groupindex)))
        for subject in _SUBJECTS:
            s = subject.encode() if isinstance(pattern.pattern, bytes) else subject
            m = pattern.search(s)
            out.append(m and (m.span(), m.groups(), m.groupdict()))
    return out


def test_a_pattern_from_the_table_is_the_pattern_re_makes():
    original = _ORIGINAL_RE_COMPILE
    recorder = startup_code._RegexCompile(original, {}, recording=True)
    compiled = [recorder(p, f) for p, f in _PATTERNS]
    assert recorder.misses == len(_PATTERNS) and len(recorder.programs) == len(_PATTERNS)
    table = marshal.loads(marshal.dumps(recorder.programs))      # as it comes back from the file

    from_table = startup_code._RegexCompile(original, table)
    again = [from_table(p, f) for p, f in _PATTERNS]
    assert from_table.hits == len(_PATTERNS) and from_table.misses == 0
    assert again == compiled                    # Pattern equality: the same program, flags and pattern
    assert _results(again) == _results(compiled) == _results([original(p, f) for p, f in _PATTERNS])


def test_a_pattern_the_table_lacks_or_a_debug_pattern_is_compiled_by_re(capsys):
    table = startup_code._RegexCompile(_ORIGINAL_RE_COMPILE, {}, recording=True)
    assert table("x+", 0) == _ORIGINAL_RE_COMPILE("x+", 0)
    assert table.misses == 1 and list(table.programs) == [("x+", 0)]
    table("y+", re.DEBUG)                       # re.DEBUG prints the program while compiling: never kept
    assert "MAX_REPEAT" in capsys.readouterr().out
    assert list(table.programs) == [("x+", 0)]


def test_a_program_serves_only_its_own_pattern_and_flags():
    programs = {("a", 0): startup_code._program("a", 0)}
    table = startup_code._RegexCompile(_ORIGINAL_RE_COMPILE, programs)
    assert table("a", re.IGNORECASE).match("A") and table.misses == 1
    assert table("a", 0).match("A") is None and table.hits == 1

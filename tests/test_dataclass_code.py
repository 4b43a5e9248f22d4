"""executor.dataclass_code: the compiled code of kiln's dataclasses, kept like byte code (issue 21's start-up).

A class made from the table must be the class `dataclasses` makes by itself; a table that does not fit (another
Python, a damaged file, a class changed since) must change nothing."""
from __future__ import annotations

import dataclasses
import importlib.util
import logging
import marshal
import os
import subprocess
import sys
import textwrap
from dataclasses import InitVar, dataclass, field

import pytest

from executor import dataclass_code

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    recorder = dataclass_code._Exec({}, recording=True)
    monkeypatch.setattr(dataclasses, "exec", recorder, raising=False)
    compiled = _classes()
    assert recorder.misses > 0 and recorder.hits == 0
    table = dict(recorder.codes)

    hook = dataclass_code._Exec(table)
    monkeypatch.setattr(dataclasses, "exec", hook, raising=False)
    from_table = _classes()
    assert hook.misses == 0 and hook.hits == recorder.misses    # every text found, none compiled
    assert _behaviour(from_table) == _behaviour(compiled)
    assert _methods(from_table) == _methods(compiled)           # the same code, compared by content

    monkeypatch.delattr(dataclasses, "exec")
    assert _behaviour(_classes()) == _behaviour(compiled)       # and the same as without any table


def test_a_text_the_table_lacks_is_compiled_as_before(monkeypatch):
    hook = dataclass_code._Exec({"def __create_fn__():\n pass": compile("pass", "<string>", "exec")})
    monkeypatch.setattr(dataclasses, "exec", hook, raising=False)
    classes = _classes()
    assert hook.hits == 0 and hook.misses > 0
    assert len(hook.codes) == 1                                 # not recording: the table is left as it was
    monkeypatch.delattr(dataclasses, "exec")
    assert _behaviour(classes) == _behaviour(_classes())


def _table_file(path, payload: bytes, magic: bytes = importlib.util.MAGIC_NUMBER) -> str:
    path.write_bytes(magic + payload)
    return str(path)


@pytest.mark.parametrize("case, magic, payload, message", [
    ("another Python", b"\x00\x01\r\n", marshal.dumps({}), "written by another Python, not used"),
    ("damaged", importlib.util.MAGIC_NUMBER, b"\xff\x00garbage", "not read: bad marshal data"),
    ("not a table", importlib.util.MAGIC_NUMBER, marshal.dumps(["def f(): pass"]),
     "not a table of code objects, not used"),
])
def test_a_table_that_does_not_fit_changes_nothing(tmp_path, caplog, case, magic, payload, message):
    path = _table_file(tmp_path / "table.marshal", payload, magic)
    before = dataclasses.__dict__.get("exec")
    dataclass_code.uninstall()
    try:
        with caplog.at_level(logging.DEBUG, logger="executor.dataclass_code"):
            assert dataclass_code.install(path) is None
        assert "exec" not in dataclasses.__dict__
        assert caplog.messages and caplog.messages[-1].startswith(f"dataclass code {path}")
        assert message in caplog.messages[-1]
    finally:
        if before is not None:
            dataclasses.exec = before


def test_no_table_file_is_no_change(tmp_path):
    before = dataclasses.__dict__.get("exec")
    dataclass_code.uninstall()
    try:
        assert dataclass_code.install(str(tmp_path / "absent.marshal")) is None
        assert "exec" not in dataclasses.__dict__
    finally:
        if before is not None:
            dataclasses.exec = before


def _python(code: str) -> str:
    """Run `code` in a fresh interpreter (no class of kiln created yet) with this checkout first on sys.path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {REPO!r})\n" + textwrap.dedent(code)],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_the_written_table_holds_every_class_a_build_creates(tmp_path):
    """write() in one interpreter; in another, install() of that file, kiln's start-up set and then everything
    the floor preloads before a first RUN: not one text compiled."""
    table = str(tmp_path / "table.marshal")
    written = int(_python(f"from executor import dataclass_code; print(dataclass_code.write({table!r}))"))
    assert written > 300                    # kiln has ~140 dataclasses, each with __init__, __repr__, __eq__...
    out = _python(f"""
        import dataclasses
        from executor import dataclass_code
        dataclass_code.uninstall()
        hook = dataclass_code.install({table!r})
        import executor.main, executor.engine.session
        start = hook.hits
        from executor import floor
        floor.preload()
        print(start, hook.hits, hook.misses)
    """)
    start, hits, misses = map(int, out.split())
    assert misses == 0
    assert 200 < start < hits           # texts shared by classes with the same fields count once in `written`

"""docs/errors.md lists every exception class of executor/ and snapshot/ (issue 12 item 6), and each row is
true: the class exists where the row says, the row's test exists, and that test asserts the row's message
(every `backticked` part of the "the user reads" cell appears in the test's source, decorators included).

A class is an exception class when a base of it is a builtin exception or another exception class of the
two packages (found with `ast`, nothing imported)."""
from __future__ import annotations

import ast
import builtins
import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "errors.md"
PACKAGES = ("executor", "snapshot")
MIN_PINNED = 12         # the longest pinned part of a row has at least this many characters


@dataclass(frozen=True)
class Row:
    name: str
    module: str      # file that defines the class, as written in the row
    reads: str       # the "the user reads" cell
    test: str        # file::[Class::]function


def exception_classes(root: Path = REPO) -> dict[str, str]:
    """{class name: defining file} for every exception class of the packages (their names must be unique)."""
    classes: list[tuple[str, str, list[str]]] = []      # (file, name, base names)
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            rel = str(path.relative_to(root))
            classes += [(rel, node.name, [ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases])
                        for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    builtin_exceptions = {n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)}
    exceptions: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for rel, name, bases in classes:
            if (exceptions.get(name) != rel and any(b in builtin_exceptions or b in exceptions for b in bases)):
                assert name not in exceptions, \
                    f"two exception classes named {name}: {exceptions[name]} and {rel}; docs/errors.md needs one"
                exceptions[name] = rel
                changed = True
    return exceptions


def rows(text: str) -> list[Row]:
    """The table's rows: lines `| `Name` | `path.py` | reads | what to do | `tests/...::test` |`."""
    out = []
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert len(cells) == 5, f"docs/errors.md: a row needs 5 cells: {line}"
        name, module, reads, _todo, test = cells
        out.append(Row(name.strip("`"), module.strip("`"), reads, test.strip("`")))
    return out


def pinned(reads: str) -> list[str]:
    return re.findall(r"`([^`]+)`", reads)


def source_of_test(test: str, root: Path = REPO) -> str | None:
    """The source of `file::[Class::]function` with its decorators, or None when there is no such test."""
    path, _, qualname = test.partition("::")
    file = root / path
    if not path.startswith("tests/") or not file.is_file() or not qualname:
        return None
    text = file.read_text(encoding="utf-8")
    scope: list[ast.stmt] = ast.parse(text).body
    parts = qualname.split("::")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        kinds = (ast.FunctionDef, ast.AsyncFunctionDef) if last else (ast.ClassDef,)
        node = next((n for n in scope if isinstance(n, kinds) and n.name == part), None)
        if node is None:
            return None
        if last:
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            return "".join(text.splitlines(keepends=True)[start - 1:node.end_lineno])
        scope = node.body
    return None


def problems(text: str, root: Path = REPO) -> list[str]:
    """Every way the table and the code disagree, one line each."""
    found = exception_classes(root)
    table = rows(text)
    named = [r.name for r in table]
    out = [f"{name} ({found[name]}) is not in docs/errors.md" for name in sorted(set(found) - set(named))]
    out += [f"docs/errors.md lists {name}, which is no exception class of {'/'.join(PACKAGES)}"
            for name in sorted(set(named) - set(found))]
    out += [f"docs/errors.md lists {name} twice" for name in sorted({n for n in named if named.count(n) > 1})]
    for row in table:
        if row.name in found and found[row.name] != row.module:
            out.append(f"{row.name}: defined in {found[row.name]}, the row says {row.module}")
        surfaces = re.search(r"surfaces as (\w+)", row.reads)
        if surfaces and surfaces.group(1) not in named and surfaces.group(1) != "a":
            out.append(f"{row.name}: surfaces as {surfaces.group(1)}, which has no row")
        parts = pinned(row.reads)
        if not parts or max(map(len, parts)) < MIN_PINNED:
            out.append(f"{row.name}: no `pinned` part of its message of {MIN_PINNED}+ characters: {row.reads}")
            continue
        source = source_of_test(row.test, root)
        if source is None:
            out.append(f"{row.name}: its test {row.test} does not exist")
            continue
        out += [f"{row.name}: {row.test} does not contain {part!r}" for part in parts if part not in source]
    return out


def test_errors_doc_lists_every_error_class_with_a_test_of_its_message() -> None:
    assert problems(DOC.read_text(encoding="utf-8")) == []


def test_the_check_catches_each_kind_of_drift(tmp_path: Path) -> None:
    """The check itself, on a made-up tree: an undocumented class, a documented class that is gone, a test
    that does not exist, a test that does not assert the message, a row in the wrong file."""
    (tmp_path / "executor").mkdir()
    (tmp_path / "snapshot").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "executor" / "a.py").write_text(
        "class AError(Exception):\n    pass\n\nclass BError(AError):\n    pass\n\nclass Plain:\n    pass\n")
    (tmp_path / "snapshot" / "b.py").write_text("class Hidden(ValueError):\n    pass\n")
    (tmp_path / "tests" / "test_a.py").write_text(
        "class TestA:\n    def test_a(self):\n        assert 'a went wrong: here' in ''\n\n"
        "@mark('b broke at line 3')\ndef test_b():\n    pass\n")
    doc = ("| `AError` | `executor/a.py` | `a went wrong: here` | fix | `tests/test_a.py::TestA::test_a` |\n"
           "| `BError` | `executor/b.py` | B reads `b broke at line 3` | x | `tests/test_a.py::test_b` |\n"
           "| `Gone` | `executor/a.py` | `nothing at all here` | x | `tests/test_a.py::test_b` |\n")
    assert sorted(exception_classes(tmp_path)) == ["AError", "BError", "Hidden"]
    assert problems(doc, tmp_path) == [
        "Hidden (snapshot/b.py) is not in docs/errors.md",
        "docs/errors.md lists Gone, which is no exception class of executor/snapshot",
        "BError: defined in executor/a.py, the row says executor/b.py",
        "Gone: tests/test_a.py::test_b does not contain 'nothing at all here'",
    ]
    doc = ("| `AError` | `executor/a.py` | `a went wrong: there` | fix | `tests/test_a.py::test_a` |\n"
           "| `BError` | `executor/a.py` | internal: surfaces as Nothing, `b broke` | x | `tests/test_a.py::test_b` |\n"
           "| `Hidden` | `snapshot/b.py` | `b broke at line 3` | x | `tests/test_a.py::TestA::test_b` |\n")
    assert problems(doc, tmp_path) == [
        "AError: its test tests/test_a.py::test_a does not exist",
        "BError: surfaces as Nothing, which has no row",
        "BError: no `pinned` part of its message of 12+ characters: internal: surfaces as Nothing, `b broke`",
        "Hidden: its test tests/test_a.py::TestA::test_b does not exist",
    ]

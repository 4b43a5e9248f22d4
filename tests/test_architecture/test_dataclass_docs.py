"""Every dataclass of executor/ and snapshot/ has a docstring of its own.

Two reasons. A record says what it is and who makes and reads it, where its fields alone do not. And start-up
(issue 21): Python 3.11's `dataclasses` gives a class without a docstring one made from
`inspect.signature(cls)` (`ClassName(field: 'type', ...)`), which builds a Signature of every field at import;
with a docstring of its own the class skips that. Start-up imports ~90 dataclasses.

`test_every_dataclass_in_the_source_has_a_docstring` reads the source with `ast` (nothing imported, so modules
that start-up never loads count too); `test_no_imported_dataclass_has_a_generated_docstring` imports every
module as `executor.floor.preload` does, in a fresh interpreter, and catches what the source scan cannot
recognise (a dataclass made under another name)."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("executor", "snapshot")
# Measured with callgrind (valgrind --tool=callgrind, instructions of a fresh `python -I -S` importing
# `executor.main, executor.engine.session` from byte-compiled trees), before and after the 55 dataclasses that
# start-up imports without a docstring got one: 937.6M -> 922.9M instructions (-1.6 %), ~267k a class; CPU time
# of the same import A/B, interleaved, 25 rounds each way on a loaded machine: 216.5 -> 211.1 ms and
# 218.2 -> 212.4 ms median, ~0.1 ms a class.
WHY = ("Python 3.11's dataclasses gives a class without a docstring one built from inspect.signature() at "
       "import: ~267k instructions (~0.1 ms) per class on every start-up of kiln (issue 21; measured: 937.6M -> "
       "922.9M instructions importing the start-up set once its 55 such classes had one). Give each one or two "
       "lines saying what the record is and who makes or reads it.")


def _is_dataclass_decorator(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
    return name == "dataclass"


def dataclasses_in_source(root: Path = REPO) -> dict[str, bool]:
    """{"path:line Class": has its own docstring} for every class decorated with `dataclass` in the packages,
    nested and function-local ones included."""
    found: dict[str, bool] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and any(map(_is_dataclass_decorator, node.decorator_list)):
                    found[f"{path.relative_to(root)}:{node.lineno} {node.name}"] = ast.get_docstring(node) is not None
    return found


def _message(missing: list[str]) -> str:
    return (f"{len(missing)} dataclass(es) without a docstring of their own: " + ", ".join(missing)
            + ". Why it matters: " + WHY)


def test_every_dataclass_in_the_source_has_a_docstring():
    found = dataclasses_in_source()
    # the scan sees the records everyone knows (it cannot pass by finding nothing)
    assert any(k.startswith("executor/image/descriptor.py:") and k.endswith(" Descriptor") for k in found), found
    assert any(k.startswith("snapshot/index.py:") and k.endswith(" Entry") for k in found), found
    assert len(found) > 100, f"only {len(found)} dataclasses found in {PACKAGES}: is the scan broken?"
    missing = sorted(k for k, documented in found.items() if not documented)
    assert not missing, _message(missing)


_IMPORTED = """
import dataclasses, inspect, json, sys
import executor.floor
failed = executor.floor.preload()
out = {"failed": failed, "classes": []}
for name, module in sorted(sys.modules.items()):
    if name.split(".")[0] not in ("executor", "snapshot") or module is None:
        continue
    for value in vars(module).values():
        if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == name:
            doc = value.__doc__ or ""
            try:
                where = f"{inspect.getsourcefile(value)}:{inspect.getsourcelines(value)[1]}"
            except (OSError, TypeError):
                where = name
            out["classes"].append([where, value.__qualname__, doc.startswith(value.__name__ + "(")])
print(json.dumps(out))
"""


def test_no_imported_dataclass_has_a_generated_docstring():
    run = subprocess.run([sys.executable, "-c", _IMPORTED], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.splitlines()[-1])
    classes = {f"{where.replace(str(REPO) + '/', '')} {name}": generated for where, name, generated in out["classes"]}
    assert len(classes) > 90, f"only {len(classes)} dataclasses imported (preload failed for {out['failed']})"
    missing = sorted(k for k, generated in classes.items() if generated)
    assert not missing, _message(missing)


def test_the_scan_finds_every_spelling_of_a_dataclass(tmp_path):
    (tmp_path / "executor").mkdir()
    (tmp_path / "snapshot").mkdir()
    (tmp_path / "executor" / "a.py").write_text(
        "import dataclasses\nfrom dataclasses import dataclass\n\n"
        "@dataclass\nclass Bare:\n    x: int\n\n"
        "@dataclass(frozen=True)\nclass Called:\n    x: int\n\n"
        "@dataclasses.dataclass(slots=True)\nclass Qualified:\n    x: int\n\n"
        "class Outer:\n    @dataclass\n    class Nested:\n        x: int\n\n"
        "def made():\n    @dataclass\n    class Local:\n        x: int\n\n"
        "@dataclass\nclass Documented:\n    \"\"\"Says what it is.\"\"\"\n    x: int\n\n"
        "class NotADataclass:\n    x: int\n")
    found = dataclasses_in_source(tmp_path)
    assert found == {"executor/a.py:5 Bare": False, "executor/a.py:9 Called": False,
                     "executor/a.py:13 Qualified": False, "executor/a.py:18 Nested": False,
                     "executor/a.py:23 Local": False, "executor/a.py:27 Documented": True}
    message = _message(sorted(k for k, documented in found.items() if not documented))
    assert message.startswith("5 dataclass(es) without a docstring of their own: executor/a.py:13 Qualified, ")
    assert "inspect.signature()" in message and "937.6M -> 922.9M instructions" in message

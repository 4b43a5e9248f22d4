"""The code that `@dataclass` generates for kiln's classes, compiled once when the executor image is made.

`dataclasses` writes each class's `__init__`, `__repr__`, `__eq__`... as source text and compiles it with `exec`
every time the class is created, that is on every start of the executor: for the ~100 classes a build imports
before its first step that is ~400 compilations, a quarter of kiln's own start-up (issue 21,
`bench/startup_instructions.py`). The generated text depends only on the class's fields, so its compiled code
can be kept like byte code: `write()` (run by scripts/executor-image/assemble.sh, beside compileall) imports
every kiln module, records each text with its code object and writes them to one marshal file under
`executor/__pycache__/`; `install()` (run when the `executor` package loads) reads that file and gives the
`dataclasses` module an `exec` that looks the text up before compiling it.

Safe by construction: the text is the key, so a text the file does not hold (a class changed since, another
Python's dataclasses) is compiled as before; a file written by another interpreter version (its magic number
differs) or unreadable is ignored. The file is code, like the .pyc files beside it, and as trusted.
"""
from __future__ import annotations

import builtins
import importlib.util
import logging
import marshal
import os
import sys
from types import CodeType
from typing import Any

log = logging.getLogger(__name__)

_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__",
                     f"dataclass-code.{sys.implementation.cache_tag}.marshal")


class _Exec:
    """The `exec` given to the dataclasses module: a text it holds runs its compiled code; any other text is
    compiled as builtins.exec would (and recorded when `recording`)."""

    def __init__(self, codes: dict[str, CodeType], recording: bool = False) -> None:
        self.codes = codes
        self.recording = recording
        self.hits = 0
        self.misses = 0

    def __call__(self, source: Any, globals: dict[str, Any] | None = None,
                 locals: dict[str, Any] | None = None) -> None:
        if isinstance(source, str):
            code = self.codes.get(source)
            if code is None:
                self.misses += 1
                # exec(str) from dataclasses (no __future__ flags there) compiles as "<string>": the same here
                code = compile(source, "<string>", "exec", dont_inherit=True)
                if self.recording:
                    self.codes[source] = code
            else:
                self.hits += 1
            source = code
        builtins.exec(source, globals, locals)


def _read(path: str) -> dict[str, CodeType]:
    try:
        with open(path, "rb") as f:
            magic = f.read(len(importlib.util.MAGIC_NUMBER))
            if magic != importlib.util.MAGIC_NUMBER:
                log.debug("dataclass code %s: written by another Python, not used", path)
                return {}
            codes = marshal.loads(f.read())   # one read: marshal.load(f) reads object by object
    except FileNotFoundError:
        return {}
    except (OSError, EOFError, ValueError, TypeError) as e:
        log.debug("dataclass code %s not read: %s", path, e)
        return {}
    if not isinstance(codes, dict) or not all(isinstance(k, str) and isinstance(v, CodeType)
                                              for k, v in codes.items()):
        log.debug("dataclass code %s: not a table of code objects, not used", path)
        return {}
    return codes


def install(path: str = _FILE) -> _Exec | None:
    """Give `dataclasses` the table in `path`; None (nothing changed) when there is no usable table."""
    import dataclasses

    current = dataclasses.__dict__.get("exec")
    if isinstance(current, _Exec):
        return current
    codes = _read(path)
    if not codes:
        return None
    hook = _Exec(codes)
    dataclasses.exec = hook     # a module global shadows the builtin for dataclasses' own code only
    return hook


def uninstall() -> None:
    import dataclasses

    if isinstance(dataclasses.__dict__.get("exec"), _Exec):
        del dataclasses.exec


def write(path: str = _FILE) -> int:
    """Import every kiln module with a recording `exec` in `dataclasses` and write what it compiled to `path`
    (atomically); returns the number of texts written. Must run in a fresh interpreter: a class created
    before this call is not recorded."""
    import dataclasses

    uninstall()
    hook = _Exec({}, recording=True)
    dataclasses.exec = hook
    try:
        from executor import floor     # after the hook: floor's own classes are recorded too

        failed = floor.preload()
    finally:
        uninstall()
    if failed:
        log.warning("dataclass code: not imported (their classes are not in the table): %s", ", ".join(failed))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(importlib.util.MAGIC_NUMBER)
        marshal.dump(hook.codes, f)
    os.replace(tmp, path)
    return len(hook.codes)

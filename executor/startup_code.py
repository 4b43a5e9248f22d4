"""What start-up would otherwise compile, compiled once when the executor image is made: the methods `@dataclass`
generates for kiln's classes and the programs of the regular expressions that kiln and its dependencies compile.

Both are compiled on every start of a Python process: `dataclasses` writes each class's `__init__`, `__repr__`,
`__eq__`... as source text and compiles it (~400 compilations for the classes a build imports before its first
step), and `re` parses each pattern into a program for its matching engine. Together that was over a third of
the executor's start-up (issue 21, `bench/startup_instructions.py`). What they produce depends only on their
input (a method's text; a pattern and its flags), so it can be kept like byte code: `write()` (run by
scripts/executor-image/assemble.sh, beside compileall) imports every kiln module with both compilers recording,
and writes one marshal file under `executor/__pycache__/`; `install()` (run when the `executor` package loads)
reads it and has both look their input up before compiling:

* `dataclasses` gets a module-level `exec` that runs the code object kept for a text;
* `re._compiler.compile` is wrapped: a kept program goes straight to `_sre.compile`, as `re` itself would pass it.

Safe by construction: the input is the key, so an input the file does not hold (a class changed since, a
pattern made at run time) is compiled as before; a file written by another interpreter (its magic numbers
differ) or unreadable is ignored; `write()` keeps a regular expression's program only when the pattern it
makes equals (same program, flags and groups) the one `re` makes. The file is code, like the .pyc files beside
it, and as trusted.
"""
from __future__ import annotations

import _sre
import builtins
import importlib.util
import logging
import marshal
import os
import re
import sys
from collections.abc import Callable
from types import CodeType
from typing import Any

log = logging.getLogger(__name__)

#: what the file begins with: the byte code's magic number and the regular-expression engine's (a program is
#: the engine's own instruction list); a file that begins otherwise was written by another Python
HEADER = importlib.util.MAGIC_NUMBER + _sre.MAGIC.to_bytes(4, "little")

_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__",
                     f"startup-code.{sys.implementation.cache_tag}.marshal")

#: a regular expression's program: the arguments `re._compiler.compile` gives `_sre.compile` after the pattern
Program = tuple[int, list[int], int, dict[str, int], tuple[Any, ...]]


class _Exec:
    """The `exec` given to the dataclasses module: a text it holds runs its compiled code; any other text is
    compiled as builtins.exec would (and kept when `recording`)."""

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


class _RegexCompile:
    """Stands in for `re._compiler.compile`: a (pattern, flags) it holds becomes a pattern from its kept program;
    anything else goes to the original (and is kept, when `recording`, if its program makes an equal pattern)."""

    def __init__(self, original: Callable[..., Any], programs: dict[tuple[Any, int], Program],
                 recording: bool = False) -> None:
        self.original = original
        self.programs = programs
        self.recording = recording
        self.hits = 0
        self.misses = 0

    def __call__(self, p: Any, flags: int = 0) -> Any:
        if not isinstance(p, (str, bytes)):
            return self.original(p, flags)
        key = (p, int(flags))
        program = self.programs.get(key)
        if program is not None:
            self.hits += 1
            return _sre.compile(p, *program)
        self.misses += 1
        compiled = self.original(p, flags)
        if self.recording and not flags & 128:     # re.DEBUG prints while compiling: never kept
            program = _program(p, int(flags))
            if _sre.compile(p, *program) == compiled:   # Pattern equality compares the program itself
                self.programs[key] = program
        return compiled


def _program(p: str | bytes, flags: int) -> Program:
    """The arguments `re._compiler.compile` passes to `_sre.compile` for a string pattern (Python 3.11-3.13)."""
    from re import _compiler, _parser

    parsed = _parser.parse(p, flags)
    code = [int(c) for c in _compiler._code(parsed, flags)]    # opcodes are int subclasses: plain ints
    groupindex = dict(parsed.state.groupdict)
    indexgroup: list[str | None] = [None] * parsed.state.groups
    for name, i in groupindex.items():
        indexgroup[i] = name
    return int(flags | parsed.state.flags), code, parsed.state.groups - 1, groupindex, tuple(indexgroup)


def _read(path: str) -> dict[str, dict[Any, Any]]:
    try:
        with open(path, "rb") as f:
            data = f.read()         # then loads: marshal.load(f) reads the file object by object
    except FileNotFoundError:
        return {}
    except OSError as e:
        log.debug("start-up code %s not read: %s", path, e)
        return {}
    if not data.startswith(HEADER):
        log.debug("start-up code %s: written by another Python, not used", path)
        return {}
    try:
        tables = marshal.loads(memoryview(data)[len(HEADER):])
    except (EOFError, ValueError, TypeError) as e:
        log.debug("start-up code %s not read: %s", path, e)
        return {}
    if not (isinstance(tables, dict) and isinstance(tables.get("dataclass"), dict)
            and isinstance(tables.get("regex"), dict)
            and all(isinstance(v, CodeType) for v in tables["dataclass"].values())):
        log.debug("start-up code %s: not the tables of start-up code, not used", path)
        return {}
    return tables


def installed() -> tuple[_Exec | None, _RegexCompile | None]:
    import dataclasses
    from re import _compiler

    hook = dataclasses.__dict__.get("exec")
    regex = _compiler.compile
    return (hook if isinstance(hook, _Exec) else None, regex if isinstance(regex, _RegexCompile) else None)


def install(path: str = _FILE) -> tuple[_Exec, _RegexCompile] | None:
    """Give `dataclasses` and `re` the tables in `path`; None (nothing changed) when there are no usable tables."""
    import dataclasses
    from re import _compiler

    current = installed()
    if current[0] and current[1]:
        return current[0], current[1]
    tables = _read(path)
    if not tables:
        return None
    uninstall()
    hook = _Exec(tables["dataclass"])
    regex = _RegexCompile(_compiler.compile, tables["regex"])
    dataclasses.exec = hook     # a module global shadows the builtin for dataclasses' own code only
    _compiler.compile = regex
    return hook, regex


def uninstall() -> None:
    import dataclasses
    from re import _compiler

    hook, regex = installed()
    if hook:
        del dataclasses.exec
    if regex:
        _compiler.compile = regex.original


def write(path: str = _FILE) -> tuple[int, int]:
    """Import every kiln module with both compilers recording and write what they compiled to `path`
    (atomically); returns how many dataclass texts and regular expressions were written. Run it in a fresh
    interpreter: what was compiled before the call is not recorded."""
    import dataclasses
    from re import _compiler

    uninstall()
    hook = _Exec({}, recording=True)
    regex = _RegexCompile(_compiler.compile, {}, recording=True)
    dataclasses.exec = hook
    _compiler.compile = regex
    try:
        import executor
        from executor import floor     # after the hooks: floor's own classes are recorded too

        re.purge()
        executor.quiet_requests()      # its patterns were compiled when the package loaded, before the hooks
        failed = floor.preload()
    finally:
        uninstall()
    if failed:
        log.warning("start-up code: not imported (their code is not in the tables): %s", ", ".join(failed))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(HEADER)
        marshal.dump({"dataclass": hook.codes, "regex": regex.programs}, f)
    os.replace(tmp, path)
    return len(hook.codes), len(regex.programs)

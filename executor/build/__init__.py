"""The build: contexts, arguments, stages, the build loop and its outputs.

`run(options)` and `warm(options)` are what `executor` and `warmer` call; they import lazily so that the
command modules can import `executor.build.args` and `executor.build.history` without a cycle.
"""
from __future__ import annotations

from typing import Any


def run(options: Any) -> int:
    from executor.build.session import run as _run
    return _run(options)


def warm(options: Any) -> int:
    from executor.build.session import warm as _warm
    return _warm(options)

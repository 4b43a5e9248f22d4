"""Running a RUN: user and environment, namespaces and chroot when the root is not ``/``,
process-tree teardown, PID 1 duties (see ``process``, ``users``, ``pid1``).

``pid1`` (the build's supervision, which every build needs) loads with the package; the rest loads on first
use of its names, so a build without RUN does not import the process machinery at start-up (issue 21)."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from executor.run.errors import RunError, UserError
from executor.run.pid1 import BuildCancelled, supervise

if TYPE_CHECKING:
    from executor.run.process import Mount, RunResult, RunSpec, run
    from executor.run.users import ExecUser, lookup_user

_LAZY = {"Mount": "process", "RunResult": "process", "RunSpec": "process", "run": "process",
         "ExecUser": "users", "lookup_user": "users"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"executor.run.{module}"), name)


__all__ = [
    "BuildCancelled",
    "ExecUser",
    "Mount",
    "RunError",
    "RunResult",
    "RunSpec",
    "UserError",
    "lookup_user",
    "run",
    "supervise",
]

"""Running a RUN: user and environment, namespaces and chroot when the root is not ``/``,
process-tree teardown, PID 1 duties (see ``process``, ``users``, ``pid1``)."""

from executor.run.errors import RunError, UserError
from executor.run.pid1 import BuildCancelled, supervise
from executor.run.process import Mount, RunResult, RunSpec, run
from executor.run.users import ExecUser, lookup_user

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

"""Errors raised while running a RUN command."""

from __future__ import annotations

import signal


class RunError(Exception):
    """A RUN command that could not be started or did not succeed.

    ``exit_code`` is the command's exit status when it exited, ``signal`` the signal number when it was
    killed; both are None when the command could not be started at all.
    """

    def __init__(self, message: str, exit_code: int | None = None, signal: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.signal = signal


class UserError(RunError):
    """A USER value that cannot be resolved inside the image."""


def describe_command(argv: list[str]) -> str:
    return " ".join(argv)


def failed(argv: list[str], exit_code: int | None = None, signum: int | None = None) -> RunError:
    """The docker-style error for a command that ran and failed."""
    cmd = describe_command(argv)
    if signum is not None:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return RunError(f"The command '{cmd}' was killed by signal {signum} ({name})", signal=signum)
    return RunError(f"The command '{cmd}' returned a non-zero code: {exit_code}", exit_code=exit_code)


def not_started(argv: list[str], reason: str) -> RunError:
    return RunError(f"The command '{describe_command(argv)}' could not be started: {reason}")

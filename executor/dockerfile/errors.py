"""The one error type of the Dockerfile front end: a message tied to a file and a line."""
from __future__ import annotations


class DockerfileError(Exception):
    """A Dockerfile that cannot be parsed or is inconsistent.

    ``str(err)`` reads ``Dockerfile:12: unknown instruction: RUNN``; when no line applies
    (``line`` is None, e.g. an unknown ``--target``) it reads ``Dockerfile: message``.
    """

    def __init__(self, file: str, line: int | None, message: str, end_line: int | None = None):
        self.file = file
        self.line = line
        self.end_line = end_line if end_line is not None else line
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}: {self.message}"


class ExpansionError(ValueError):
    """Word expansion failed (bad substitution, ``${v:?msg}`` on an unset variable, ...).

    Raised by :mod:`executor.dockerfile.shell`, which knows nothing of files and lines;
    :meth:`executor.dockerfile.instructions.Instruction.error` turns it into a
    :class:`DockerfileError` naming the instruction's location.
    """

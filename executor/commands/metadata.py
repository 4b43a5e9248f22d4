"""Helpers shared by the metadata-only instructions."""
from __future__ import annotations

DEFAULT_SHELL = ["/bin/sh", "-c"]


def with_shell(shell: list[str] | None, command: list[str]) -> list[str]:
    """Shell form: the image's SHELL (or /bin/sh -c) plus the command line joined by spaces."""
    return list(shell or DEFAULT_SHELL) + [" ".join(command)]

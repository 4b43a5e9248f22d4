"""ADD: COPY plus local archives unpacked and URLs downloaded (see executor.commands.copying.files)."""
from __future__ import annotations

from executor.commands.base import CommandContext, Outcome
from executor.commands.copy import copy_files
from executor.dockerfile.instructions import AddInstruction


def execute(inst: AddInstruction, ctx: CommandContext) -> Outcome:
    return copy_files(inst, ctx, is_add=True)

"""SHELL: the shell that shell-form RUN, CMD and ENTRYPOINT use."""
from __future__ import annotations

from executor.dockerfile import history
from executor.commands.base import CommandContext, Outcome
from executor.dockerfile.instructions import ShellInstruction

TOUCHES_ROOT = False   # config and history only: no file of the root is read or written


def execute(inst: ShellInstruction, ctx: CommandContext) -> Outcome:
    ctx.image.config.shell = list(inst.shell)
    return Outcome(created_by=history.shell(inst.shell))

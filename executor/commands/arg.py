"""ARG: declare build arguments in the stage's scope (defaults expanded with what is in scope so far)."""
from __future__ import annotations

from executor.dockerfile import history
from executor.commands.base import CommandContext, Outcome
from executor.dockerfile.instructions import ArgInstruction

TOUCHES_ROOT = False   # config and history only: no file of the root is read or written


def execute(inst: ArgInstruction, ctx: CommandContext) -> Outcome:
    shown: list[tuple[str, str | None]] = []
    for arg in inst.args:
        default = inst.expand_word(ctx.expand, arg.default) if arg.default is not None else None
        shown.append((arg.key, ctx.args.declare(arg.key, default)))
    return Outcome(created_by=history.arg(shown))

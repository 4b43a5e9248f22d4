"""USER: the user later RUN, CMD and ENTRYPOINT run as."""
from __future__ import annotations

from executor.commands.base import CommandContext, Outcome
from executor.dockerfile.instructions import UserInstruction

TOUCHES_ROOT = False   # config and history only: no file of the root is read or written


def execute(inst: UserInstruction, ctx: CommandContext) -> Outcome:
    user = ctx.expanded(inst).user
    ctx.image.config.user = user
    return Outcome(created_by=f"USER {user}")

"""ENV: set variables in the image config; every pair sees the environment from before the line."""
from __future__ import annotations

from executor.dockerfile import history
from executor.commands.base import CommandContext, Outcome
from executor.dockerfile.instructions import EnvInstruction

TOUCHES_ROOT = False   # config and history only: no file of the root is read or written


def execute(inst: EnvInstruction, ctx: CommandContext) -> Outcome:
    pairs = [(p.key, p.value) for p in ctx.expanded(inst).pairs]
    for key, value in pairs:
        ctx.image.config.set_env(key, value)
        ctx.args.env_set(key)
    return Outcome(created_by=history.key_values("ENV", pairs))

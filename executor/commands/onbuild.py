"""ONBUILD: stored in the config; run when the image is used as a base. No history entry (as BuildKit)."""
from __future__ import annotations

from executor.commands.base import CommandContext, Outcome
from executor.dockerfile.instructions import OnbuildInstruction

TOUCHES_ROOT = False   # config and history only: no file of the root is read or written


def execute(inst: OnbuildInstruction, ctx: CommandContext) -> Outcome:
    ctx.image.config.on_build = (ctx.image.config.on_build or []) + [inst.expression]
    return Outcome()

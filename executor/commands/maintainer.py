"""MAINTAINER: the image's author."""
from __future__ import annotations

from executor.commands.base import CommandContext, Outcome
from executor.dockerfile.instructions import MaintainerInstruction

TOUCHES_ROOT = False   # config and history only: no file of the root is read or written


def execute(inst: MaintainerInstruction, ctx: CommandContext) -> Outcome:
    ctx.image.config.author = inst.maintainer
    return Outcome(created_by=f"MAINTAINER {inst.maintainer}")

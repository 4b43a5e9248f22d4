"""LABEL: add labels to the image config."""
from __future__ import annotations

from executor.dockerfile import history
from executor.commands.base import CommandContext, Outcome
from executor.dockerfile.instructions import LabelInstruction

TOUCHES_ROOT = False   # config and history only: no file of the root is read or written


def execute(inst: LabelInstruction, ctx: CommandContext) -> Outcome:
    pairs = [(p.key, p.value) for p in ctx.expanded(inst).pairs]
    labels = ctx.image.config.labels
    labels.update(pairs)
    ctx.image.config.labels = labels
    return Outcome(created_by=history.key_values("LABEL", pairs))

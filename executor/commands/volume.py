"""VOLUME: mount points recorded in the config. Like BuildKit, nothing is created in the filesystem."""
from __future__ import annotations

from executor.dockerfile import history
from executor.commands.base import CommandContext, Outcome
from executor.dockerfile.instructions import VolumeInstruction

TOUCHES_ROOT = False   # config and history only: no file of the root is read or written


def execute(inst: VolumeInstruction, ctx: CommandContext) -> Outcome:
    volumes = ctx.expanded(inst).volumes
    if any(v == "" for v in volumes):
        raise inst.error("VOLUME specified can not be an empty string")
    ctx.image.config.volumes = sorted(set(ctx.image.config.volumes or []) | set(volumes))
    return Outcome(created_by=history.volume(volumes))

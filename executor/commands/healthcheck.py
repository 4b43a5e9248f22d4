"""HEALTHCHECK: the container's health test (NONE disables an inherited one)."""
from __future__ import annotations

from executor.dockerfile import history
from executor.commands.base import CommandContext, Outcome
from executor.dockerfile.instructions import HealthcheckInstruction
from executor.image import Healthcheck

TOUCHES_ROOT = False   # config and history only: no file of the root is read or written


def execute(inst: HealthcheckInstruction, ctx: CommandContext) -> Outcome:
    check = Healthcheck(tuple(inst.test), inst.interval, inst.timeout, inst.start_period, inst.start_interval,
                        inst.retries)
    ctx.image.config.healthcheck = check
    return Outcome(created_by=history.healthcheck(list(inst.test), inst.interval, inst.timeout,
                                                  inst.start_period, inst.start_interval, inst.retries))

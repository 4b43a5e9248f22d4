"""STOPSIGNAL: the signal that stops the container."""
from __future__ import annotations

import signal

from executor.commands.base import CommandContext, Outcome
from executor.dockerfile.instructions import StopSignalInstruction

TOUCHES_ROOT = False   # config and history only: no file of the root is read or written


def valid_signal(value: str) -> bool:
    """docker's signal.ParseSignal: a number, or a name with or without SIG, or SIGRTMIN+n."""
    if value.isdigit():
        return 0 < int(value) < 65
    name = value.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name.startswith("SIGRTMIN+") or name.startswith("SIGRTMAX-"):
        return name[9:].isdigit()
    return name in signal.Signals.__members__ or name in ("SIGRTMIN", "SIGRTMAX")


def execute(inst: StopSignalInstruction, ctx: CommandContext) -> Outcome:
    value = ctx.expanded(inst).signal
    if not valid_signal(value):
        raise inst.error(f"STOPSIGNAL {value}: invalid signal")
    ctx.image.config.stop_signal = value
    return Outcome(created_by=f"STOPSIGNAL {value}")

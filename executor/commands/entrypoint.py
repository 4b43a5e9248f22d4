"""ENTRYPOINT: the entry point; an inherited CMD is cleared unless this stage set one."""
from __future__ import annotations

from executor.dockerfile import history
from executor.commands.base import CommandContext, Outcome
from executor.commands.metadata import with_shell
from executor.dockerfile.instructions import EntrypointInstruction

TOUCHES_ROOT = False   # config and history only: no file of the root is read or written


def execute(inst: EntrypointInstruction, ctx: CommandContext) -> Outcome:
    if inst.command is None:
        args: list[str] | None = None
    elif inst.prepend_shell:
        args = with_shell(ctx.image.config.shell, inst.command)
    else:
        args = list(inst.command)
    ctx.image.config.entrypoint = args
    if not ctx.cmd_set:
        ctx.image.config.cmd = None
    return Outcome(created_by=history.exec_form("ENTRYPOINT", args or []))

"""CMD: the default command (shell form wrapped in the image's shell)."""
from __future__ import annotations

from executor.dockerfile import history
from executor.commands.base import CommandContext, Outcome
from executor.commands.metadata import with_shell
from executor.dockerfile.instructions import CmdInstruction

TOUCHES_ROOT = False   # config and history only: no file of the root is read or written


def execute(inst: CmdInstruction, ctx: CommandContext) -> Outcome:
    args = with_shell(ctx.image.config.shell, inst.command) if inst.prepend_shell else list(inst.command)
    ctx.image.config.cmd = args
    ctx.image.config.args_escaped = True   # as BuildKit sets it (meaningful on Windows only)
    ctx.cmd_set = True
    return Outcome(created_by=history.exec_form("CMD", args))

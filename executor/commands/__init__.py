"""One module per Dockerfile instruction, each with `execute(instruction, ctx) -> Outcome`."""
from __future__ import annotations

from importlib import import_module
from types import ModuleType

from executor.dockerfile import instructions as ins

_MODULES: dict[type, str] = {
    ins.RunInstruction: "run", ins.CopyInstruction: "copy", ins.AddInstruction: "add",
    ins.EnvInstruction: "env", ins.LabelInstruction: "label", ins.ArgInstruction: "arg",
    ins.ExposeInstruction: "expose", ins.VolumeInstruction: "volume", ins.UserInstruction: "user",
    ins.WorkdirInstruction: "workdir", ins.CmdInstruction: "cmd", ins.EntrypointInstruction: "entrypoint",
    ins.HealthcheckInstruction: "healthcheck", ins.StopSignalInstruction: "stopsignal",
    ins.ShellInstruction: "shell", ins.OnbuildInstruction: "onbuild", ins.MaintainerInstruction: "maintainer",
}


def module_for(instruction: ins.Instruction) -> ModuleType:
    name = _MODULES.get(type(instruction))
    if name is None:
        raise instruction.error(f"{instruction.keyword} cannot be used inside a stage")
    return import_module(f"executor.commands.{name}")


def touches_root(instruction: ins.Instruction) -> bool:
    """Whether the instruction reads or writes the root's files (its module's TOUCHES_ROOT, default True):
    a stage whose instructions do not never needs its base's files on disk."""
    return getattr(module_for(instruction), "TOUCHES_ROOT", True)


def execute(instruction: ins.Instruction, ctx):
    return module_for(instruction).execute(instruction, ctx)

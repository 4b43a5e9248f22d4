"""The whole Dockerfile: directives, global ARGs, stages; stage references checked."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .errors import DockerfileError
from .instructions import (AddInstruction, ArgInstruction, CopyInstruction, FromInstruction,
                           Instruction, OnbuildInstruction, RunInstruction, from_node)
from .parser import Directive, parse_nodes

log = logging.getLogger(__name__)

__all__ = ["Dockerfile", "Stage", "parse", "select_target"]


@dataclass
class Stage:
    """One FROM and what follows it. ``name`` is the lower-cased AS name ("" if none);
    ``index`` counts stages from 0."""

    index: int
    name: str
    from_: FromInstruction
    instructions: list[Instruction] = field(default_factory=list)

    @property
    def base_name(self) -> str:
        return self.from_.base_name

    @property
    def platform(self) -> str:
        return self.from_.platform

    @property
    def ref(self) -> str:
        """How messages name the stage: its name, else its index."""
        return self.name or str(self.index)


@dataclass
class Dockerfile:
    """A parsed and checked Dockerfile: its directives, the ARGs before the first FROM, and its stages in order;
    what the build plans its stages from."""
    file: str
    directives: list[Directive]
    escape: str
    global_args: list[ArgInstruction]
    stages: list[Stage]
    warnings: list[str] = field(default_factory=list)

    def directive(self, name: str) -> str | None:
        for d in self.directives:
            if d.name == name:
                return d.value
        return None

    def stage(self, ref: str) -> Stage | None:
        """The stage called ``ref`` (case-insensitive) or with index ``ref``."""
        low = ref.lower()
        for st in self.stages:
            if st.name and st.name == low:
                return st
        if ref.isdigit() and ref.isascii() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None


def _check_reference(ref: str, what: str, stage: Stage, names: dict[str, Stage], later: dict[str, int],
                     inst: Instruction) -> None:
    """``ref`` (a COPY --from or mount from=) must not name this stage or a later one."""
    if not ref or "$" in ref:
        return
    low = ref.lower()
    if low == stage.name and stage.name:
        raise inst.error(f"{what}={ref}: a stage cannot refer to itself (stage \"{stage.name}\" "
                         f"starts on line {stage.from_.location.start_line})")
    if low in names:
        return
    if low in later:
        raise inst.error(f"{what}={ref}: stage \"{low}\" is defined later (line {later[low]}); "
                         "only earlier stages can be used")
    if ref.isdigit() and ref.isascii():
        index = int(ref)
        if index == stage.index:
            raise inst.error(f"{what}={ref}: a stage cannot refer to itself (it is stage {index})")
        if index > stage.index:
            raise inst.error(f"{what}={ref}: stage {index} is not defined before this one "
                             f"(this is stage {stage.index}); only earlier stages can be used")


def _check_stage_refs(stages: list[Stage]) -> None:
    """COPY --from and RUN --mount from= may only name earlier stages (kaniko's rule; BuildKit
    also allows later ones when no cycle forms). A FROM naming a stage that is not defined
    before it names an image (as both kaniko and BuildKit read it), so FROM is not checked:
    ``FROM node AS node`` is the image node."""
    later: dict[str, int] = {st.name: st.from_.location.start_line for st in stages if st.name}
    names: dict[str, Stage] = {}
    for st in stages:
        later.pop(st.name, None)
        for inst in st.instructions:
            target = inst.trigger if isinstance(inst, OnbuildInstruction) else inst
            if isinstance(inst, OnbuildInstruction):
                continue  # triggers run in another build, where these names mean nothing
            if isinstance(target, CopyInstruction):
                _check_reference(target.from_, "COPY --from", st, names, later, inst)
            if isinstance(target, RunInstruction):
                for m in target.mounts:
                    _check_reference(m.from_, "RUN --mount from", st, names, later, inst)
        if st.name:
            names[st.name] = st


def parse(text: str | bytes, filename: str = "Dockerfile") -> Dockerfile:
    """Parse and check a Dockerfile. Raises :class:`DockerfileError` naming file and line:
    syntax, unknown instructions, flags, JSON forms, instructions before FROM, duplicate
    stage names, COPY --from / mount from= naming the stage itself or a later stage."""
    result = parse_nodes(text, filename)
    global_args: list[ArgInstruction] = []
    stages: list[Stage] = []
    first_line: dict[str, int] = {}
    for node in result.nodes:
        inst = from_node(node, filename)
        if isinstance(inst, FromInstruction):
            name = inst.stage_name
            if name and name in first_line:
                raise inst.error(f"duplicate stage name \"{name}\": already used by the stage on line "
                                 f"{first_line[name]}")
            if name:
                first_line[name] = inst.location.start_line
            stages.append(Stage(index=len(stages), name=name, from_=inst))
        elif not stages:
            if isinstance(inst, ArgInstruction):
                global_args.append(inst)
            else:
                raise inst.error(f"{inst.keyword} comes before the first FROM: only ARG may precede FROM "
                                 "(no build stage in context)")
        else:
            stages[-1].instructions.append(inst)
    if not stages:
        last = result.nodes[-1]
        raise DockerfileError(filename, last.start_line, "no FROM instruction: a Dockerfile needs at least one stage")
    _check_stage_refs(stages)
    return Dockerfile(file=filename, directives=result.directives, escape=result.escape,
                      global_args=global_args, stages=stages, warnings=result.warnings)


def select_target(dockerfile: Dockerfile, target: str | None) -> Stage:
    """The stage ``--target`` names (case-insensitive name or index); the last stage when
    ``target`` is empty. Raises DockerfileError listing the stage names."""
    if not target:
        return dockerfile.stages[-1]
    stage = dockerfile.stage(target)
    if stage is None:
        known = [st.name for st in dockerfile.stages if st.name]
        hint = f" (stages: {', '.join(known)})" if known else " (no stage has a name)"
        raise DockerfileError(dockerfile.file, None, f"target stage \"{target}\" could not be found{hint}")
    return stage

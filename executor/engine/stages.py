"""Which stages a build runs, and what each stage needs from the others."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from executor.dockerfile import Dockerfile, Stage
from executor.dockerfile.instructions import CopyInstruction, OnbuildInstruction, RunInstruction


@dataclass
class StagePlan:
    """The stages a build runs, in order (up to the last target, or with --skip-unused-stages only what the targets
    need), which ones later stages copy from, and which is built on which."""
    stages: list[Stage]                                  # to build, in order
    copied_from: dict[int, bool] = field(default_factory=dict)   # stage index -> a later stage copies from it
    based_on: dict[int, int] = field(default_factory=dict)       # stage index -> index of its base stage
    target: Stage | None = None                          # the stage whose image is the build's result

    @property
    def final(self) -> Stage:
        return self.target if self.target is not None else self.stages[-1]


def stage_refs(stage: Stage, triggers: bool = False) -> list[str]:
    """Raw names this stage's COPY --from and RUN --mount from= use (expanded later); with `triggers`, the
    names its ONBUILD triggers will use instead (in the stages built FROM it)."""
    refs = []
    own = [i for i in stage.instructions if not isinstance(i, OnbuildInstruction)]
    deferred = [i.trigger for i in stage.instructions if isinstance(i, OnbuildInstruction)]
    for inst in deferred if triggers else own:
        if isinstance(inst, CopyInstruction) and inst.from_:
            refs.append(inst.from_)
        if isinstance(inst, RunInstruction):
            refs.extend(m.from_ for m in inst.mounts if m.from_)
    return refs


def base_stage(dockerfile: Dockerfile, stage: Stage, expanded_base: str) -> Stage | None:
    """The earlier stage a FROM names, if it names one."""
    found = dockerfile.stage(expanded_base)
    if found is not None and found.index < stage.index and (found.name or not expanded_base.isdigit()):
        return found
    return None


def plan(dockerfile: Dockerfile, target: Stage | list[Stage], bases: dict[int, str], skip_unused: bool,
         expand: Callable[[str], str] = lambda word: word) -> StagePlan:
    """`bases` maps each stage index to its expanded FROM name; `expand` expands a `--from` value with the
    global ARGs (`COPY --from=${BUILDER}`).

    `target` may be several stages (kaniko's `--target a,b`): the first is the result, the others are built
    too. Every stage up to the last target is built (kaniko's default), or with `skip_unused` only the
    targets and what they need."""
    targets = target if isinstance(target, list) else [target]
    last = max(t.index for t in targets)
    based_on: dict[int, int] = {}
    deps: dict[int, set[int]] = {}
    copied: dict[int, bool] = {}
    for st in dockerfile.stages[: last + 1]:
        d: set[int] = set()
        base = base_stage(dockerfile, st, bases[st.index])
        refs = stage_refs(st)
        if base is not None:
            based_on[st.index] = base.index
            d.add(base.index)
            refs += stage_refs(base, triggers=True)     # its ONBUILD triggers run here
        for ref in refs:
            try:
                ref = expand(ref)
            except Exception:  # an expansion error is reported when the instruction runs
                pass
            other = dockerfile.stage(ref)
            if other is not None and other.index < st.index:
                d.add(other.index)
                copied[other.index] = True
        deps[st.index] = d
    if skip_unused:
        needed: set[int] = set()
        todo = [t.index for t in targets]
        while todo:
            i = todo.pop()
            if i in needed:
                continue
            needed.add(i)
            todo.extend(deps.get(i, ()))
        stages = [s for s in dockerfile.stages[: last + 1] if s.index in needed]
    else:
        stages = list(dockerfile.stages[: last + 1])
    return StagePlan(stages, {i: True for i in copied if any(s.index == i for s in stages)}, based_on, targets[0])

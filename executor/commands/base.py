"""The one small interface every Dockerfile instruction's module implements.

A command module exposes `execute(instruction, ctx) -> Outcome`. It changes the image config in
`ctx.image.config` and/or the files under `ctx.root`, and says in its Outcome how the build should find the
files it changed: not at all (metadata only), by walking the root (RUN), or from the paths it wrote (COPY).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, TypeVar

from executor.dockerfile.args import StageArgs
from executor.dockerfile import shell
from executor.dockerfile.instructions import Instruction
from executor.image import Image

I = TypeVar("I", bound=Instruction)


@dataclass
class Outcome:
    """What an instruction tells the build loop after it ran: how to snapshot the root (not at all, a walk, or
    exactly `paths`) and the history text it writes."""
    snapshot: str = "none"          # "none": metadata only; "walk": compare the root; "paths": exactly `paths`
    paths: list[str] = field(default_factory=list)
    created_by: str = ""            # history text; "" means the instruction adds no history entry


class RunFunction(Protocol):
    def __call__(self, spec): ...


@dataclass
class CommandContext:
    """What an instruction can see and change while its stage builds."""
    root: str                                   # the image root ("/" in production)
    image: Image                                # the stage's image so far; commands change its config
    args: StageArgs                             # ARGs in scope
    escape: str = "\\"
    work_dir: str = "/tmp"                      # kiln's own scratch space for this build
    context_dir: str | None = None              # the build context
    excluded: Callable[[str], bool] | None = None   # .dockerignore over the context
    # COPY --from / RUN --mount from=: a stage name, index or image reference -> a directory holding that root
    source_root: Callable[[str], str] | None = None
    run: Callable | None = None                 # executor.run.run, replaceable for tests
    secrets: dict = field(default_factory=dict)  # id -> executor.cli.Secret
    cache_mount_dir: str = "/tmp"               # where RUN --mount=type=cache directories live
    cmd_set: bool = False                       # CMD given in this stage (ENTRYPOINT keeps it then)
    output: Callable[[str], None] | None = None  # RUN output lines
    http_session_factory: Callable | None = None
    stage_platform: str = ""

    # ---- word expansion with the stage's ARGs and ENV (ENV wins) ----------------------------------
    def env(self) -> dict[str, str]:
        return self.image.config.env_dict()

    def expansion_env(self) -> dict[str, str]:
        return self.args.expansion_env(self.env())

    def expand(self, word: str) -> str:
        return shell.expand(word, self.expansion_env(), self.escape)

    def expand_words(self, word: str) -> list[str]:
        return shell.expand_words(word, self.expansion_env(), self.escape)

    def expand_heredoc(self, data: str) -> str:
        return shell.expand_heredoc(data, self.expansion_env()).result

    def expanded(self, inst: I) -> I:
        """`inst` with its fields expanded in this stage's environment (`Instruction.expand`)."""
        return inst.expand(self.expand, self.expand_words, self.expand_heredoc)

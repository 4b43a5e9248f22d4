"""The Dockerfile front end.

Modules, imported one way (syntax -> instructions -> stages; shell and dockerignore stand
alone):

* :mod:`.parser` -- directives, comments, continuations, heredoc bodies, one
  :class:`~.parser.Node` per instruction with its line range (uses :mod:`.line_parsers`
  for each instruction's arguments and :mod:`.heredocs` for ``<<EOF`` words);
* :mod:`.instructions` -- typed instructions (flags via :mod:`.flags`, ``--mount`` via
  :mod:`.mounts`, HEALTHCHECK durations via :mod:`.durations`);
* :mod:`.stages` -- :func:`parse` -> :class:`Dockerfile` (global ARGs, stages, checks of
  stage references) and :func:`select_target`;
* :mod:`.shell` -- word expansion as BuildKit's shell lexer;
* :mod:`.dockerignore` -- .dockerignore rules and the context walk.

Every error is a :class:`DockerfileError` naming file and line (expansion errors are
:class:`ExpansionError` until an instruction turns them into one).
"""
from . import shell
from .errors import DockerfileError, ExpansionError
from .stages import Dockerfile, Stage, parse, select_target

__all__ = ["Dockerfile", "DockerfileError", "ExpansionError", "Stage", "parse", "select_target", "shell"]

"""The Dockerfile front end: syntax (:mod:`.parser`), word expansion (:mod:`.shell`),
typed instructions (:mod:`.instructions`), stages (:mod:`.stages`) and
:mod:`.dockerignore`. Imports go parser -> instructions -> stages; shell and dockerignore
stand alone."""
from .errors import DockerfileError, ExpansionError
from .stages import Dockerfile, Stage, parse, select_target
from . import shell

__all__ = ["Dockerfile", "DockerfileError", "ExpansionError", "Stage", "parse", "select_target", "shell"]

"""The build engine: contexts, stage planning, the build loop and its outputs.

`run(options)` and `warm(options)` are what `executor` and `warmer` call (`executor.engine.session`).
"""
from .session import run, warm

__all__ = ["run", "warm"]

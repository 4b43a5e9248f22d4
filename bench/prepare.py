"""What a benchmark does to a kiln checkout before timing it: what the executor image's assembly does
(scripts/executor-image/assemble.sh), so that a timed run compiles nothing it would not compile in production."""
from __future__ import annotations

import os
import subprocess
import sys


def precompile(tree: str) -> None:
    """Byte code for every module of `tree` (this machine sets PYTHONDONTWRITEBYTECODE, under which an editable
    install compiles each module on every run) and, where the checkout has it, the start-up code
    (executor.startup_code), written by a fresh interpreter as assemble.sh writes it."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": ""}
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(tree, "executor"),
                    os.path.join(tree, "snapshot")], check=True, env=env)
    if os.path.isfile(os.path.join(tree, "executor", "startup_code.py")):
        subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {tree!r}); "
                        "from executor import startup_code; startup_code.write()"], check=True, env=env, cwd=tree)

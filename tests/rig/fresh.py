"""A fresh interpreter for a snippet of Python: nothing of kiln imported yet, this checkout first on sys.path,
no PYTHON* variables (this machine sets PYTHONDONTWRITEBYTECODE; a test may not depend on the caller's)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fresh_python(code: str) -> "subprocess.CompletedProcess[str]":
    """Run `code` (dedented) with `sys` imported; its output captured as text."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {REPO!r})\n" + textwrap.dedent(code)],
                          capture_output=True, text=True, env=env, cwd=REPO)

"""kiln's executor: the CLI, the Dockerfile front end, the instructions, the registry client, image assembly.

Loading the package first gives `dataclasses` and `re` the code the executor image compiled for them
(`executor.startup_code`), before any module of kiln creates a class or compiles a pattern.
"""
from executor import startup_code as _startup_code

_startup_code.install()

"""kiln's executor: the CLI, the Dockerfile front end, the instructions, the registry client, image assembly.

Loading the package first notes when kiln's imports begin (`executor.timings`), then gives `dataclasses` and
`re` the code the executor image compiled for them (`executor.startup_code`), before any module of kiln creates
a class or compiles a pattern.
"""
from executor import timings as _timings  # noqa: F401, I001 - first: kiln's imports begin here
from executor import startup_code as _startup_code

_startup_code.install()

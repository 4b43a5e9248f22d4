"""kiln's executor: the CLI, the Dockerfile front end, the instructions, the registry client, image assembly.

Loading the package first gives `dataclasses` the compiled code of kiln's classes when the executor image
holds it (`executor.dataclass_code`), before any module of kiln creates one.
"""
from executor import dataclass_code as _dataclass_code

_dataclass_code.install()

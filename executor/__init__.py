"""kiln's executor: the CLI, the Dockerfile front end, the instructions, the registry client, image assembly.

Loading the package first notes when kiln's imports begin (`executor.timings`), then gives `dataclasses` and
`re` the code the executor image compiled for them (`executor.startup_code`), before any module of kiln creates
a class or compiles a pattern; and quiets requests' warning about the character detection the image leaves out.
"""
from executor import timings as _timings  # noqa: F401, I001 - first: kiln's imports begin here
from executor import startup_code as _startup_code

import warnings as _warnings


def quiet_requests() -> None:
    """The executor image leaves requests' character detection out (scripts/executor-image/assemble.sh): requests
    then reads a text answer that names no charset as UTF-8, and says so once at import, to nobody's use."""
    _warnings.filterwarnings("ignore", message="Unable to find acceptable character detection dependency",
                             module="requests")


_startup_code.install()
quiet_requests()

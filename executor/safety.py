"""Refuse to build on `/` unless kiln runs from its own executor image.

Building on root `/` extracts the base image over this machine's files and later wipes everything that
is not on the ignore list. That is what kiln is for as the entry point of its executor image, and a
disaster anywhere else. kaniko's `checkContained` accepts any sign of a container (/.dockerenv, a
container cgroup, ...), but kaniko ships only as an image; kiln is also a pip package, and "inside some
container" (a dev container, a CI job's python image) is no proof that `/` is kiln's to take: an
executor run without `--root` in such a container replaced its `/bin`, `/sbin`, `/etc/passwd` and 140
files of `/usr/bin` (issue 12).

So the rule is the executor image's own layout (Containerfile, scripts/executor-image/assemble.sh): kiln's
private interpreter is `/kaniko/bin/python3.X`, its `executor` package lives under `/kaniko/lib/`, and
the entry point `/kaniko/executor` starts it with `-I`. Only a process that is that interpreter, running
that package, isolated, may build on `/`; anything else needs `--force`. A `--root` other than `/` is
always allowed: nothing outside that directory is touched.

Every input (the interpreter's path, its -I flag, the package's place, the kiln directory) is a
parameter of `check_root` with the running process's values as defaults; nothing is read from the
environment, so no variable can change the decision.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

import executor

__all__ = [
    "KILN_DIR",
    "Interpreter",
    "UnsafeRootError",
    "Verdict",
    "check_root",
    "is_host_root",
    "not_own_image",
    "running_interpreter",
]

log = logging.getLogger(__name__)

KILN_DIR = "/kaniko"    # where Containerfile's builder stage assembles kiln (KILN_DIR=/kaniko assemble.sh)


class UnsafeRootError(Exception):
    """Building on `/` was refused; the message says why and what to do."""


@dataclass(frozen=True)
class Interpreter:
    """What identifies the running kiln: the interpreter binary, its -I flag, the `executor` package's directory."""

    executable: str
    isolated: bool
    package: str


@dataclass(frozen=True)
class Verdict:
    """The outcome of `check_root`: `own_image` when kiln runs from its executor image."""

    root: str
    host_root: bool
    own_image: bool
    forced: bool


def running_interpreter() -> Interpreter:
    """This process's interpreter, -I flag and `executor` package directory."""
    return Interpreter(sys.executable or "", bool(sys.flags.isolated), os.path.dirname(executor.__file__))


def _real(path: str) -> str:
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return os.path.normpath(path)


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def not_own_image(interp: Interpreter, kiln_dir: str = KILN_DIR) -> str | None:
    """Why `interp` is not kiln's own executor image under `kiln_dir`, or None when it is.

    The executor image's interpreter is the real file `KILN_DIR/bin/python3.X` (the `python3` symlink
    beside it resolves to it), run with -I by the `KILN_DIR/executor` script, importing the `executor`
    package from `KILN_DIR/lib/pythonX.Y/<site dir>/`.
    """
    home = _real(kiln_dir)
    if not interp.executable:
        return "the interpreter's path is unknown"
    binary = _real(interp.executable)
    if os.path.dirname(binary) != os.path.join(home, "bin") or not os.path.basename(binary).startswith("python"):
        return f"its interpreter is {interp.executable}, not {kiln_dir}/bin/python3"
    if not _inside(_real(interp.package), os.path.join(home, "lib")):
        return f"it runs the executor package from {interp.package}, not from {kiln_dir}/lib"
    if not interp.isolated:
        return f"{interp.executable} was started without -I (the executor image's entry point uses -I)"
    return None


def is_host_root(root: str) -> bool:
    """Whether `root` is this machine's `/` (after symlinks, `//`, `/.`, `..`)."""
    real = _real(root)
    if real == "/":
        return True
    try:
        return os.path.samefile(real, "/")
    except OSError:
        return False


def check_root(root: str, force: bool, *, interpreter: Interpreter | None = None,
               kiln_dir: str = KILN_DIR) -> Verdict:
    """Allow the build, or raise UnsafeRootError before anything is written.

    Allowed when the root is not `/`, when kiln runs from its own executor image (`not_own_image` is
    None for `interpreter`, default: this process), or when `force` is set (then a warning is logged).
    """
    if not is_host_root(root):
        return Verdict(root=root, host_root=False, own_image=False, forced=force)
    why_not = not_own_image(interpreter or running_interpreter(), kiln_dir)
    if why_not is None:
        log.debug("Building on / from kiln's executor image (%s)", kiln_dir)
        return Verdict(root=root, host_root=True, own_image=True, forced=force)
    if force:
        log.warning("Building on / with --force although kiln does not run from its executor image (%s): the base "
                    "image is extracted over this machine's files and other files are deleted.", why_not)
        return Verdict(root=root, host_root=True, own_image=False, forced=True)
    raise UnsafeRootError(
        f"refusing to build on / : kiln does not run from its executor image ({why_not}). Building on / extracts "
        "the base image over this machine's files and deletes the rest, inside a container too. Pass --root DIR "
        "with an empty scratch directory to build there, or --force if this / is a throwaway one."
    )

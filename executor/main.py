"""Console entry points: `executor` (kaniko's /kaniko/executor) and `warmer` (kaniko's warmer).

Each parses its flags, sets up logging, registers secret values for redaction, (executor only)
runs the safety check, then hands the options to the build engine, imported lazily:
`executor.engine.run(options)` and `executor.engine.warm(options)`.

Exit codes: 0 on success; 1 on a usage error (message on stderr, as cobra prints it) or a build
error (logged at error level; the traceback only at debug/trace). An exception carrying an int
`exit_code` attribute (a failed RUN, say) exits with that code, as kaniko propagates a command's
exit status. 130 on Ctrl-C.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from executor import timings  # noqa: I001 - (the package loads it first: it notes when kiln's imports begin)
from executor import cli, container, logs, masking, safety
from executor.dockerfile.args import looks_secret

__all__ = ["executor_main", "warmer_main", "executor_entry", "warmer_entry", "exit_with", "version"]

log = logging.getLogger("executor")

def version() -> str:
    """kiln's version, from its installed metadata (read only when asked: importlib.metadata costs start-up)."""
    from importlib.metadata import PackageNotFoundError, version as dist_version

    try:
        return dist_version("kiln")
    except PackageNotFoundError:
        return "0.1.0"


class EngineMissing(Exception):
    """The build engine package is not part of this installation."""


def _usage_error(prog: str, err: Exception) -> int:
    sys.stderr.write(f"Error: {err}\nRun '{prog} --help' for usage.\n")
    return 1


def _load_engine(attr: str) -> Callable[[Any], Any]:
    try:
        with timings.phase("Start-up: engine imports"):
            module = importlib.import_module("executor.engine")
    except ModuleNotFoundError as exc:
        if exc.name in ("executor.engine", "executor"):
            raise EngineMissing(
                "the build engine (package executor.engine) is missing from this kiln installation; "
                "nothing was built. Install a complete kiln or run it from a full checkout."
            ) from None
        raise
    func = getattr(module, attr, None)
    if not callable(func):
        raise EngineMissing(f"the build engine executor.engine has no {attr}() function; nothing was built")
    return func


def _register_secrets(opts: cli.Options, env: Mapping[str, str]) -> None:
    """What the log must never show: --secret values and secret-looking build args' values."""
    for value in masking.masked_values(opts, env):
        if not logs.register_secret(value):
            log.debug("a secret value is too short to be masked in the log")
    masking.warn_secret_build_args(opts)


def _run_engine(func: Callable[[Any], Any], opts: Any, verbosity: str) -> int:
    try:
        with timings.phase("Engine (imports, build, push)"):
            result = func(opts)
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except EngineMissing as exc:
        log.error("%s", exc)
        return 1
    except Exception as exc:  # noqa: BLE001 - every build failure ends here, logged once
        verbose = logs.parse_level(verbosity) <= logging.DEBUG
        message = str(exc) or exc.__class__.__name__
        log.error("%s", message, exc_info=verbose)
        code = getattr(exc, "exit_code", None)
        return code if isinstance(code, int) and 0 < code < 256 else 1
    finally:
        timings.report(log)
    if isinstance(result, int) and not isinstance(result, bool) and result != 0:
        return result
    return 0


def _setup_logging(opts: cli.Options | cli.WarmerOptions, prog: str) -> int | None:
    # --progress=json: every line of stderr is JSON, the log lines too (logrus' JSON format)
    log_format = "json" if getattr(opts, "progress", "") == "json" else opts.log_format
    try:
        logs.configure(opts.verbosity, log_format, opts.log_timestamp)
    except ValueError as exc:
        return _usage_error(prog, exc)
    for notice in opts.notices:
        log.warning("%s", notice)
    return None


def executor_main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
                  engine: Callable[[cli.Options], Any] | None = None) -> int:
    """`executor [flags]` -- kaniko's executor command line. Returns the exit code.

    `engine` replaces executor.engine.run (tests); `env` replaces os.environ.
    """
    timings.record_startup()
    argv = sys.argv[1:] if argv is None else list(argv)
    env = os.environ if env is None else env
    if argv and argv[0] in cli.SUBCOMMANDS:
        return _subcommand(argv[0], argv[1:], env)
    try:
        opts = cli.parse_executor_args(argv, env=env)
        cli.validate_executor(opts)
        opts = cli.absolutize_paths(opts, os.getcwd())
    except cli.HelpRequested as usage:
        sys.stdout.write(str(usage))
        return 0
    except cli.VersionRequested:
        sys.stdout.write(f"Kaniko version :  kiln {version()}\n")
        return 0
    except cli.UsageError as exc:
        return _usage_error("executor", exc)
    failed = _setup_logging(opts, "executor")
    if failed is not None:
        return failed
    _register_secrets(opts, env)
    try:
        verdict = safety.check_root(opts.root, opts.force)
        container.check_build_container(opts.root, opts.kaniko_dir)
    except (safety.UnsafeRootError, container.ContainerError) as exc:
        log.error("%s", exc)
        return 1
    if verdict.host_root:
        container.guard_kiln_process()
    return _run_engine(engine or (lambda o: _load_engine("run")(o)), opts, opts.verbosity)


def _subcommand(name: str, argv: list[str], env: Mapping[str, str]) -> int:
    """`executor login ...` and `executor push ...` (the osscontainertools fork's subcommands) and `executor
    index ...` (kiln's: an index assembled from images already pushed)."""
    prog = f"executor {name}"
    parsers = {"login": cli.parse_login_args, "push": cli.parse_push_args, "index": cli.parse_index_args}
    try:
        opts = parsers[name](argv, env)
    except cli.HelpRequested as usage:
        sys.stdout.write(str(usage))
        return 0
    except cli.UsageError as exc:
        return _usage_error(prog, exc)
    failed = _setup_logging(opts, prog)
    if failed is not None:
        return failed
    if name == "login":
        logs.register_secret(opts.password)
        return _run_engine(_login, opts, opts.verbosity)
    module = "executor.engine.push" if name == "push" else "executor.engine.index"
    return _run_engine(lambda o: importlib.import_module(module).run(o), opts, opts.verbosity)


def _login(opts: cli.LoginOptions) -> int:
    from executor.registry.auth import login_config_path, store_credentials

    where = store_credentials(opts.registry, opts.username, opts.password, login_config_path())
    log.info("Stored the credentials for %s in %s", opts.registry, where)
    return 0


def warmer_main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
                engine: Callable[[cli.WarmerOptions], Any] | None = None) -> int:
    """`warmer [flags]` -- kaniko's cache warmer command line. Returns the exit code.

    `engine` replaces executor.engine.warm (tests); `env` replaces os.environ.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    env = os.environ if env is None else env
    try:
        opts = cli.parse_warmer_args(argv, env=env)
        cli.validate_warmer(opts)
        opts = cli.resolve_warmer_dockerfile(opts, os.getcwd())
    except cli.HelpRequested as usage:
        sys.stdout.write(str(usage))
        return 0
    except cli.UsageError as exc:
        return _usage_error("warmer", exc)
    failed = _setup_logging(opts, "warmer")
    if failed is not None:
        return failed
    for key, value in opts.build_args.items():
        if value and looks_secret(key):
            logs.register_secret(value)
    return _run_engine(engine or (lambda o: _load_engine("warm")(o)), opts, opts.verbosity)


def exit_with(code: int) -> NoReturn:
    """End the process with `code` once what kiln wrote is out (log handlers flushed and closed, stdout and
    stderr flushed), without the interpreter's teardown: freeing the ~400 modules a build loads and running
    their finalizers took ~30 ms, a sixth of a metadata-only build (issue 21), and nothing of kiln's is left
    for it. Every file kiln writes is closed where it is written; every thread kiln starts is a daemon whose
    work the build waited for (or abandoned, on failure: nothing is tagged then); temporary directories go
    with their `with` blocks. For the entry points only: tests call executor_main and warmer_main."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe or stream: nothing more can reach it
            pass
    os._exit(code if isinstance(code, int) and 0 <= code <= 255 else 1)


def executor_entry() -> NoReturn:
    """The `executor` command (/kaniko/executor, `python -m executor`)."""
    exit_with(executor_main())


def warmer_entry() -> NoReturn:
    """The `warmer` command (/kaniko/warmer)."""
    exit_with(warmer_main())

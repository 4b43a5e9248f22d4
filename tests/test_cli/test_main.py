"""The entry points: exit codes, error logging, help, the missing engine, redaction end to end.

The engine is always a recording stand-in passed to executor_main (or, for the missing-engine
case, executor.engine is made unimportable), and the root is a scratch directory: no test here
can start a real build.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from executor import cli, logs, main
from tests.rig.fresh import fresh_python


@pytest.fixture(autouse=True)
def _clean_logging() -> Iterator[None]:
    yield
    root = logging.getLogger()
    for h in list(root.handlers):
        if h.get_name() == "kiln":
            root.removeHandler(h)
    logs.REDACTOR.clear()


class Recorder:
    def __init__(self, fail: BaseException | None = None, result: Any = None) -> None:
        self.calls: list[Any] = []
        self.fail = fail
        self.result = result

    def __call__(self, opts: Any) -> Any:
        self.calls.append(opts)
        if self.fail is not None:
            raise self.fail
        return self.result


def run(tmp_path: Path, *argv: str, engine: Recorder | None = None, env: dict[str, str] | None = None) -> int:
    return main.executor_main(["--root", str(tmp_path), "--log-format", "text", *argv],
                              env={} if env is None else env, engine=engine or Recorder())


def test_success_hands_options_to_the_engine(tmp_path: Path) -> None:
    engine = Recorder()
    assert run(tmp_path, "-d", "r.io/app:1", "--cache", engine=engine) == 0
    (opts,) = engine.calls
    assert isinstance(opts, cli.Options)
    assert opts.destinations == ["r.io/app:1"] and opts.cache and opts.root == str(tmp_path)


def test_build_error_is_logged_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(tmp_path, "--no-push", engine=Recorder(RuntimeError("error building image: no FROM")))
    err = capsys.readouterr().err
    assert code == 1
    assert 'level=error msg="error building image: no FROM"' in err
    assert "Traceback" not in err


@pytest.mark.parametrize("level", ["debug", "trace"])
def test_build_error_traceback_at_debug(tmp_path: Path, capsys: pytest.CaptureFixture[str], level: str) -> None:
    code = run(tmp_path, "--no-push", "-v", level, engine=Recorder(ValueError("bad layer")))
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" in err and "bad layer" in err


def test_exit_code_of_a_failed_command_is_propagated(tmp_path: Path) -> None:
    class CommandFailed(Exception):
        exit_code = 42

    assert run(tmp_path, "--no-push", engine=Recorder(CommandFailed("RUN exit status 42"))) == 42


def test_interrupt_exits_130(tmp_path: Path) -> None:
    assert run(tmp_path, "--no-push", engine=Recorder(KeyboardInterrupt())) == 130


def test_usage_errors_go_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = Recorder()
    assert run(tmp_path, "--no-push", "--snapshotmode=full", engine=engine) == 1
    captured = capsys.readouterr()
    assert "Error: unknown flag: --snapshotmode (did you mean --snapshot-mode?)" in captured.err
    assert captured.out == ""
    assert engine.calls == []


@pytest.mark.parametrize("argv,message", [
    ([], "you must provide --destination, or use --no-push"),
    (["--no-push", "--cache"], "specify cache repo with --cache-repo"),
    (["-d", "r/x", "--compression=zstd", "--image-format=docker"], "--compression=zstd cannot be used"),
    (["-d", "r/x", "--tar-path=/o.tar", "--image-format=oci"], "--tar-path writes a Docker schema2 tarball"),
    (["-d", "r/x", "--tar-path=/o.tar", "--compression=zstd"], "--compression=zstd cannot be used with --tar-path"),
    (["--no-push", "--image-name-with-digest-file=/f"], "you must provide --destination if setting"),
    (["--no-push", "--image-name-tag-with-digest-file=/f"], "you must provide --destination if setting"),
    (["--no-push", "--context="], "please specify a path to the build context"),
    (["--no-push", "-v", "loud"], "invalid value \"loud\" for --verbosity"),
])
def test_kaniko_cross_flag_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                  message: str) -> None:
    engine = Recorder()
    assert run(tmp_path, *argv, engine=engine) == 1
    assert message in capsys.readouterr().err
    assert engine.calls == []


def test_cache_with_no_push_is_fine_with_a_cache_repo_or_no_push_cache(tmp_path: Path) -> None:
    assert run(tmp_path, "--no-push", "--cache", "--cache-repo=r.io/cache") == 0
    assert run(tmp_path, "--no-push", "--cache", "--no-push-cache") == 0


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.executor_main(["--help"], env={}, engine=Recorder()) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage:\n  executor [flags]") and "--cache-ttl duration" in out
    assert "[env KANIKO_NO_PUSH]" in out and "--root string" in out and "--snapshotMode" not in out
    assert main.executor_main(["version"], env={}, engine=Recorder()) == 0
    assert capsys.readouterr().out == f"Kaniko version :  kiln {main.version()}\n"     # kaniko's line
    assert main.warmer_main(["-h"], env={}, engine=Recorder()) == 0
    assert "--image stringArray" in capsys.readouterr().out


def test_deprecated_flags_warn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = Recorder()
    assert run(tmp_path, "--no-push", "--tarPath=/o.tar", "--whitelist-var-run=false", engine=engine) == 0
    err = capsys.readouterr().err
    assert "level=warning" in err and "--tarPath is deprecated" in err and "whitelist-var-run" in err
    assert engine.calls[0].tar_path == "/o.tar" and engine.calls[0].ignore_var_run is False


def test_missing_engine_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "executor.engine", None)  # makes the import fail as if absent
    code = main.executor_main(["--root", str(tmp_path), "--no-push", "--log-format=json"], env={})
    err = capsys.readouterr().err
    assert code == 1
    assert "build engine" in err and "missing" in err and '"level":"error"' in err
    assert ("the build engine (package executor.engine) is missing from this kiln installation; nothing was built. "
            "Install a complete kiln or run it from a full checkout.") in err


def test_engine_without_run_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    empty = type(sys)("executor.engine")
    monkeypatch.setitem(sys.modules, "executor.engine", empty)
    assert main.executor_main(["--root", str(tmp_path), "--no-push"], env={}) == 1
    assert "has no run() function" in capsys.readouterr().err


def test_secrets_and_build_args_never_reach_the_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret_file = tmp_path / "npmrc"
    secret_file.write_text("//registry.npmjs.org/:_authToken=npm_SECRETFILE\n")

    def engine(opts: cli.Options) -> None:
        log = logging.getLogger("executor.engine.fake")
        log.info("build args: %s", opts.build_args)
        log.info("token from env is %s", "ghp_ENVSECRET")
        log.debug("file secret: %s", secret_file.read_text())
        raise RuntimeError("failed pushing with password s3cr3t-pass")

    code = main.executor_main(
        ["--root", str(tmp_path), "--no-push", "-v", "debug", "--build-arg", "PASSWORD=s3cr3t-pass",
         "--build-arg", "TOKEN", "--secret", "id=gh,env=GH_TOKEN", "--secret", f"id=npm,src={secret_file}"],
        env={"TOKEN": "from-env-token", "GH_TOKEN": "ghp_ENVSECRET"}, engine=engine)
    err = capsys.readouterr().err
    assert code == 1 and "failed pushing with password ***" in err
    for value in ("s3cr3t-pass", "from-env-token", "ghp_ENVSECRET", "npm_SECRETFILE"):
        assert value not in err
    assert err.count("***") >= 4


def test_plain_build_args_are_logged_as_docker_shows_them(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 12: only secret-looking build args are masked; `FROM $BASE` must show the image it pulls."""
    def engine(opts: cli.Options) -> None:
        logging.getLogger("executor.engine.fake").info("Retrieving image %s", opts.build_args["BASE"])

    code = main.executor_main(["--root", "/tmp/kiln-unused-root", "--no-push", "--build-arg",
                               "BASE=registry.example/team/base:1.2.3", "--build-arg", "DB_PASSWORD=hunter2-db"],
                              env={}, engine=engine)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Retrieving image registry.example/team/base:1.2.3" in err
    assert "hunter2-db" not in err and "build arg DB_PASSWORD looks like a secret" in err


def test_warmer_runs_its_engine(capsys: pytest.CaptureFixture[str]) -> None:
    engine = Recorder()
    assert main.warmer_main(["-i", "alpine:3.20", "-c", "/tmp/cache", "--force"], env={}, engine=engine) == 0
    (opts,) = engine.calls
    assert isinstance(opts, cli.WarmerOptions) and opts.images == ["alpine:3.20"] and opts.force


def test_warmer_needs_something_to_cache(capsys: pytest.CaptureFixture[str]) -> None:
    engine = Recorder()
    assert main.warmer_main([], env={}, engine=engine) == 1
    assert "you must select at least one image to cache" in capsys.readouterr().err
    assert engine.calls == []


def test_warmer_ignores_stray_words_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    engine = Recorder()
    assert main.warmer_main(["-i", "alpine", "--force", "true", "--log-format=text"], env={}, engine=engine) == 0
    assert "ignoring unexpected arguments: true" in capsys.readouterr().err


def test_warmer_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main.warmer_main(["-i", "alpine"], env={}, engine=Recorder(RuntimeError("failed warming cache")))
    assert code == 1 and "failed warming cache" in capsys.readouterr().err


def test_secret_from_a_fifo_is_not_read_at_startup(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    engine = Recorder()
    assert run(tmp_path, "--no-push", "--secret", f"id=p,src={fifo}", engine=engine) == 0  # would hang if read
    assert engine.calls[0].secrets["p"].source == str(fifo)


def test_index_subcommand_needs_destinations_and_sources(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.executor_main(["index", "--source", "r.io/a:amd64"], env={}) == 1
    assert "Error: at least one --destination is required" in capsys.readouterr().err
    assert main.executor_main(["index", "-d", "r.io/a:1"], env={}) == 1
    assert ("Error: at least one --source is required (an image per platform, already pushed)"
            in capsys.readouterr().err)
    assert main.executor_main(["index", "-d", "r.io/a:1", "r.io/a:amd64"], env={}) == 1
    assert ('Error: unknown command "r.io/a:amd64" for "executor index" (name the images with --source)'
            in capsys.readouterr().err)
    opts = main.cli.parse_index_args(["-d", "r.io/a:1", "--source=r.io/a:amd64", "--source", "r.io/a:arm64",
                                      "--digest-file", "/tmp/d"], env={})
    assert opts.sources == ["r.io/a:amd64", "r.io/a:arm64"] and opts.destinations == ["r.io/a:1"]
    assert opts.digest_file == "/tmp/d"


def test_exit_with_flushes_what_was_written_and_skips_teardown(tmp_path: Path) -> None:
    """The entry points end with os._exit: buffered stdout (a pipe: block-buffered), stderr and a logging
    file handler's last record all arrive; the exit code is kept; the interpreter's teardown (here an atexit
    handler and a finalizer that would print) does not run."""
    log_file = tmp_path / "kiln.log"
    proc = fresh_python(f"""
import atexit, logging
from executor.main import exit_with
logging.basicConfig(filename={str(log_file)!r}, level=logging.INFO, format="%(message)s")
atexit.register(lambda: print("teardown ran"))
sys.stdout.write("no newline, still buffered")
sys.stderr.write("to stderr")
logging.getLogger("kiln").info("last record")
exit_with(3)
""")
    assert proc.returncode == 3
    assert proc.stdout == "no newline, still buffered"
    assert proc.stderr == "to stderr"
    assert log_file.read_text() == "last record\n"


def test_exit_with_an_exit_code_out_of_range_is_a_failure() -> None:
    assert fresh_python("from executor.main import exit_with; exit_with(300)").returncode == 1
    assert fresh_python("from executor.main import exit_with; exit_with(None)").returncode == 1


def test_the_commands_end_through_exit_with() -> None:
    """`python -m executor`, the console scripts and the executor image's scripts call the *_entry functions."""
    repo = Path(__file__).resolve().parents[2]
    assert "executor_entry()" in (repo / "executor" / "__main__.py").read_text()
    scripts = (repo / "pyproject.toml").read_text()
    assert 'executor = "executor.main:executor_entry"' in scripts and 'warmer = "executor.main:warmer_entry"' in scripts
    assert "${ep}_entry()" in (repo / "scripts" / "executor-image" / "assemble.sh").read_text()
    proc = fresh_python("sys.argv = ['executor', 'version']\nfrom executor.main import executor_entry\nexecutor_entry()")
    assert proc.returncode == 0 and proc.stdout.startswith("Kaniko version :  kiln ")

"""The executor builds on `/` only from its own executor image (or with --force), never merely "in a container".

The rule's inputs (the interpreter, its -I flag, the package's directory, the kiln directory) are parameters of
`safety.check_root`: the unit tests lay out a fake kiln directory in tmp_path and pass it. No test lets a build
run on `/`: the end-to-end test runs the real entry point in the read-only sandbox, where it must refuse
before writing anything (strace records every file-changing system call it makes).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from executor import safety
from tests.rig.sandbox import run_sandboxed

REPO = Path(__file__).resolve().parents[2]


def kiln_dir(tmp_path: Path) -> tuple[str, safety.Interpreter]:
    """The executor image's layout (assemble.sh) under tmp_path/kaniko, and its interpreter as the entry point runs it."""
    home = tmp_path / "kaniko"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "python3.11").write_bytes(b"\x7fELF")
    (home / "bin" / "python3").symlink_to("python3.11")
    package = home / "lib" / "python3.11" / "dist-packages" / "executor"
    package.mkdir(parents=True)
    return str(home), safety.Interpreter(str(home / "bin" / "python3"), True, str(package))


def test_the_executor_images_interpreter_is_its_own(tmp_path: Path) -> None:
    home, interp = kiln_dir(tmp_path)
    assert safety.not_own_image(interp, home) is None
    verdict = safety.check_root("/", False, interpreter=interp, kiln_dir=home)
    assert verdict.host_root and verdict.own_image and not verdict.forced


def test_this_test_process_is_not_the_executor_image() -> None:
    why = safety.not_own_image(safety.running_interpreter())
    assert why == f"its interpreter is {sys.executable}, not /kaniko/bin/python3"


def _python_image(tmp_path: Path) -> safety.Interpreter:
    """A python:3.11 image with kiln pip-installed: /usr/local/bin/python3.11, kiln in /usr/local/lib."""
    usr = tmp_path / "usr" / "local"
    (usr / "bin").mkdir(parents=True)
    (usr / "bin" / "python3.11").write_bytes(b"\x7fELF")
    package = usr / "lib" / "python3.11" / "site-packages" / "executor"
    package.mkdir(parents=True)
    return safety.Interpreter(str(usr / "bin" / "python3.11"), True, str(package))


def _venv_on_kilns_python(tmp_path: Path) -> safety.Interpreter:
    """A venv made from the image's interpreter: the binary resolves into KILN_DIR/bin, the package does not."""
    _, own = kiln_dir(tmp_path)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(own.executable)
    package = venv / "lib" / "python3.11" / "site-packages" / "executor"
    package.mkdir(parents=True)
    return safety.Interpreter(str(venv / "bin" / "python"), True, str(package))


def test_a_python_image_with_kiln_installed_is_not_the_executor_image(tmp_path: Path) -> None:
    home, _ = kiln_dir(tmp_path)
    interp = _python_image(tmp_path)
    assert safety.not_own_image(interp, home) == f"its interpreter is {interp.executable}, not {home}/bin/python3"


def test_a_venv_on_the_images_interpreter_is_not_the_executor_image(tmp_path: Path) -> None:
    interp = _venv_on_kilns_python(tmp_path)
    home = str(tmp_path / "kaniko")
    assert safety.not_own_image(interp, home) == \
        f"it runs the executor package from {interp.package}, not from {home}/lib"


def test_the_images_interpreter_without_isolation_is_not_the_executor_image(tmp_path: Path) -> None:
    home, own = kiln_dir(tmp_path)
    interp = safety.Interpreter(own.executable, False, own.package)
    assert safety.not_own_image(interp, home) == \
        f"{own.executable} was started without -I (the executor image's entry point uses -I)"


def test_an_unknown_interpreter_is_not_the_executor_image(tmp_path: Path) -> None:
    home, own = kiln_dir(tmp_path)
    interp = safety.Interpreter("", True, own.package)
    assert safety.not_own_image(interp, home) == "the interpreter's path is unknown"


def test_refused_in_a_container_that_is_not_the_executor_image(tmp_path: Path) -> None:
    """This machine has /.dockerenv: kaniko's checkContained would accept it; kiln does not."""
    with pytest.raises(safety.UnsafeRootError) as err:
        safety.check_root("/", False, interpreter=_python_image(tmp_path), kiln_dir=str(tmp_path / "kaniko"))
    text = str(err.value)
    assert text.startswith("refusing to build on / : kiln does not run from its executor image (its interpreter is ")
    assert "Pass --root DIR" in text and "--force" in text


def test_forced_outside_the_executor_image_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    verdict = safety.check_root("/", True, interpreter=_python_image(tmp_path), kiln_dir=str(tmp_path / "kaniko"))
    assert verdict.forced and not verdict.own_image
    assert "Building on / with --force although kiln does not run from its executor image" in caplog.text


@pytest.mark.parametrize("root", ["/", "//", "/.", "/tmp/..", "/./"])
def test_spellings_of_root_are_root(root: str) -> None:
    assert safety.is_host_root(root)


def test_symlink_to_root_is_root(tmp_path: Path) -> None:
    link = tmp_path / "r"
    link.symlink_to("/")
    assert safety.is_host_root(str(link))
    assert not safety.is_host_root(str(tmp_path))
    with pytest.raises(safety.UnsafeRootError, match="refusing to build on / "):
        safety.check_root(str(link), False, interpreter=_python_image(tmp_path), kiln_dir=str(tmp_path / "kaniko"))


def test_scratch_root_is_always_allowed(tmp_path: Path) -> None:
    verdict = safety.check_root(str(tmp_path), False, interpreter=_python_image(tmp_path))
    assert not verdict.host_root


def test_no_environment_variable_moves_the_decision() -> None:
    """Issue 19: a safety decision read from the environment can be changed by any environment."""
    source = Path(safety.__file__).read_text()
    assert "os.environ" not in source and "getenv" not in source
    assert not re.search(r"PROBE_ROOT", "".join(p.read_text() for p in (REPO / "executor").rglob("*.py")))


# system calls that change a file system; strace -e trace=... names
_CHANGING = ("creat,mkdir,mkdirat,mknod,mknodat,unlink,unlinkat,rmdir,rename,renameat,renameat2,link,linkat,"
             "symlink,symlinkat,chmod,fchmodat,chown,lchown,fchownat,truncate,utimes,utimensat,setxattr,"
             "lsetxattr,mount,umount2,chroot,pivot_root")
_OPENS = "open,openat,openat2"


def _changes(strace_log: str) -> list[str]:
    """The calls of the log that create, write or change a file (opens for reading are not)."""
    out = []
    for line in strace_log.splitlines():
        call = re.match(r"\d+\s+(\w+)\(", line)
        if not call:
            continue
        if call.group(1) in _OPENS.split(","):
            if re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC", line):
                out.append(line)
        else:
            out.append(line)
    return out


def test_the_entry_point_without_root_refuses_in_a_container_and_writes_nothing(tmp_path: Path) -> None:
    """Issue 12: `executor` without --root, run in a container that is not the executor image (this machine: a
    container with /.dockerenv; the sandbox: / read-only), refuses with a message naming --root and --force,
    exits 1, and makes no file-changing system call at all (strace -f)."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
    trace = tmp_path / "trace"
    trace.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("KANIKO_DIR", "DOCKER_CONFIG")}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    argv = ["strace", "-f", "-qq", "-o", str(trace / "log"), "-e", f"trace={_OPENS},{_CHANGING}",
            sys.executable, "-m", "executor", "--context", str(context), "--no-push", "--log-format", "text"]
    proc = run_sandboxed(argv, writable=[str(context), str(trace)], env=env, cwd=str(context), timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "level=error" in lines[0], proc.stderr
    assert "refusing to build on / : kiln does not run from its executor image" in lines[0]
    assert f"its interpreter is {sys.executable}, not /kaniko/bin/python3" in lines[0]
    assert "Pass --root DIR" in lines[0] and "--force" in lines[0]
    assert proc.stdout == ""
    assert _changes((trace / "log").read_text()) == []
    assert sorted(os.listdir(context)) == ["Dockerfile"]


def test_the_trace_sees_writes(tmp_path: Path) -> None:
    """The strace filter above is not blind: the same trace of a command that writes finds its writes."""
    log = tmp_path / "log"
    subprocess.run(["strace", "-f", "-qq", "-o", str(log), "-e", f"trace={_OPENS},{_CHANGING}", sys.executable, "-c",
                    f"import os; open({str(tmp_path / 'f')!r}, 'w').close(); os.mkdir({str(tmp_path / 'd')!r})"],
                   check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    changes = _changes(log.read_text())
    assert any("O_CREAT" in c and "/f\"" in c for c in changes) and any("mkdir" in c and "/d\"" in c for c in changes)

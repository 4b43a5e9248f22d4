"""The argv a RUN executes for its heredoc forms, as BuildKit's dispatchRun builds it."""
from __future__ import annotations

import os

from executor.commands.run import command_argv
from executor.dockerfile import parse


def _run(text: str):
    return parse(("FROM x\n" + text).encode(), "Dockerfile").stages[0].instructions[0]


def test_a_lone_heredoc_with_a_shebang_runs_its_file_through_the_shell(tmp_path):
    # BuildKit mounts the script at /dev/pipes/NAME and prepends the shell (`/bin/sh -c /dev/pipes/EOF`,
    # measured in docker's history, parity case heredoc_buildkit)
    argv, mounts = command_argv(_run("RUN <<EOF\n#!/bin/awk -f\nBEGIN { print 1 }\nEOF\n"), None, str(tmp_path))
    assert argv == ["/bin/sh", "-c", "/dev/pipes/EOF"]
    assert [(m.target, m.source, m.readonly) for m in mounts] == [("/dev/pipes", str(tmp_path), True)]
    with open(os.path.join(tmp_path, "EOF")) as f:
        assert f.read() == "#!/bin/awk -f\nBEGIN { print 1 }\n"
    assert os.stat(os.path.join(tmp_path, "EOF")).st_mode & 0o777 == 0o755
    argv, _ = command_argv(_run("RUN <<EOF\n#!/bin/sh\necho\nEOF\n"), ["/bin/bash", "-ec"], str(tmp_path))
    assert argv == ["/bin/bash", "-ec", "/dev/pipes/EOF"]


def test_a_lone_heredoc_without_shebang_is_the_shells_command(tmp_path):
    argv, mounts = command_argv(_run("RUN <<EOF\necho one\necho two\nEOF\n"), ["/bin/awk"], str(tmp_path))
    assert argv == ["/bin/awk", "echo one\necho two\n"] and mounts == []


def test_other_heredocs_are_given_back_to_the_shell(tmp_path):
    argv, _ = command_argv(_run("RUN cat <<A > /a\nx\nA\n"), None, str(tmp_path))
    assert argv == ["/bin/sh", "-c", "cat <<A > /a\nx\nA"]

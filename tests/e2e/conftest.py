"""End-to-end builds: the real `executor` entry point, run in the sandbox (the machine's / read-only,
only the scratch root, kiln's directory and /tmp writable), against the rig's registries."""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest
import requests

from tests.rig.sandbox import run_sandboxed

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class BuildRun:
    returncode: int
    stdout: str
    stderr: str
    root: str
    kaniko_dir: str

    def check(self) -> "BuildRun":
        assert self.returncode == 0, f"executor failed ({self.returncode}):\n{self.stderr[-6000:]}"
        return self

    def errors(self) -> list[str]:
        """The messages of the error-level lines (`--log-format text`), unquoted."""
        return error_messages(self.stderr)

    def refused(self, *expected: str) -> str:
        """Assert a failed build that says why in exactly one error line holding every `expected` substring,
        with no Python traceback anywhere; -> that line's message."""
        tail = self.stderr[-4000:]
        assert self.returncode != 0, f"the build was expected to fail:\n{tail}"
        assert "Traceback (most recent call last)" not in self.stdout + self.stderr, tail
        errors = self.errors()
        assert len(errors) == 1, f"one error line expected, got {errors}:\n{tail}"
        missing = [e for e in expected if e not in errors[0]]
        assert not missing, f"the error line lacks {missing}: {errors[0]!r}"
        return errors[0]


class Kiln:
    """Runs `python -m executor` on a fresh scratch root per call."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory):
        self.tmp = tmp_path_factory

    def context(self, files: dict[str, str | bytes]) -> str:
        ctx = str(self.tmp.mktemp("ctx"))
        for name, content in files.items():
            path = os.path.join(ctx, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content.encode() if isinstance(content, str) else content)
        return ctx

    def build(self, context: str, *args: str, env: dict[str, str] | None = None, timeout: float = 600,
              docker_config: str | None = None, input_bytes: bytes | None = None,
              context_override: str | None = None, root_override: str | None = None,
              hosts: dict[str, str] | None = None) -> BuildRun:
        root = root_override or str(self.tmp.mktemp("root"))
        kdir = str(self.tmp.mktemp("kaniko"))
        argv = [sys.executable, "-m", "executor", "--context", context_override or context, "--root", root,
                "--kaniko-dir", kdir,
                "--log-format", "text", *args]
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("CI_REGISTRY", "DOCKER_CONFIG", "AWS_", "GOOGLE_", "AZURE_", "GCE_", "S3_",
                                         "KANIKO_", "STORAGE_EMULATOR"))}
        # no real cloud endpoint is ever reached: without a stand-in, the metadata services are off
        full_env.setdefault("AWS_EC2_METADATA_DISABLED", "true")
        full_env.setdefault("GCE_METADATA_HOST", "127.0.0.1:9")
        full_env["PYTHONPATH"] = REPO
        if docker_config:
            full_env["DOCKER_CONFIG"] = docker_config
        full_env.update(env or {})
        proc = run_sandboxed(argv, writable=[root, kdir, context], env=full_env, cwd=REPO, timeout=timeout,
                             input=input_bytes, hosts=hosts)
        out, err = (proc.stdout, proc.stderr) if input_bytes is None else (
            proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
        return BuildRun(proc.returncode, out, err, root, kdir)


@pytest.fixture(scope="session")
def kiln(tmp_path_factory: pytest.TempPathFactory) -> Kiln:
    return Kiln(tmp_path_factory)


_ERROR_LINE = re.compile(r'^time=\S+ level=(?:error|fatal|panic) msg=("(?:[^"\\]|\\.)*"|\S*)$')


def error_messages(stderr: str) -> list[str]:
    """The messages of kiln's error-level log lines in `--log-format text` (logrus: msg=strconv.Quote(text) or
    bare; Go's escapes are a subset of Python's string literal escapes)."""
    out = []
    for line in stderr.splitlines():
        m = _ERROR_LINE.match(line)
        if m:
            value = m.group(1)
            out.append(ast.literal_eval(value) if value.startswith('"') else value)
    return out


def registry_tags(registry, repo: str) -> list[str]:
    """The tags of `repo` from a plain or basic-auth registry's tags/list; [] for a repository that does not exist (404
    NAME_UNKNOWN). Any other answer is an error (a registry that is down is not "no tags")."""
    resp = requests.get(registry.url(f"/v2/{repo}/tags/list"), verify=registry.ca_path or True, timeout=30,
                        auth=(registry.username, registry.password) if registry.username else None)
    if resp.status_code == 404 and "NAME_UNKNOWN" in resp.text:
        return []
    assert resp.status_code == 200, f"tags/list of {repo}: {resp.status_code} {resp.text[:500]}"
    return resp.json().get("tags") or []


def skopeo_tags(registry, repo: str) -> list[str]:
    proc = subprocess.run(["skopeo", "list-tags", *registry.skopeo_args(""), f"docker://{registry.host}/{repo}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return []
    return json.loads(proc.stdout).get("Tags") or []

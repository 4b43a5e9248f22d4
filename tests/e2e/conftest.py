"""End-to-end builds: the real `executor` entry point, run in the sandbox (the machine's / read-only,
only the scratch root, kiln's directory and /tmp writable), against the rig's registries."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

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
              context_override: str | None = None, root_override: str | None = None) -> BuildRun:
        root = root_override or str(self.tmp.mktemp("root"))
        kdir = str(self.tmp.mktemp("kaniko"))
        argv = [sys.executable, "-m", "executor", "--context", context_override or context, "--root", root,
                "--kaniko-dir", kdir,
                "--log-format", "text", *args]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_REGISTRY", "DOCKER_CONFIG"))}
        full_env["PYTHONPATH"] = REPO
        if docker_config:
            full_env["DOCKER_CONFIG"] = docker_config
        full_env.update(env or {})
        proc = run_sandboxed(argv, writable=[root, kdir, context], env=full_env, cwd=REPO, timeout=timeout,
                             input=input_bytes)
        out, err = (proc.stdout, proc.stderr) if input_bytes is None else (
            proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
        return BuildRun(proc.returncode, out, err, root, kdir)


@pytest.fixture(scope="session")
def kiln(tmp_path_factory: pytest.TempPathFactory) -> Kiln:
    return Kiln(tmp_path_factory)


def skopeo_tags(registry, repo: str) -> list[str]:
    proc = subprocess.run(["skopeo", "list-tags", *registry.skopeo_args(""), f"docker://{registry.host}/{repo}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return []
    return json.loads(proc.stdout).get("Tags") or []

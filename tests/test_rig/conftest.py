"""Helpers local to the rig's own tests."""
from __future__ import annotations

import subprocess

import pytest


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr}")


@pytest.fixture(scope="session")
def tiny_layout(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An OCI layout (tag "tiny") with one small layer, made by GNU tar and umoci: "oci:PATH:tiny"."""
    base = tmp_path_factory.mktemp("tiny")
    root = base / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hello").write_text("hello from the rig\n")
    layer = base / "layer.tar"
    _run(["tar", "--sort=name", "--mtime=@1700000000", "--owner=0", "--group=0", "--numeric-owner",
          "-C", str(root), "-cf", str(layer), "etc"])
    layout = str(base / "layout")
    _run(["umoci", "init", "--layout", layout])
    _run(["umoci", "new", "--image", f"{layout}:tiny"])
    _run(["umoci", "raw", "add-layer", "--image", f"{layout}:tiny", str(layer)])
    return f"oci:{layout}:tiny"


def skopeo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"{proc.args} failed: {proc.stderr}"


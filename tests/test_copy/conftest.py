"""Fixtures of the COPY/ADD tests: a build context, an image root and a sentinel directory beside it."""
from __future__ import annotations

import os
from dataclasses import dataclass

import pytest


@dataclass
class Dirs:
    ctx: str       # build context (or a stage root)
    root: str      # image root being built
    sentinel: str  # beside the root: must never be written by a COPY


@pytest.fixture
def dirs(tmp_path) -> Dirs:
    d = Dirs(str(tmp_path / "ctx"), str(tmp_path / "root"), str(tmp_path / "host"))
    for p in (d.ctx, d.root, d.sentinel):
        os.mkdir(p)
    os.chmod(d.root, 0o755)
    return d


def xattr_unsupported(directory: str, name: str, value: bytes) -> str | None:
    """Why this machine cannot set and read back the xattr `name` on a file in `directory` (None: it can)."""
    probe = os.path.join(directory, ".xattr-probe")
    open(probe, "wb").close()
    try:
        os.setxattr(probe, name, value)
        if os.getxattr(probe, name) != value:
            return f"{name} set on a file in {directory} reads back differently"
    except OSError as exc:
        return f"{name} cannot be set and read on a file in {directory}: {exc}"
    finally:
        os.unlink(probe)
    return None


def _require_xattrs(directories: list[str], xattrs: dict[str, bytes]) -> None:
    for directory in directories:
        for name, value in xattrs.items():
            why = xattr_unsupported(directory, name, value)
            if why:
                pytest.skip(f"the machine cannot hold this xattr: {why}")


@pytest.fixture
def user_xattrs(dirs: Dirs) -> None:
    """Skip unless user.* xattrs can be set and read in the context and the root (probed up front, so that a
    test asserting on kiln's output never turns kiln's own failure into a skip)."""
    _require_xattrs([dirs.ctx, dirs.root], {"user.kiln-probe": b"1"})


@pytest.fixture
def file_capabilities(dirs: Dirs) -> None:
    """As user_xattrs, for security.capability too (needs CAP_SETFCAP)."""
    cap = bytes.fromhex("0100000200200000000000000000000000000000")
    _require_xattrs([dirs.ctx, dirs.root], {"user.kiln-probe": b"1", "security.capability": cap})

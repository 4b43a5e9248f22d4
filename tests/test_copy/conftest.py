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

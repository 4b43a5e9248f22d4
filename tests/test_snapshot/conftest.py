from __future__ import annotations

import os

import pytest

from snapshot import IgnoreList, Snapshotter


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    r.mkdir()
    return str(r)


@pytest.fixture
def work(tmp_path):
    w = tmp_path / "work"
    w.mkdir()
    return str(w)


@pytest.fixture
def snap(root, work):
    return Snapshotter(root, IgnoreList(root), work)


def make_snap(root: str, work: str, **kw) -> Snapshotter:
    extra = kw.pop("extra", ())
    return Snapshotter(root, IgnoreList(root, extra), work, **kw)

"""The change-detection walk split over forked walkers finds exactly what one walker finds, raises what a
walker met, and leaves no child behind."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

import pytest
from hypothesis import given, settings, strategies as st

from snapshot import IgnoreList, Snapshotter, SnapshotError, diff, parallel
from snapshot.diff import MODES, detect

from .test_property import apply_op

TOPS = ["usr", "etc", "var", "opt"]
paths = st.tuples(st.sampled_from(TOPS), st.lists(st.sampled_from(["s0", "s1", "s2", "f0", "f3", "n"]),
                                                  max_size=3)).map(lambda t: "/".join([t[0], *t[1]]))
op = st.one_of(
    st.tuples(st.just("write"), paths, st.binary(max_size=32)),
    st.tuples(st.just("rm"), paths),
    st.tuples(st.just("mkdir"), paths),
    st.tuples(st.just("symlink"), paths, st.sampled_from(["f0", "../s1", "nowhere"])),
    st.tuples(st.just("hardlink"), paths, paths),
    st.tuples(st.just("chmod"), paths, st.sampled_from([0o600, 0o755])),
    st.tuples(st.just("chown"), paths, st.integers(0, 2)),
    st.tuples(st.just("sneaky"), paths),
    st.tuples(st.just("recreate"), paths),
)


@contextlib.contextmanager
def any_size() -> "contextlib.Generator[None, None, None]":
    """Split even a small tree (the real threshold keeps small roots to one walker)."""
    saved = parallel.MIN_ENTRIES
    parallel.MIN_ENTRIES = 0
    try:
        yield
    finally:
        parallel.MIN_ENTRIES = saved


def _children() -> list[int]:
    with open(f"/proc/self/task/{os.getpid()}/children") as f:
        return [int(p) for p in f.read().split()]


def _summary(ch: diff.Changes) -> tuple:
    return (sorted(ch.changed), ch.deleted, sorted(ch.refreshed), sorted(ch.gone), sorted(ch.digests.items()),
            ch.walked)


@settings(max_examples=80, deadline=None)
@given(before=st.lists(op, max_size=10), after=st.lists(op, min_size=1, max_size=12),
       mode=st.sampled_from(MODES), workers=st.integers(2, 4))
def test_split_walk_finds_what_one_walker_finds(before: list, after: list, mode: str, workers: int) -> None:
    base = tempfile.mkdtemp(prefix="kiln-pwalk-")
    try:
        root, work = f"{base}/root", f"{base}/work"
        os.mkdir(root)
        os.mkdir(work)
        _big_tree(root)
        for o in before:
            apply_op(root, o)
        snap = Snapshotter(root, IgnoreList(root), work, mode=mode)
        snap.reindex()
        for o in after:
            apply_op(root, o)
        with any_size():
            one = detect(root, snap.ignore, snap.index, mode, workers=1)
            many = detect(root, snap.ignore, snap.index, mode, workers=workers)
        assert _summary(many) == _summary(one)
        assert many.hashed == one.hashed
        assert _children() == []
    finally:
        shutil.rmtree(base)


def _big_tree(root: str) -> None:
    for top in ("usr", "etc", "var", "opt"):
        for sub in range(3):
            d = f"{root}/{top}/s{sub}"
            os.makedirs(d)
            for i in range(5):
                with open(f"{d}/f{i}", "w") as f:
                    f.write(f"{top}{sub}{i}")


def test_the_layer_is_the_same_with_one_walker_or_several(tmp_path) -> None:
    blobs = []
    for workers in (1, 3):
        root, work = tmp_path / f"root{workers}", tmp_path / f"work{workers}"
        root.mkdir()
        work.mkdir()
        _big_tree(str(root))
        for p in (root / "usr" / "s1", root / "var" / "s0" / "f2", root / "opt" / "s2" / "f0"):
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
        snap = Snapshotter(str(root), IgnoreList(str(root)), str(work), epoch=0, walk_workers=workers)
        snap.reindex()
        (root / "etc" / "s2" / "new").write_text("new")
        (root / "usr" / "s0" / "f1").write_text("changed")
        shutil.rmtree(root / "var" / "s1")
        (root / "opt" / "s0" / "f3").unlink()
        with any_size():
            layer = snap.snapshot()
        assert layer is not None
        blobs.append((layer.digest, sorted(snap.last_changes.deleted)))
    assert blobs[0] == blobs[1]
    assert blobs[0][1] == ["opt/s0/f3", "var/s1"]


def test_a_walker_that_cannot_read_a_directory_fails_the_snapshot_naming_it(tmp_path, monkeypatch) -> None:
    root, work = tmp_path / "root", tmp_path / "work"
    root.mkdir()
    work.mkdir()
    _big_tree(str(root))
    snap = Snapshotter(str(root), IgnoreList(str(root)), str(work), walk_workers=4)
    snap.reindex()
    real_open = os.open
    parent = os.getpid()
    refused = {f"{root}/{top}/s1" for top in ("usr", "etc", "var", "opt")}

    def open_refusing(path, flags, *args, **kwargs):  # runs in every walker, the children too (fork)
        if path in refused and os.getpid() != parent:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(diff.os, "open", open_refusing)
    with any_size(), pytest.raises(SnapshotError) as err:
        snap.snapshot()
    message = str(err.value)
    assert message.startswith("snapshot: cannot read /") and "/s1: Permission denied" in message, message
    assert _children() == []


def test_children_are_ended_when_the_parents_own_part_fails(tmp_path, monkeypatch) -> None:
    root, work = tmp_path / "root", tmp_path / "work"
    root.mkdir()
    work.mkdir()
    _big_tree(str(root))
    snap = Snapshotter(str(root), IgnoreList(str(root)), str(work), walk_workers=3)
    snap.reindex()
    real_run = diff._Walker.run
    parent = os.getpid()
    started: list[int] = []
    real_start = parallel.Remote.start

    def start(walk, bucket):
        remote = real_start(walk, bucket)
        started.append(remote.pid)
        return remote

    def run(self, stack, limit=None):
        if os.getpid() == parent and limit is None:
            raise RuntimeError("the parent's part failed")
        return real_run(self, stack, limit)

    monkeypatch.setattr(parallel.Remote, "start", staticmethod(start))
    monkeypatch.setattr(diff._Walker, "run", run)
    with any_size(), pytest.raises(RuntimeError, match="the parent's part failed"):
        detect(str(root), snap.ignore, snap.index, "exact", workers=3)
    assert len(started) == 2
    assert _children() == []


def test_small_roots_and_one_cpu_use_one_walker(tmp_path, monkeypatch) -> None:
    root, work = tmp_path / "root", tmp_path / "work"
    root.mkdir()
    work.mkdir()
    _big_tree(str(root))
    snap = Snapshotter(str(root), IgnoreList(str(root)), str(work))
    snap.reindex()
    forks: list[int] = []
    monkeypatch.setattr(parallel.Remote, "start", staticmethod(lambda w, b: forks.append(1)))
    detect(str(root), snap.ignore, snap.index, "exact", workers=4)     # 60 entries: below MIN_ENTRIES
    with any_size():
        detect(str(root), snap.ignore, snap.index, "exact", workers=1)
        monkeypatch.setattr(parallel, "usable_cpus", lambda: 1)
        detect(str(root), snap.ignore, snap.index, "exact", workers=None)
    assert forks == []


def test_usable_cpus_follows_the_affinity() -> None:
    assert 1 <= parallel.usable_cpus() <= len(os.sched_getaffinity(0))

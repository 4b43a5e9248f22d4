"""The change-detection walk split across forked walkers (issue 17 item 4) gives the one-process walk's
result: compared directly on a tree of a few thousand paths changed in every way the walk distinguishes,
and through the whole of test_changes.py and the property test with the parallel walk forced on."""
from __future__ import annotations

import os
import signal
import shutil

import pytest

from snapshot import IgnoreList, Snapshotter, diff
from snapshot.diff import detect
from snapshot.reindex import reindexed

from .test_changes import *  # noqa: F401,F403 - run again below with the walk split across processes
from .test_changes import based, members  # noqa: F401
from .test_property import *  # noqa: F401,F403


@pytest.fixture(autouse=True)
def parallel_walk(monkeypatch):
    """Every walk of this module's tests (the imported ones too) runs on two processes, however small."""
    monkeypatch.setattr(diff, "PARALLEL_MIN_ENTRIES", 0)
    monkeypatch.setattr(diff, "default_workers", lambda: 2)
    forks = []
    real_fork = os.fork

    def counting_fork():
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", counting_fork)
    return forks


def _populate(root: str) -> None:
    for top in range(6):
        for sub in range(12):
            d = os.path.join(root, f"t{top}", f"s{sub}")
            os.makedirs(d)
            for f in range(40):
                with open(os.path.join(d, f"f{f}"), "w") as fh:
                    fh.write(f"{top}/{sub}/{f}\n")
            os.symlink(f"f{sub}", os.path.join(d, "link"))
    os.makedirs(os.path.join(root, "ignored", "x"))



def _indexed_root(tmp_path, ignored: list[str] | None = None, mode: str = "exact") -> tuple[str, Snapshotter]:
    """A populated root under tmp_path and a snapshotter that has indexed it."""
    root, work = str(tmp_path / "root"), str(tmp_path / "work")
    os.makedirs(root), os.makedirs(work)
    _populate(root)
    snap = Snapshotter(root, IgnoreList(root, ignored or []), work, mode=mode)
    snap.reindex()
    return root, snap

def _change(root: str) -> None:
    with open(os.path.join(root, "t0/s0/f0"), "w") as fh:
        fh.write("rewritten\n")
    os.chmod(os.path.join(root, "t1/s3/f7"), 0o600)
    os.unlink(os.path.join(root, "t2/s5/f9"))
    shutil.rmtree(os.path.join(root, "t3/s1"))
    shutil.rmtree(os.path.join(root, "t4/s2"))
    with open(os.path.join(root, "t4/s2"), "w") as fh:       # a directory became a file
        fh.write("file now\n")
    os.unlink(os.path.join(root, "t5/s0/f3"))
    os.makedirs(os.path.join(root, "t5/s0/f3/deep"))          # a file became a directory
    os.makedirs(os.path.join(root, "t6/new"))
    with open(os.path.join(root, "t6/new/a"), "w") as fh:
        fh.write("new\n")
    os.unlink(os.path.join(root, "t0/s11/link"))
    os.symlink("elsewhere", os.path.join(root, "t0/s11/link"))
    with open(os.path.join(root, "ignored/x/y"), "w") as fh:
        fh.write("never reported\n")


@pytest.mark.parametrize("mode", ["exact", "full", "redo", "time"])
@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_walk_equals_the_single_walk(tmp_path, parallel_walk, mode, workers):
    root, snap = _indexed_root(tmp_path, ["/ignored"], mode=mode)
    assert detect(root, snap.ignore, snap.index, mode, workers=workers, min_entries=0).walked == \
        len(snap.index.entries)
    assert not detect(root, snap.ignore, snap.index, mode, workers=workers, min_entries=0)
    _change(root)
    one = detect(root, snap.ignore, snap.index, mode, workers=1)
    before = len(parallel_walk)
    split = detect(root, snap.ignore, snap.index, mode, workers=workers, min_entries=0)
    assert len(parallel_walk) - before == workers - 1, "the walk did not fork"
    assert sorted(split.changed) == sorted(one.changed) and len(split.changed) == len(one.changed)
    assert split.deleted == one.deleted and split.gone == one.gone
    assert split.refreshed.keys() == one.refreshed.keys() and split.digests == one.digests
    assert (split.walked, split.hashed) == (one.walked, one.hashed)
    # what the change above must show, so that both walks agreeing is not both missing it
    assert {"t0/s0/f0", "t4/s2", "t5/s0/f3", "t5/s0/f3/deep", "t6", "t6/new", "t6/new/a"} <= set(one.changed)
    assert "t1/s3/f7" in one.changed or mode == "time"
    assert "t0/s11/link" in one.changed or mode in ("time", "redo")
    assert "t2/s5/f9" in one.deleted and "t3/s1" in one.deleted and "t3/s1/f0" not in one.deleted
    assert not any(p.startswith("ignored/x/") for p in one.changed)


def test_small_index_stays_in_one_process(tmp_path, parallel_walk):
    root, snap = _indexed_root(tmp_path)
    before = len(parallel_walk)
    detect(root, snap.ignore, snap.index, workers=2, min_entries=len(snap.index.entries) + 1)
    reindexed(root, snap.ignore, snap.index, False, workers=2, min_entries=len(snap.index.entries) + 1)
    assert len(parallel_walk) == before


def _fields(entries) -> dict:
    return {rel: (e.sig, e.dev, e.nlink, e.link, e.xattrs, e.digest, e.racy) for rel, e in entries.items()}


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_reindex_equals_the_single_walk(tmp_path, parallel_walk, full, workers):
    """A reindex split across walkers gives the one-process reindex's entries: from an empty index (every
    entry new), with nothing deleted (the walkers send only what is new), and with paths deleted (they send
    their paths too); kept entries are copies, never the old index's objects."""
    root, work = str(tmp_path / "root"), str(tmp_path / "work")
    os.makedirs(root), os.makedirs(work)
    _populate(root)
    os.link(os.path.join(root, "t0/s0/f1"), os.path.join(root, "t0/s0/hard"))
    snap = Snapshotter(root, IgnoreList(root, ["/ignored"]), work, mode="full" if full else "exact")
    empty = snap.index
    one = reindexed(root, snap.ignore, empty, full, workers=1)
    assert _fields(reindexed(root, snap.ignore, empty, full, workers=workers, min_entries=0)) == _fields(one)
    assert len(one) > 3000 and "ignored/x" not in one and one["t0/s0/hard"].nlink == 2
    snap.reindex()
    old = snap.index
    before = len(parallel_walk)
    split = reindexed(root, snap.ignore, old, full, workers=workers, min_entries=0)
    assert len(parallel_walk) - before == workers - 1, "the reindex did not fork"
    assert _fields(split) == _fields(reindexed(root, snap.ignore, old, full, workers=1))
    assert not set(map(id, split.values())) & set(map(id, old.entries.values()))
    _change(root)
    os.unlink(os.path.join(root, "t0/s0/hard"))                # the link count of t0/s0/f1 drops
    split = reindexed(root, snap.ignore, old, full, workers=workers, min_entries=0)
    single = reindexed(root, snap.ignore, old, full, workers=1)
    assert _fields(split) == _fields(single)
    assert "t2/s5/f9" not in single and "t6/new/a" in single and single["t0/s0/f1"].nlink == 1


def _children() -> list[int]:
    pids: list[int] = []
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    return pids


def test_split_walk_under_kilns_pid1_reaper(tmp_path, parallel_walk):
    """kiln as PID 1 reaps on SIGCHLD what it did not start for a RUN (executor/run/pid1.py): the walkers'
    ends neither get lost to it nor break it, and none is left behind."""
    from executor.run import pid1

    root, snap = _indexed_root(tmp_path)
    _change(root)
    one = detect(root, snap.ignore, snap.index, workers=1)
    before = _children()
    with pid1.supervise(subreaper=False):
        for _ in range(15):
            split = detect(root, snap.ignore, snap.index, workers=3, min_entries=0)
            assert (sorted(split.changed), split.deleted) == (sorted(one.changed), one.deleted)
            assert _fields(reindexed(root, snap.ignore, snap.index, False, workers=3, min_entries=0)) == \
                _fields(reindexed(root, snap.ignore, snap.index, False, workers=1))
    assert _children() == before


def test_sigterm_during_a_split_walk_cancels_it_and_leaves_no_walker(tmp_path, monkeypatch, parallel_walk):
    """A SIGTERM to kiln (PID 1) while the parent waits for a walker: the build is cancelled there and then,
    the walker, still busy, ends on the closed pipe, and it is reaped before the cancellation goes on."""
    import threading
    import time

    from executor.run import pid1

    root, snap = _indexed_root(tmp_path)
    _change(root)
    parent = os.getpid()
    real_forked = diff._Walk.forked

    def slow_forked(self):
        if os.getpid() != parent:
            time.sleep(1.0)          # the walker is busy when the signal comes
        real_forked(self)

    monkeypatch.setattr(diff._Walk, "forked", slow_forked)
    before = _children()
    timer = threading.Timer(0.3, os.kill, (parent, signal.SIGTERM))
    started = time.monotonic()
    with pid1.supervise(subreaper=False):
        timer.start()
        with pytest.raises(pid1.BuildCancelled) as cancelled:
            detect(root, snap.ignore, snap.index, workers=2, min_entries=0)
    elapsed = time.monotonic() - started
    timer.cancel()
    assert cancelled.value.signum == signal.SIGTERM
    assert parallel_walk, "the walk was not split"
    assert _children() == before
    # typical 1.0 s (the walker's sleep, then its end on the closed pipe); 10x margin against a hang
    assert elapsed < 10, elapsed

"""The change-detection walk on every core: forked walkers over disjoint parts of the tree.

The parent walks the root directory and the directories right below it itself (a few hundred entries),
then deals the directories found there among `n` walkers by how many indexed entries each holds (largest
first, to the walker with least so far). Every walker but one is a forked child: it has the index
copy-on-write (nothing is sent to it), walks its part with the same code as a single walker, and sends
back only what it found: changed paths, refreshed stats, digests, the directories it saw replaced, and
counts. The paths it saw, needed only when something was deleted, are sent when the parent asks.

A child only makes system calls, hashes and pickles: no logging, no locks that another thread of the
parent may have held at the fork. It leaves with `os._exit`, whatever happens; an exception it meets
(a directory it cannot read) is raised again in the parent. Children are killed if the parent's own part
fails or the build is cancelled meanwhile.

Why processes: the walk is Python work per entry (the GIL), so threads would not run it at once.
Measured on a tmpfs, 100,000 files, 2 CPUs: see bench/snapshot_bench.py (`walk` rows).
"""
from __future__ import annotations

import gc
import math
import os
import pickle
import signal
import struct
from typing import TYPE_CHECKING, Any

from . import progress

if TYPE_CHECKING:  # pragma: no cover
    from .diff import _Walker

MIN_ENTRIES = 20_000   # below this a walk takes < ~50 ms: a fork is not worth it
MAX_WORKERS = 8
_LEN = struct.Struct("!Q")
_sizes_cache: dict[int, tuple[int, dict[str, int]]] = {}   # id(index) -> (len at counting, sizes)


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota (a pod's limit)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def _subtree_sizes(index: Any) -> dict[str, int]:
    """Indexed entries below each directory of depth 1 and 2 ("usr", "usr/lib"). Counted once per
    index and again only when its size moved by more than a tenth: a hint for balancing, not a fact."""
    entries = index.entries
    cached = _sizes_cache.get(id(index))
    if cached is not None and abs(cached[0] - len(entries)) * 10 <= max(cached[0], 1):
        return cached[1]
    sizes: dict[str, int] = {}
    get = sizes.get
    for rel in entries:
        first, sep, rest = rel.partition("/")
        if not sep:
            continue
        sizes[first] = get(first, 0) + 1
        second, sep, _ = rest.partition("/")
        if sep:
            key = f"{first}/{second}"
            sizes[key] = get(key, 0) + 1
    _sizes_cache.clear()             # one index at a time is walked
    _sizes_cache[id(index)] = (len(entries), sizes)
    return sizes


def _deal(items: list[tuple[str, bool]], sizes: dict[str, int], n: int) -> list[list[tuple[str, bool]]]:
    """Longest first to the least loaded of `n` buckets; each bucket keeps the walk's stack order."""
    buckets: list[list[tuple[str, bool]]] = [[] for _ in range(n)]
    load = [0] * n
    for item in sorted(items, key=lambda it: -sizes.get(it[0], 1)):
        i = load.index(min(load))
        buckets[i].append(item)
        load[i] += sizes.get(item[0], 1)
    order = {it: k for k, it in enumerate(items)}
    for b in buckets:
        b.sort(key=order.__getitem__)
    return buckets


def walk_split(walk: "_Walker", stack: list[tuple[str, bool]], workers: int | None) -> list["Remote"]:
    """Start forked walkers over part of `stack` (the directories below the root) and leave the rest
    on `stack` for the caller. Returns the children, [] when one walker is best."""
    n = min(usable_cpus() if workers is None else workers, MAX_WORKERS)
    if n <= 1 or len(walk.index.entries) < MIN_ENTRIES or not stack:
        return []
    sizes = _subtree_sizes(walk.index)
    # one level further down so that one big directory (usr) does not make one walker do most of it
    total = sum(sizes.get(rel, 1) for rel, _ in stack)
    items: list[tuple[str, bool]] = []
    for item in list(stack):
        if sizes.get(item[0], 1) * n > total and not item[1]:
            sub = [item]
            walk.run(sub, limit=1)      # its own entries here; its subdirectories on `sub`
            items.extend(sub)
        else:
            items.append(item)
    if len(items) < 2:
        stack[:] = items
        return []
    buckets = [b for b in _deal(items, sizes, n) if b]
    stack[:] = buckets[0]
    started: list[Remote] = []
    try:
        for bucket in buckets[1:]:
            started.append(Remote.start(walk, bucket))
    except BaseException:
        for r in started:
            r.kill()
        raise
    return started


class Remote:
    """A forked walker: its results arrive on a pipe; `rels()` asks for the paths it saw."""

    def __init__(self, pid: int, result_fd: int, control_fd: int) -> None:
        self.pid = pid
        self._result_fd = result_fd
        self._control_fd = control_fd
        self.matched = 0
        self.walked = 0
        self._done = False

    @classmethod
    def start(cls, walk: "_Walker", bucket: list[tuple[str, bool]]) -> "Remote":
        result_r, result_w = os.pipe()
        control_r, control_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child; its work is checked through the parent
            code = 0
            try:
                os.close(result_r)
                os.close(control_w)
                _child(walk, bucket, result_w, control_r)
            except BaseException:  # noqa: BLE001 - the parent learns of it from the missing result
                code = 1
            finally:
                os._exit(code)
        os.close(result_w)
        os.close(control_r)
        return cls(pid, result_r, control_w)

    def merge_into(self, walk: "_Walker") -> None:
        """Wait for the child's findings and add them to `walk`'s."""
        status, payload = _receive(self._result_fd, self.pid)
        if status == "error":
            self.kill()
            raise payload
        changed, refreshed, digests, hashed, replaced, matched, walked = payload
        ch = walk.ch
        ch.changed.extend(changed)
        ch.refreshed.update(refreshed)
        ch.digests.update(digests)
        ch.hashed += hashed
        walk.replaced |= replaced
        self.matched = matched
        self.walked = walked

    def rels(self) -> list[str]:
        """The paths the child saw (asked only when something was deleted); the child then ends."""
        os.write(self._control_fd, b"r")
        _, rels = _receive(self._result_fd, self.pid)
        self.close()
        return rels

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            os.write(self._control_fd, b"q")
        except OSError:
            pass
        os.close(self._control_fd)
        os.close(self._result_fd)
        _reap(self.pid)

    def kill(self) -> None:
        if self._done:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.close()


def _child(walk: "_Walker", bucket: list[tuple[str, bool]], out: int, control: int) -> None:  # pragma: no cover
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    gc.disable()                       # no collector walking (and so copying) the parent's objects
    progress.listener = None           # the parent reports progress
    ch = type(walk.ch)()
    walk.ch = ch
    walk.rels = []
    walk.matched = 0
    walk.replaced = set()
    try:
        walk.run(list(bucket))
    except Exception as e:  # noqa: BLE001 - raised again in the parent
        _send(out, ("error", e))
        return
    _send(out, ("ok", (ch.changed, ch.refreshed, ch.digests, ch.hashed, walk.replaced, walk.matched,
                       len(walk.rels))))
    if os.read(control, 1) == b"r":
        _send(out, ("ok", walk.rels))


def _send(fd: int, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_LEN.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int, pid: int) -> bytes:
    parts = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise OSError(f"snapshot walker {pid} ended without its result")
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _receive(fd: int, pid: int) -> tuple[str, Any]:
    (size,) = _LEN.unpack(_read_exact(fd, _LEN.size, pid))
    return pickle.loads(_read_exact(fd, size, pid))


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # collected by a PID 1 reaper meanwhile: the result came through the pipe anyway

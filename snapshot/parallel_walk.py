"""The change-detection walk on several cores (issue 17 item 4): forked walkers over subtrees.

The top levels of the root are scanned in this process until there are enough subtrees to share (16 per
walker, or four levels). Their numbers go into a pipe that every walker, this process included, reads a
few bytes at a time (a read of at most PIPE_BUF bytes is atomic): whoever is free takes the next subtree,
so a big subtree on one side does not leave the other idle. A forked walker reads the index as the fork
left it (copy-on-write: nothing is sent to it), runs with the garbage collector off (a collection would
touch, and so copy, every object of the parent) and without progress reports or logging (another thread
of the parent may have held their locks at the fork). It sends back what it found changed, refreshed and
hashed (or, for a reindex, the entries that are new) and how many indexed paths it saw; only when the counts
show that something was deleted does this process ask for its list of paths, to work out which. Its exception, if any, is sent back and raised here.
A walker that cannot send (this process gave up) gets EPIPE and exits. Every walker is reaped before
returning.

Why processes: the walk is `scandir` and `lstat` driven from Python, which holds the GIL between system
calls; threads would take turns. The fork of a kiln process holding a 100k-path index costs a few
milliseconds. `fork` while other threads run (downloads, early uploads) is safe for what the walker does:
system calls, the index's plain objects, xxhash, pickle; glibc's malloc stays usable after a fork.
"""
from __future__ import annotations

import gc
import os
import pickle
import signal
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, Protocol

    class _Walk(Protocol):
        """What a walk shares with its forked walkers (diff._Walk, snapshotter._Reindex)."""

        def scan(self, rel_dir: str, fresh: bool, stack: list[tuple[str, bool]]) -> None: ...
        def run(self, stack: list[tuple[str, bool]]) -> None: ...
        def forked(self) -> None: ...             # in a walker: start empty, report no progress
        def report(self) -> Any: ...              # in a walker: what it found, picklable
        def merge(self, report: Any) -> None: ...
        def paths_needed(self) -> bool: ...       # after the merges: were paths deleted?
        def paths(self) -> list[str]: ...         # in a walker: every path it saw
        def add_paths(self, paths: list[str]) -> None: ...

_TASK = struct.Struct("=I")
_LEN = struct.Struct("=Q")
_MAX_TASKS = 8192          # subtree numbers in the pipe at once (4 bytes each: within a 64 KiB pipe buffer)


def walk_in_parallel(walk: "_Walk", workers: int) -> None:
    level: list[tuple[str, bool]] = [("", False)]
    for _ in range(4):
        below: list[tuple[str, bool]] = []
        for rel_dir, fresh in level:
            walk.scan(rel_dir, fresh, below)
        level = below
        if len(level) >= 16 * workers or not level:
            break
    if len(level) < 2:
        walk.run(level)
        return
    per_task = -(-len(level) // _MAX_TASKS)
    tasks = [level[i:i + per_task] for i in range(0, len(level), per_task)]
    task_r, task_w = os.pipe()
    try:
        os.write(task_w, b"".join(_TASK.pack(i) for i in range(len(tasks))))
    finally:
        os.close(task_w)            # drained, the pipe then reads as EOF in every walker
    children: list[tuple[int, int, int]] = []   # pid, result pipe (read end), command pipe (write end)
    try:
        for _ in range(workers - 1):
            res_r, res_w = os.pipe()
            cmd_r, cmd_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - measured by the tests through its results
                # the parent's ends of this walker's pipes and of the earlier walkers' are not ours: held
                # here, they would keep a walker waiting for a command the parent never sends from seeing EOF
                for fd in [res_r, cmd_w, *(end for _, r, w in children for end in (r, w))]:
                    os.close(fd)
                _child(walk, tasks, task_r, res_w, cmd_r)
            os.close(res_w)
            os.close(cmd_r)
            children.append((pid, res_r, cmd_w))
        _take_tasks(walk, tasks, task_r)
        errors: list[BaseException] = []
        results = []
        for _, res_r, _ in children:
            kind, result = pickle.loads(_receive(res_r))
            if kind == "error":
                errors.append(result)
            else:
                results.append(result)
        if errors:
            raise errors[0]
        for result in results:
            walk.merge(result)
        want_paths = walk.paths_needed()
        for _, res_r, cmd_w in children:
            os.write(cmd_w, b"p" if want_paths else b"q")
            if want_paths:
                walk.add_paths(pickle.loads(_receive(res_r)))
    finally:
        os.close(task_r)
        for pid, res_r, cmd_w in children:
            os.close(res_r)
            os.close(cmd_w)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass    # a reaper of the process (kiln as PID 1: executor/run/pid1.py) collected it first


def _child(walk: "_Walk", tasks: list[list[tuple[str, bool]]], task_r: int, res_w: int, cmd_r: int) -> None:
    code = 0
    try:
        # a signal ends a walker at once: the parent's handlers (cancel hooks) are the parent's business
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        gc.disable()
        walk.forked()
        try:
            _take_tasks(walk, tasks, task_r)
            message = pickle.dumps(("ok", walk.report()), protocol=5)
        except BaseException as e:  # noqa: BLE001 - the parent raises it
            message = pickle.dumps(("error", e), protocol=5)
        _send(res_w, message)
        if os.read(cmd_r, 1) == b"p":
            _send(res_w, pickle.dumps(walk.paths(), protocol=5))
    except BaseException:  # noqa: BLE001 - the parent gave up (EPIPE) or the pickle failed: nothing to do
        code = 1
    finally:
        os._exit(code)


def _take_tasks(walk: "_Walk", tasks: list[list[tuple[str, bool]]], task_r: int) -> None:
    while True:
        data = os.read(task_r, _TASK.size)
        if not data:
            return
        stack = list(tasks[_TASK.unpack(data)[0]])
        walk.run(stack)


def _send(fd: int, data: bytes) -> None:
    view = memoryview(_LEN.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _receive(fd: int) -> bytes:
    head = _read_exactly(fd, _LEN.size)
    return _read_exactly(fd, _LEN.unpack(head)[0])


def _read_exactly(fd: int, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        data = os.read(fd, min(n - got, 1 << 20))
        if not data:
            raise OSError(f"snapshot walker ended before sending its result ({got} of {n} bytes)")
        parts.append(data)
        got += len(data)
    return b"".join(parts)

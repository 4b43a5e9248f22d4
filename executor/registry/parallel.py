"""Running blob transfers in parallel without holding up a cancelled build.

`concurrent.futures.ThreadPoolExecutor` joins its workers on leaving its block and again at interpreter
exit, so a SIGTERM (raised as BuildCancelled in the main thread) waited for every stalled upload or
download to time out (300 s) before kiln could exit. Here the workers are daemon threads: when the
waiting thread is interrupted, no further item starts, nobody waits for the ones in flight, and the
process can exit at once. A transfer in flight then still runs to its end (a blob may land in the
repository, untagged: no manifest follows); `abandoned()` tells it so that it does not report success.
"""
from __future__ import annotations

import threading
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_worker = threading.local()     # .stop: the Event of the run_parallel this thread works for


def abandoned() -> bool:
    """True in a transfer thread whose caller stopped waiting for it (the build was cancelled)."""
    stop = getattr(_worker, "stop", None)
    return stop is not None and stop.is_set()


def run_parallel(fn: Callable[[T], R], items: Iterable[T], jobs: int, name: str = "kiln-transfer") -> list[R]:
    """fn over items in up to `jobs` daemon threads; results in order. The first failure is raised once
    every started item has ended; an exception in the waiting thread (a signal) stops the rest at once."""
    todo = list(items)
    if jobs <= 1 or len(todo) <= 1:
        return [fn(item) for item in todo]
    results: list[R | None] = [None] * len(todo)
    errors: list[BaseException] = []
    lock = threading.Lock()
    stop = threading.Event()
    done = threading.Event()
    state = {"next": 0, "running": min(jobs, len(todo))}

    def worker() -> None:
        _worker.stop = stop
        try:
            while not stop.is_set():
                with lock:
                    if errors or state["next"] >= len(todo):
                        return
                    i = state["next"]
                    state["next"] += 1
                try:
                    results[i] = fn(todo[i])
                except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
                    with lock:
                        errors.append(e)
                    return
        finally:
            with lock:
                state["running"] -= 1
                if state["running"] == 0:
                    done.set()

    for n in range(state["running"]):
        threading.Thread(target=worker, name=f"{name}-{n}", daemon=True).start()
    try:
        while not done.wait(0.2):
            pass
    except BaseException:
        stop.set()   # interrupted (BuildCancelled, KeyboardInterrupt): start nothing more, wait for nothing
        raise
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]

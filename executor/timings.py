"""Where one executor run spends its time, by phase: kaniko's pkg/timing, printed at `--verbosity debug`.

kaniko sums the time of named categories ("Total Build Time", "FS Unpacking", "Command: ...", "Total Push
Time") and writes them as JSON to $BENCHMARK_FILE (cmd/executor/cmd/root.go). kiln keeps the same kind of
table for the fixed costs issue 21 is about: the interpreter's start-up and kiln's imports (measured from the
process's start time in /proc, the only clock that predates the interpreter), the engine's imports, the
preflight (registry ping, push permission), the build context, the build, the push; the build report adds
each step, pull, extraction, snapshot walk and upload (executor.engine.report). Categories that run
concurrently (pulls, uploads) are summed per category, as kaniko's are, so they can add up to more than the
wall time. `$BENCHMARK_FILE` gets the categories as a JSON object of nanoseconds, as kaniko writes it.

Per process (one build per executor process); no kiln import (it is loaded first, to time the others).
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Iterator

#: when kiln's first module was imported: the interpreter's start-up ends here, kiln's imports begin
STARTED = time.perf_counter()

_lock = threading.Lock()
_categories: dict[str, float] = {}


def process_age() -> float | None:
    """Seconds since this process started (the kernel's start time, in clock ticks since boot), or None
    where /proc says nothing. Resolution: one clock tick (10 ms on most kernels)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[19])          # field 22 of stat(5); fields[0] is field 3 (state)
        return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def add(category: str, seconds: float) -> None:
    with _lock:
        _categories[category] = _categories.get(category, 0.0) + max(0.0, seconds)


@contextlib.contextmanager
def phase(category: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        add(category, time.perf_counter() - start)


def record_startup() -> None:
    """The interpreter's start-up (process start to kiln's first import) and kiln's imports until now."""
    if "Start-up: kiln imports" in categories():
        return          # once per process (tests call the entry point more than once)
    now = time.perf_counter()
    age = process_age()
    if age is not None:
        add("Start-up: interpreter", age - (now - STARTED))
    add("Start-up: kiln imports", now - STARTED)


def categories() -> dict[str, float]:
    with _lock:
        return dict(_categories)


def summary() -> list[str]:
    """One line per category, in the order they first appeared: "Total Build Time: 0.312s"."""
    return [f"{name}: {seconds:.3f}s" for name, seconds in categories().items()]


def report(log: logging.Logger) -> None:
    """The table at debug level, and $BENCHMARK_FILE when set (kaniko's "false" turns it off)."""
    if log.isEnabledFor(logging.DEBUG):
        for line in summary():
            log.debug("Timing: %s", line)
    path = os.environ.get("BENCHMARK_FILE", "")
    if path and path != "false":
        if "://" in path:
            log.warning("BENCHMARK_FILE %s: kiln writes the timings to a local file only", path)
            return
        import json

        try:
            with open(path, "w") as f:
                json.dump({k: round(v * 1e9) for k, v in categories().items()}, f)
            log.info("Benchmark file written at %s", path)
        except OSError as e:
            log.warning("Unable to write benchmark file %s: %s", path, e)


def reset() -> None:
    with _lock:
        _categories.clear()

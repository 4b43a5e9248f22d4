"""What a build is doing, as events: steps, pulls, extraction, snapshot walks, pushes.

Producers call `emit(kind, **fields)` or run a `Task` (bytes or entries with a known or unknown total);
subscribers (`subscribe(fn)`) get every `Event`. Nobody listening costs one list check. Renderers
(`executor.engine.report`) show the events live on a terminal, one line per step in CI, or as JSON lines;
the build report (`--metadata-file`) is a subscriber too.

Event kinds and their fields:
  build.start   total_steps
  stage.start   stage, base
  step.start    number, total, stage, instruction
  step.end      number, stage, instruction, seconds, cache ("hit", "miss" or "" without --cache),
                layer ({"digest", "size", "mediaType"} or None)
  task.start    id, task ("pull", "extract", "walk", "upload", "push"), name, total (None: unknown)
  task.progress id, done, total
  task.end      id, done, seconds, error ("" when it worked)
  push.done     destination, digest, uploaded, mounted, existed, bytes_uploaded, bytes_mounted,
                bytes_existed
  build.end     digest, seconds
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Event", "Task", "emit", "subscribe", "unsubscribe", "listening"]


@dataclass(frozen=True)
class Event:
    """One progress event: its kind (listed in the module docstring), when it happened, and its fields; every
    subscriber gets each one."""
    kind: str
    time: float                      # time.time()
    fields: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


Subscriber = Callable[[Event], None]
_subscribers: list[Subscriber] = []
_lock = threading.Lock()
_ids = itertools.count(1)


def subscribe(fn: Subscriber) -> None:
    with _lock:
        _subscribers.append(fn)


def unsubscribe(fn: Subscriber) -> None:
    with _lock:
        if fn in _subscribers:
            _subscribers.remove(fn)


def listening() -> bool:
    return bool(_subscribers)


def emit(kind: str, **fields: Any) -> None:
    if not _subscribers:
        return
    event = Event(kind, time.time(), fields)
    for fn in list(_subscribers):
        try:
            fn(event)
        except Exception:          # a display or report problem never breaks a build
            import logging
            logging.getLogger(__name__).debug("progress subscriber %r failed on %s", fn, kind, exc_info=True)


class Task:
    """One long operation with a byte (or entry) count: `with Task("pull", digest, total) as t: t.advance(n)`.
    Progress events are sent at most every `interval` seconds; the end event always."""

    def __init__(self, task: str, name: str, total: int | None = None, interval: float = 0.1):
        self.id = next(_ids)
        self.task, self.name, self.total = task, name, total
        self.done = 0
        self.interval = interval
        self._last = 0.0
        self._start = time.monotonic()
        self._ended = False

    def __enter__(self) -> "Task":
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.end(error=str(exc) if exc is not None else "")

    def start(self) -> "Task":
        emit("task.start", id=self.id, task=self.task, name=self.name, total=self.total)
        return self

    def advance(self, n: int) -> None:
        self.update(self.done + n)

    def update(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            emit("task.progress", id=self.id, done=self.done, total=self.total)

    def end(self, error: str = "") -> None:
        if self._ended:
            return
        self._ended = True
        emit("task.end", id=self.id, done=self.done, total=self.total,
             seconds=time.monotonic() - self._start, error=error)


class CountingReader:
    """A file object that shows how far `inner` has been read in `task` (uploads; a retry opens a new one
    and starts again from its position, a chunked upload's seek moves it)."""

    def __init__(self, inner: Any, task: Task):
        self._inner, self._task = inner, task
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        try:
            self._pos = self._inner.tell()
        except (AttributeError, OSError, ValueError):
            self._pos += len(data)
        self._task.update(self._pos)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> "CountingReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._inner.close()

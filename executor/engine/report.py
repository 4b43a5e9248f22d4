"""The build report: what each step did and cost, what each push sent, gathered from the progress events
(`executor.progress`) while the build runs. It is kiln's part of the metadata file (`kiln.build`), the summary
table at the end, and the steps and layers of `--provenance=mode=max`.

`observe(opts)` wires a build's observers for its duration: the report, the renderer `--progress` asks for
(`executor.engine.console`), and the bridge that turns the filesystem engine's ticks (`snapshot.progress`:
extraction, snapshot walks) into progress tasks.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator, TextIO

from executor import progress, timings
from snapshot import progress as fs_progress


@dataclass
class StepReport:
    """One step of the build report, filled from the progress events: what ran, how long it took, cache hit or miss,
    its layer and the layer chain after it."""
    number: int
    stage: str
    instruction: str
    keyword: str = ""
    start_line: int = 0
    end_line: int = 0
    seconds: float = 0.0
    cache: str = ""                 # "hit", "miss", "" (no --cache)
    layer: dict | None = None       # {"digest", "size", "mediaType"}
    chain: list[dict] = field(default_factory=list)   # the image's layer descriptors after the step
    network: bool = False

    def to_dict(self) -> dict:
        return {"number": self.number, "stage": self.stage, "instruction": self.instruction,
                "seconds": round(self.seconds, 3), "cache": self.cache or "none",
                "layer": ({"digest": self.layer["digest"], "size": self.layer["size"]} if self.layer else None)}


@dataclass
class PushReport:
    """What went into one repository (the image, and with attestations its attestation manifest and index)."""
    repository: str
    digests: list[str] = field(default_factory=list)
    uploaded: int = 0
    mounted: int = 0
    existed: int = 0
    bytes_uploaded: int = 0
    bytes_mounted: int = 0
    bytes_existed: int = 0

    def add(self, event: progress.Event) -> None:
        self.digests.append(event["digest"])
        for key in ("uploaded", "mounted", "existed", "bytes_uploaded", "bytes_mounted", "bytes_existed"):
            setattr(self, key, getattr(self, key) + event[key])

    def to_dict(self) -> dict:
        return {"repository": self.repository, "manifests": list(self.digests),
                "blobs": {"uploaded": self.uploaded, "mounted": self.mounted, "skipped": self.existed},
                "bytes": {"uploaded": self.bytes_uploaded, "mounted": self.bytes_mounted,
                          "skipped": self.bytes_existed}}


def rfc3339(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class BuildReport:
    """A progress subscriber that keeps what the metadata file, the summary and the provenance need."""

    def __init__(self) -> None:
        self.started = time.time()
        self.finished: float | None = None
        self.total_steps = 0
        self.steps: list[StepReport] = []
        self.pushes: list[PushReport] = []
        self.pulled_bytes = 0
        self.digest = ""
        self._lock = threading.Lock()

    def __call__(self, event: progress.Event) -> None:
        with self._lock:
            kind = event.kind
            if kind == "build.start":
                self.total_steps = event["total_steps"]
            elif kind == "step.end":
                self.steps.append(StepReport(
                    number=event["number"], stage=event["stage"], instruction=event["instruction"],
                    keyword=event.get("keyword", ""), start_line=event.get("start_line", 0),
                    end_line=event.get("end_line", 0), seconds=event["seconds"], cache=event.get("cache", ""),
                    layer=event.get("layer"), chain=list(event.get("chain") or []),
                    network=bool(event.get("network"))))
            elif kind == "push.done":
                repo = event.get("repository") or event["destination"]
                entry = next((p for p in self.pushes if p.repository == repo), None)
                if entry is None:
                    entry = PushReport(repo)
                    self.pushes.append(entry)
                entry.add(event)
            elif kind == "task.end" and event.get("task") == "pull":
                self.pulled_bytes += event.get("done") or 0
            elif kind == "build.end":
                self.digest = event.get("digest", "")

    def finish(self) -> None:
        if self.finished is None:
            self.finished = time.time()

    @property
    def cache_hits(self) -> int:
        return sum(1 for s in self.steps if s.cache == "hit")

    def to_dict(self) -> dict:
        """kiln's build report in the metadata file (`kiln.build`)."""
        finished = self.finished or time.time()
        return {"started": rfc3339(self.started), "finished": rfc3339(finished),
                "seconds": round(finished - self.started, 3),
                "steps": [s.to_dict() for s in self.steps],
                "cache": {"hits": self.cache_hits, "misses": sum(1 for s in self.steps if s.cache == "miss")},
                "pushes": [p.to_dict() for p in self.pushes]}


class _FsBridge:
    """snapshot.progress ticks -> progress tasks (one per extraction or walk)."""

    def __init__(self) -> None:
        self.tasks: dict[tuple[str, str], progress.Task] = {}
        self.lock = threading.Lock()

    def __call__(self, kind: str, name: str, done: int, total: int | None) -> None:
        key = (kind, name)
        with self.lock:
            task = self.tasks.get(key)
            if task is None:
                task = self.tasks[key] = progress.Task(kind, name, total if kind == "extract" else None).start()
        task.update(done)
        if total is not None and done >= total:
            with self.lock:
                self.tasks.pop(key, None)
            task.end()


class _Timings:
    """Progress events -> the per-phase timings (executor.timings) kaniko's categories resemble: each step
    ("Command: ..."), and the summed time of pulls, extractions, snapshot walks and uploads."""

    CATEGORIES = {"pull": "Pulling blobs", "extract": "FS Unpacking", "walk": "Walking filesystem",
                  "upload": "Uploading blobs"}

    def __init__(self) -> None:
        self.kinds: dict[int, str] = {}
        self.lock = threading.Lock()

    def __call__(self, event: progress.Event) -> None:
        if event.kind == "step.end":
            timings.add(f"Command: {event['instruction'][:80]}", event["seconds"])
        elif event.kind == "task.start":
            with self.lock:
                self.kinds[event["id"]] = event["task"]
        elif event.kind == "task.end":
            with self.lock:
                kind = self.kinds.pop(event["id"], "")
            timings.add(self.CATEGORIES.get(kind, kind or "other tasks"), event.get("seconds") or 0.0)


def progress_mode(progress_flag: str, log_format: str) -> str:
    """--progress=auto with --log-format=json is json: a log that is JSON lines stays JSON lines."""
    return "json" if progress_flag == "auto" and log_format == "json" else progress_flag


@contextlib.contextmanager
def observe(mode: str, stream: TextIO | None = None, env: dict[str, str] | None = None) -> Iterator[BuildReport]:
    """Collect the report and show progress as `mode` (auto, tty, plain, json) asks, for the duration."""
    from executor.engine.console import make_renderer

    stream = stream or sys.stderr
    report = BuildReport()
    renderer = make_renderer(mode, stream, dict(os.environ) if env is None else env)
    progress.subscribe(report)
    timer = _Timings()
    progress.subscribe(timer)
    if renderer is not None:
        progress.subscribe(renderer)
    fs_progress.listener = _FsBridge()
    try:
        yield report
    finally:
        report.finish()
        fs_progress.listener = None
        progress.unsubscribe(report)
        progress.unsubscribe(timer)
        if renderer is not None:
            progress.unsubscribe(renderer)
            renderer.close(report)


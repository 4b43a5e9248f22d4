"""Progress people can read (`--progress`), drawn from the progress events (`executor.progress`).

* tty: a live area at the bottom of the terminal, redrawn a few times a second: the step counter and the
  instruction, then one line per transfer or filesystem operation in flight (bytes done, total, rate, ETA).
  kiln's log lines (and RUN output) scroll above it: the log handler writes through the renderer.
* plain: one line per step when it ends, with its duration, cache result and layer; one per transfer of a
  MiB or more. With GITLAB_CI set, each step is a collapsible section of the job log (GitLab's
  `section_start:<unix time>:<name>[collapsed=true]` / `section_end:` markers), its log lines inside.
* json: every event as one JSON object a line; the log lines become JSON too (logrus' JSON format), so
  every line of stderr parses.
At the end (tty, plain) a summary table: each step, its time, cache result and layer size, and the image digest.
"""
from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from typing import Any, TextIO

from executor import logs, progress

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


def human_bytes(n: float) -> str:
    if n >= GIB:
        return f"{n / GIB:.2f} GiB"
    if n >= MIB:
        return f"{n / MIB:.1f} MiB"
    if n >= KIB:
        return f"{n / KIB:.1f} KiB"
    return f"{int(n)} B"


def human_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f}s"
    m, s = divmod(int(s), 60)
    return f"{m}m{s:02d}s"


def short_digest(d: str) -> str:
    return d.split(":", 1)[-1][:12] if d else ""


def _kiln_handler() -> logging.Handler | None:
    for h in logging.getLogger().handlers:
        if h.get_name() == "kiln":
            return h
    return None


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def make_renderer(mode: str, stream: TextIO, env: dict[str, str]) -> "Renderer | None":
    if mode == "auto":
        mode = "tty" if _is_tty(stream) and env.get("TERM", "") != "dumb" else "plain"
    if mode == "tty":
        return TtyRenderer(stream)
    if mode == "plain":
        return PlainRenderer(stream, gitlab=bool(env.get("GITLAB_CI")))
    if mode == "json":
        return JsonRenderer(stream)
    return None


def summary_lines(report: Any) -> list[str]:
    """The table at the end of a build."""
    rows = [("#", "STAGE", "INSTRUCTION", "TIME", "CACHE", "LAYER", "SIZE")]
    for s in report.steps:
        text = s.instruction.splitlines()[0] if s.instruction else ""
        rows.append((str(s.number), s.stage, text if len(text) <= 48 else text[:45] + "...",
                     human_seconds(s.seconds), s.cache or "-", short_digest(s.layer["digest"]) if s.layer else "-",
                     human_bytes(s.layer["size"]) if s.layer else "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) if i < len(widths) - 1 else cell for i, cell in enumerate(r)).rstrip()
             for r in rows]
    layers = sum(s.layer["size"] for s in report.steps if s.layer)
    finished = report.finished or time.time()
    tail = (f"{len(report.steps)} steps in {human_seconds(finished - report.started)}, "
            f"{report.cache_hits} cache hits, {human_bytes(layers)} of new layers")
    for p in report.pushes:
        tail += (f"; pushed {p.repository}: {human_bytes(p.bytes_uploaded)} uploaded, "
                 f"{human_bytes(p.bytes_mounted)} mounted, {human_bytes(p.bytes_existed)} already there")
    lines.append(tail)
    if report.digest:
        lines.append(f"image {report.digest}")
    return lines


class Renderer:
    def __init__(self, stream: TextIO):
        self.stream = stream
        self.lock = threading.RLock()

    def __call__(self, event: progress.Event) -> None:
        raise NotImplementedError

    def write(self, text: str) -> None:
        with self.lock:
            self.stream.write(text)
            self.stream.flush()

    def close(self, report: Any) -> None:
        pass


class PlainRenderer(Renderer):
    def __init__(self, stream: TextIO, gitlab: bool = False):
        super().__init__(stream)
        self.gitlab = gitlab
        self.total = 0
        self.tasks: dict[int, dict] = {}

    def __call__(self, event: progress.Event) -> None:
        kind = event.kind
        if kind == "build.start":
            self.total = event["total_steps"]
        elif kind == "step.start":
            self.total = max(self.total, event["number"])
            if self.gitlab:
                self.write(f"\x1b[0Ksection_start:{int(event.time)}:kiln_step_{event['number']}[collapsed=true]"
                           f"\r\x1b[0K{self._title(event)}\n")
        elif kind == "step.end":
            cache = {"hit": ", cached", "miss": ", cache miss"}.get(event.get("cache", ""), "")
            layer = event.get("layer")
            what = f", layer {short_digest(layer['digest'])} {human_bytes(layer['size'])}" if layer else ""
            self.write(f"{self._title(event)}: done in {human_seconds(event['seconds'])}{cache}{what}\n")
            if self.gitlab:
                self.write(f"\x1b[0Ksection_end:{int(event.time)}:kiln_step_{event['number']}\r\x1b[0K\n")
        elif kind == "task.start":
            self.tasks[event["id"]] = dict(event.fields)
        elif kind == "task.end":
            task = self.tasks.pop(event["id"], None)
            if task and task["task"] in ("pull", "upload") and (event.get("done") or 0) >= MIB:
                verb = {"pull": "pulled", "upload": "uploaded"}[task["task"]]
                rate = event["done"] / event["seconds"] if event["seconds"] > 0 else 0
                self.write(f"{verb} {short_digest(task['name'])} {human_bytes(event['done'])} in "
                           f"{human_seconds(event['seconds'])} ({human_bytes(rate)}/s)\n")

    def _title(self, event: progress.Event) -> str:
        text = event["instruction"].splitlines()[0] if event["instruction"] else ""
        return f"#{event['number']} [{event['number']}/{self.total}] {text}"

    def close(self, report: Any) -> None:
        if report.steps or report.digest:         # nothing built (--dryrun, an early refusal): no table
            self.write("".join(line + "\n" for line in summary_lines(report)))


class JsonRenderer(Renderer):
    SKIP = ("chain",)

    def __init__(self, stream: TextIO):
        super().__init__(stream)
        handler = _kiln_handler()
        self.formatter = handler.formatter if handler else None
        if handler is not None:
            handler.setFormatter(logs.JsonFormatter())       # every line of stderr is JSON

    def __call__(self, event: progress.Event) -> None:
        if event.kind == "task.progress" or event.kind.startswith(("task.", "step.", "build.", "stage.", "push.")):
            fields = {k: v for k, v in event.fields.items() if k not in self.SKIP}
            self.write(json.dumps({"event": event.kind, "time": round(event.time, 3), **fields},
                                  separators=(",", ":"), default=str) + "\n")

    def close(self, report: Any) -> None:
        self.write(json.dumps({"event": "summary", "time": round(time.time(), 3), **report.to_dict(),
                               "digest": report.digest}, separators=(",", ":")) + "\n")
        handler = _kiln_handler()
        if handler is not None and self.formatter is not None:
            handler.setFormatter(self.formatter)


class _AreaStream:
    """The log handler's stream while the live area is shown: each write goes above the area."""

    def __init__(self, renderer: "TtyRenderer"):
        self.renderer = renderer

    def write(self, text: str) -> int:
        self.renderer.above(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


class TtyRenderer(Renderer):
    INTERVAL = 0.2

    def __init__(self, stream: TextIO):
        super().__init__(stream)
        self.start = time.monotonic()
        self.total = 0
        self.step: dict | None = None
        self.done_steps = 0
        self.tasks: dict[int, dict] = {}
        self.drawn = 0                 # lines of the area now on screen
        self.handler = _kiln_handler()
        self.old_stream = None
        if isinstance(self.handler, logging.StreamHandler):
            self.old_stream = self.handler.setStream(_AreaStream(self))    # type: ignore[arg-type]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="kiln-progress", daemon=True)
        self.thread.start()

    def __call__(self, event: progress.Event) -> None:
        with self.lock:
            kind = event.kind
            if kind == "build.start":
                self.total = event["total_steps"]
            elif kind == "step.start":
                self.total = max(self.total, event["number"])
                self.step = dict(event.fields)
            elif kind == "step.end":
                self.done_steps = event["number"]
                cache = " (cached)" if event.get("cache") == "hit" else ""
                self._print(f"\x1b[34m=>\x1b[0m #{event['number']} "
                            f"{(event['instruction'].splitlines() or [''])[0]}  "
                            f"{human_seconds(event['seconds'])}{cache}\n")
                self.step = None
            elif kind == "task.start":
                self.tasks[event["id"]] = {**event.fields, "done": 0, "started": time.monotonic()}
            elif kind == "task.progress":
                task = self.tasks.get(event["id"])
                if task is not None:
                    task["done"] = event["done"]
                    if event.get("total"):
                        task["total"] = event["total"]
            elif kind == "task.end":
                self.tasks.pop(event["id"], None)

    # ---- drawing --------------------------------------------------------------------------------
    def _width(self) -> int:
        try:
            return shutil.get_terminal_size((100, 24)).columns
        except (OSError, ValueError):
            return 100

    def _area(self) -> list[str]:
        width = self._width()
        elapsed = time.monotonic() - self.start
        head = f"[+] Building {elapsed:.1f}s ({self.done_steps}/{self.total or '?'})"
        if self.step is not None:
            text = (self.step.get("instruction") or "").splitlines()[0] if self.step.get("instruction") else ""
            head += f" step {self.step['number']}/{self.total}: {text}"
        lines = [head]
        now = time.monotonic()
        for task in list(self.tasks.values())[:8]:
            done, total = task.get("done") or 0, task.get("total")
            seconds = max(now - task["started"], 1e-3)
            name = short_digest(task["name"]) if ":" in task["name"] else task["name"][-24:]
            if task["task"] == "walk":
                lines.append(f" => snapshot walk {done} paths  {done / seconds:,.0f} paths/s")
                continue
            rate = done / seconds
            line = f" => {task['task']} {name}  {human_bytes(done)}"
            if total:
                line += f" / {human_bytes(total)}"
            line += f"  {human_bytes(rate)}/s"
            if total and rate > 0 and done < total:
                line += f"  ETA {human_seconds((total - done) / rate)}"
            lines.append(line)
        return [line[:width - 1] for line in lines]

    def _clear(self) -> str:
        return f"\x1b[{self.drawn}F\x1b[J" if self.drawn else ""

    def _redraw(self) -> None:
        area = self._area()
        self.stream.write(self._clear() + "".join(line + "\n" for line in area))
        self.stream.flush()
        self.drawn = len(area)

    def _print(self, text: str) -> None:
        self.stream.write(self._clear() + text)
        self.drawn = 0
        self._redraw()

    def above(self, text: str) -> None:
        with self.lock:
            self._print(text if text.endswith("\n") else text + "\n")

    def _loop(self) -> None:
        while not self.stop.wait(self.INTERVAL):
            with self.lock:
                try:
                    self._redraw()
                except (OSError, ValueError):
                    return

    def close(self, report: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        with self.lock:
            self.stream.write(self._clear())
            self.drawn = 0
            if self.handler is not None and self.old_stream is not None:
                self.handler.setStream(self.old_stream)     # type: ignore[attr-defined]
            if report.steps or report.digest:
                self.stream.write("".join(line + "\n" for line in summary_lines(report)))
            self.stream.flush()

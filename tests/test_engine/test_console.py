"""--progress renderers fed real event sequences: plain lines per step with durations, GitLab's collapsible
sections, JSON lines that parse, the summary table; and the terminal renderer's live area with bytes and rate."""
from __future__ import annotations

import io
import json
import logging
import re
import time

from executor import logs, progress
from executor.engine.console import JsonRenderer, PlainRenderer, TtyRenderer, make_renderer
from executor.engine.report import BuildReport

LAYER = {"digest": "sha256:" + "12" * 32, "size": 3 * 1024 * 1024, "mediaType": "m"}


def play(*subscribers) -> BuildReport:
    """A two-step build with a pull, as the build loop and the registry client emit it."""
    report = BuildReport()
    for s in (report, *subscribers):
        progress.subscribe(s)
    try:
        progress.emit("build.start", total_steps=2)
        with progress.Task("pull", "sha256:" + "ab" * 32, 4 << 20, interval=0) as task:
            for _ in range(4):
                task.advance(1 << 20)
        progress.emit("step.start", number=1, stage="0", instruction="RUN make")
        logging.getLogger("kiln.test").info("compiling")
        progress.emit("step.end", number=1, stage="0", instruction="RUN make", seconds=12.34, cache="miss",
                      layer=LAYER, chain=[LAYER], network=True)
        progress.emit("step.start", number=2, stage="0", instruction="ENV A=1")
        progress.emit("step.end", number=2, stage="0", instruction="ENV A=1", seconds=0.01, cache="hit",
                      layer=None, chain=[LAYER], network=False)
        progress.emit("push.done", destination="r/app:1", repository="r/app", digest="sha256:" + "cd" * 32, uploaded=2, mounted=0,
                      existed=1, bytes_uploaded=5 << 20, bytes_mounted=0, bytes_existed=1000)
        progress.emit("build.end", digest="sha256:" + "cd" * 32)
    finally:
        for s in (report, *subscribers):
            progress.unsubscribe(s)
    report.finish()
    return report


def test_plain_one_line_per_step_with_duration_and_summary():
    out = io.StringIO()
    renderer = PlainRenderer(out)
    report = play(renderer)
    renderer.close(report)
    lines = out.getvalue().splitlines()
    assert "#1 [1/2] RUN make: done in 12.3s, cache miss, layer 121212121212 3.0 MiB" in lines
    assert "#2 [2/2] ENV A=1: done in 0.0s, cached" in lines
    assert "pulled abababababab 4.0 MiB in" in out.getvalue()
    assert re.search(r"^#\s+STAGE\s+INSTRUCTION\s+TIME\s+CACHE\s+LAYER\s+SIZE$", out.getvalue(), re.M)
    assert re.search(r"^1\s+0\s+RUN make\s+12\.3s\s+miss\s+121212121212\s+3\.0 MiB$", out.getvalue(), re.M)
    assert "2 steps in" in out.getvalue() and "1 cache hits" in out.getvalue()
    assert "pushed r/app: 5.0 MiB uploaded" in out.getvalue()
    assert lines[-1] == "image sha256:" + "cd" * 32


def test_gitlab_sections_wrap_each_step():
    out = io.StringIO()
    renderer = make_renderer("plain", out, {"GITLAB_CI": "true"})
    play(renderer)
    text = out.getvalue()
    start = re.search(r"\x1b\[0Ksection_start:(\d+):kiln_step_1\[collapsed=true\]\r\x1b\[0K#1 \[1/2\] RUN make\n", text)
    end = re.search(r"\x1b\[0Ksection_end:(\d+):kiln_step_1\r\x1b\[0K\n", text)
    assert start and end and start.end() < end.start()
    assert abs(int(start.group(1)) - time.time()) < 60
    assert "#1 [1/2] RUN make: done in" in text[start.end():end.start()]
    plain = io.StringIO()
    play(make_renderer("plain", plain, {}))
    assert "#1 [1/2] RUN make: done in" in plain.getvalue() and "section_" not in plain.getvalue()


def test_json_every_line_parses():
    logs.configure("info", "color", stream=io.StringIO())
    out = io.StringIO()
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "kiln")
    handler.setStream(out)
    renderer = JsonRenderer(out)
    report = play(renderer)
    renderer.close(report)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    kinds = [e.get("event") for e in events]
    assert kinds[:2] == ["build.start", "task.start"] and kinds[-1] == "summary"
    assert {"level": "info", "msg": "compiling"}.items() <= next(e for e in events if "msg" in e).items()
    step = next(e for e in events if e.get("event") == "step.end")
    assert step["seconds"] == 12.34 and step["cache"] == "miss" and "chain" not in step
    assert events[-1]["steps"][0]["layer"] == {"digest": LAYER["digest"], "size": LAYER["size"]}
    assert not isinstance(handler.formatter, logs.JsonFormatter)       # restored


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tty_area_shows_bytes_rate_and_eta():
    out = _Tty()
    logs.configure("info", "color", stream=out)
    renderer = make_renderer("auto", out, {"TERM": "xterm"})
    assert isinstance(renderer, TtyRenderer)
    progress.subscribe(renderer)
    try:
        progress.emit("build.start", total_steps=3)
        progress.emit("step.start", number=1, stage="0", instruction="FROM x")
        task = progress.Task("pull", "sha256:" + "ef" * 32, 10 << 20, interval=0).start()
        task.update(3 << 20)
        time.sleep(0.5)
        area = renderer._area()
        logging.getLogger("kiln.test").info("a log line")
        task.end()
    finally:
        progress.unsubscribe(renderer)
        renderer.close(BuildReport())
    assert area[0].startswith("[+] Building ") and "step 1/3: FROM x" in area[0]
    assert re.match(r" => pull efefefefefef  3\.0 MiB / 10\.0 MiB  [\d.]+ MiB/s  ETA \d", area[1])
    assert "a log line" in out.getvalue()

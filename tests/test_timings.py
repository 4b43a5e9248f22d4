"""executor.timings: kaniko's pkg/timing categories, the debug table and $BENCHMARK_FILE."""
import json
import logging

import pytest

from executor import timings


@pytest.fixture(autouse=True)
def fresh():
    saved = timings.categories()
    timings.reset()
    yield
    timings.reset()
    for name, seconds in saved.items():
        timings.add(name, seconds)


def test_categories_sum_and_keep_their_first_order():
    timings.add("Total Build Time", 0.25)
    timings.add("Command: RUN true", 0.1)
    timings.add("Total Build Time", 0.5)
    timings.add("negative", -1.0)            # a clock step backwards counts as nothing
    assert timings.summary() == ["Total Build Time: 0.750s", "Command: RUN true: 0.100s", "negative: 0.000s"]


def test_start_up_is_recorded_once_per_process():
    timings.record_startup()
    first = timings.categories()
    timings.record_startup()
    assert timings.categories() == first
    assert set(first) >= {"Start-up: kiln imports", "Start-up: interpreter"}
    assert first["Start-up: interpreter"] >= 0.0


def test_debug_table_and_benchmark_file(tmp_path, monkeypatch, caplog):
    timings.add("Total Push Time", 0.25)
    path = tmp_path / "bench.json"
    monkeypatch.setenv("BENCHMARK_FILE", str(path))
    log = logging.getLogger("kiln-test-timings")
    with caplog.at_level(logging.DEBUG, logger="kiln-test-timings"):
        timings.report(log)
    assert "Timing: Total Push Time: 0.250s" in caplog.messages
    assert json.loads(path.read_text()) == {"Total Push Time": 250000000}     # nanoseconds, as kaniko writes
    assert f"Benchmark file written at {path}" in caplog.messages


def test_benchmark_file_false_or_remote_writes_nothing(tmp_path, monkeypatch, caplog):
    timings.add("Total Build Time", 1.0)
    log = logging.getLogger("kiln-test-timings")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCHMARK_FILE", "false")          # kaniko's integration tests' off switch
    timings.report(log)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("BENCHMARK_FILE", "gs://bucket/bench.json")
    with caplog.at_level(logging.WARNING, logger="kiln-test-timings"):
        timings.report(log)
    assert caplog.messages == ["BENCHMARK_FILE gs://bucket/bench.json: kiln writes the timings to a local file only"]
    assert list(tmp_path.iterdir()) == []

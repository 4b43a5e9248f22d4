"""Issue 12, "fail fast": a build that cannot push never pulls its base nor runs a RUN. Each failure is one
line naming the destination, with no traceback, and nothing is pushed."""
from __future__ import annotations

import socket

from tests.e2e.conftest import skopeo_tags

MARKER = "kiln-preflight-ran-the-run"


def _dockerfile(base: str) -> dict[str, str]:
    return {"Dockerfile": f"FROM {base}\nRUN echo {MARKER}\nLABEL a=b\n"}


def _error_line(stderr: str) -> str:
    lines = [l for l in stderr.strip().splitlines() if "level=error" in l]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def _nothing_built(run) -> None:
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert "Retrieving image" not in run.stderr, "a base was pulled before the destination was checked"
    assert MARKER not in run.stdout + run.stderr, "a RUN ran before the destination was checked"


def test_invalid_destination_fails_before_anything_runs(kiln, base_images, plain_registry):
    run = kiln.build(kiln.context(_dockerfile(base_images.busybox_index)), "--destination", "Bad/UPPER:x",
                     "--insecure-registry", plain_registry.host)
    _nothing_built(run)
    assert "invalid --destination 'Bad/UPPER:x': repository name must be lowercase" in _error_line(run.stderr)


def test_unreachable_destination_fails_before_anything_runs(kiln, base_images, plain_registry):
    with socket.socket() as s:          # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = kiln.build(kiln.context(_dockerfile(base_images.busybox_index)), "--destination",
                     f"127.0.0.1:{port}/team/app:1", "--insecure-registry", plain_registry.host)
    _nothing_built(run)
    line = _error_line(run.stderr)
    assert f"cannot reach registry 127.0.0.1:{port} (connection refused) for 127.0.0.1:{port}/team/app:1" in line
    assert "HTTPConnectionPool" not in run.stderr and "Max retries" not in run.stderr


def test_denied_destination_fails_before_anything_runs(kiln, base_images, token_registry, tmp_path):
    empty = tmp_path / "nocreds"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    dest = token_registry.ref("e2e/preflight-denied:v1")
    run = kiln.build(kiln.context(_dockerfile(base_images.busybox_index)), "--destination", dest,
                     "--registry-certificate", f"{token_registry.host}={token_registry.ca_path}",
                     "--insecure-registry", base_images.busybox_index.split("/")[0], docker_config=str(empty))
    _nothing_built(run)
    line = _error_line(run.stderr)
    assert f"cannot push to {dest}: upload POST {token_registry.host}/e2e/preflight-denied" in line, line
    assert "denied (anonymous)" in line and "--skip-push-permission-check" in line, line
    assert skopeo_tags(token_registry, "e2e/preflight-denied") == []


def test_skip_push_permission_check_builds_first(kiln, base_images, token_registry, tmp_path):
    """With the check skipped, the build runs and the push is what fails (kaniko's behaviour)."""
    empty = tmp_path / "nocreds"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    dest = token_registry.ref("e2e/preflight-skipped:v1")
    run = kiln.build(kiln.context(_dockerfile(base_images.busybox_index)), "--destination", dest,
                     "--registry-certificate", f"{token_registry.host}={token_registry.ca_path}",
                     "--insecure-registry", base_images.busybox_index.split("/")[0], "--skip-push-permission-check",
                     docker_config=str(empty))
    assert run.returncode == 1
    assert "Retrieving image" in run.stderr and MARKER in run.stdout + run.stderr
    assert "denied (anonymous)" in _error_line(run.stderr)
    assert skopeo_tags(token_registry, "e2e/preflight-skipped") == []


def test_no_push_checks_the_cache_repository(kiln, base_images, plain_registry):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = kiln.build(kiln.context(_dockerfile(base_images.busybox_index)), "--no-push", "--cache",
                     "--cache-repo", f"127.0.0.1:{port}/team/cache", "--insecure-registry", plain_registry.host)
    _nothing_built(run)
    assert f"cannot reach registry 127.0.0.1:{port} (connection refused) for 127.0.0.1:{port}/team/cache" in \
        _error_line(run.stderr)

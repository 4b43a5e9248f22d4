"""A small build's fixed costs (issue 21 item 2): what a metadata-only build and push asks of the registry, what it
imports, and the per-phase timings it prints at --verbosity debug. No time is asserted: bench/small_builds.py
measures it against `skopeo copy` in the same run."""
from __future__ import annotations

import json
import re

from tests.rig.judge import judge_registry_image

METADATA = "LABEL org.example.team=e2e\nENV APP_HOME=/app\nEXPOSE 8080\nUSER 1000\nCMD [\"/bin/sh\"]\n"
#: what a registry answers in its log for one request: method, client address, path
_REQUEST = re.compile(r'msg="response completed".*http\.request\.method=(\w+) http\.request\.remoteaddr="?([^" ]+)"?'
                      r'.*http\.request\.uri="?([^" ]+)"?')

# modules only some flags need: a metadata-only build and push to a plain registry loads none of them
NOT_FOR_THIS_BUILD = ("executor.cloud.aws", "executor.cloud.azure", "executor.cloud.google",
                      "executor.attest.provenance", "executor.attest.attach", "packageurl", "configparser",
                      "xml.etree.ElementTree", "dulwich", "executor.cache.store", "executor.cache.steps",
                      "executor.cache.warmer", "executor.engine.gitclone", "executor.run.process",
                      "executor.commands.copying", "executor.commands.run", "zstandard")


def _requests_for(lines: list[str], repo: str) -> list[tuple[str, str, str]]:
    out = []
    for line in lines:
        m = _REQUEST.search(line)
        if m and 'useragent="kiln/' in line and (f"/v2/{repo}/" in m.group(3) or m.group(3) == "/v2/"):
            out.append((m.group(1), m.group(2), m.group(3)))
    return out


def test_metadata_build_timings_registry_round_trips_and_imports(kiln, base_images, plain_registry, tmp_path):
    repo = "e2e/fixed-costs"
    ref = plain_registry.ref(f"{repo}:v1")
    before = len(plain_registry.read_log().splitlines())
    ctx = kiln.context({"Dockerfile": f"FROM {base_images.busybox_amd64}\n{METADATA}"})
    bench = tmp_path / "benchmark.json"
    run = kiln.build(ctx, "--destination", ref, "--verbosity", "debug",
                     env={"BENCHMARK_FILE": str(bench), "PYTHONPROFILEIMPORTTIME": "1"}).check()
    judge_registry_image(plain_registry, ref, unpack=False)

    # the per-phase table, kaniko's categories where they match, and $BENCHMARK_FILE as kaniko writes it
    timing = dict(re.findall(r'msg="Timing: (.+): (\d+\.\d+)s"', run.stderr))
    for category in ("Start-up: interpreter", "Start-up: kiln imports", "Start-up: engine imports",
                     "Preflight (registry ping, push permission)", "Command: LABEL org.example.team=e2e",
                     "Command: CMD [\\\"/bin/sh\\\"]", "Total Build Time", "Total Push Time",
                     "Engine (imports, build, push)"):
        assert category in timing, f"no Timing line for {category!r}: {sorted(timing)}"
    written = json.loads(bench.read_text())
    assert written.keys() == {k.replace('\\"', '"') for k in timing}
    assert all(isinstance(v, int) and v >= 0 for v in written.values())
    assert written["Engine (imports, build, push)"] >= written["Total Build Time"] > 0

    # what the registry was asked, over one connection: no HTTPS attempt reached it (a plain-HTTP registry is
    # recognised by a handshake that needs no CA bundle), the push permission check's upload session carried the
    # config, the base layer was mounted after a HEAD
    lines_after = plain_registry.read_log().splitlines()[before:]
    asked = _requests_for(lines_after, repo)
    assert not any("TLS handshake" in line for line in lines_after)
    assert len({client for _, client, _ in asked}) == 1, asked
    posts = [path for method, _, path in asked if method == "POST"]
    assert posts[0] == f"/v2/{repo}/blobs/uploads/"                    # the push permission check
    assert all("mount=" in p for p in posts[1:]), posts                 # no POST for the config upload
    session = [path for method, _, path in asked if method == "PUT" and "/blobs/uploads/" in path]
    assert len(session) == 1 and len(posts) == 1 + len([p for p in posts if "mount=" in p])

    # imports: only what the build uses
    imported = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", run.stderr, re.M))
    assert "executor.engine.session" in imported     # the import log was read
    assert not [m for m in NOT_FOR_THIS_BUILD if m in imported]

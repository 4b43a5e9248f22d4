"""The layer cache against the rig's registries, through the real executor."""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from tests.e2e.conftest import skopeo_tags
from tests.rig.judge import judge_registry_image


def _dockerfile(base: str) -> str:
    return f"""\
FROM {base}
ARG FLAVOUR=plain
WORKDIR /app
COPY a.txt ./
RUN echo "RAN-$(echo STEP)-ONE $FLAVOUR" && cat /app/a.txt > /app/one.txt && rm /bin/ls
COPY b.txt ./
RUN echo RAN-$(echo STEP)-TWO && cat /app/b.txt > /app/two.txt
RUN echo RAN-$(echo STEP)-THREE && date +%N > /app/three.txt
"""


def _ran(run) -> set[str]:
    text = run.stdout + run.stderr
    return {n for n in ("ONE", "TWO", "THREE") if f"RAN-STEP-{n}\n" in text or f"RAN-STEP-{n} " in text}


def _build(kiln, registry, ctx, repo, *extra):
    ref = registry.ref(f"{repo}:v1")
    run = kiln.build(ctx, "--destination", ref, "--insecure-registry", registry.host, "--cache", *extra).check()
    return run, ref


def test_second_build_runs_nothing_and_is_reproducible(kiln, base_images, plain_registry):
    repo = f"cache/repro-{uuid.uuid4().hex[:8]}"
    ctx = kiln.context({"Dockerfile": _dockerfile(base_images.busybox_index), "a.txt": "A\n", "b.txt": "B\n"})
    first, ref = _build(kiln, plain_registry, ctx, repo, "--reproducible", "--cache-copy-layers")
    assert _ran(first) == {"ONE", "TWO", "THREE"}
    report1 = judge_registry_image(plain_registry, ref)
    tags = skopeo_tags(plain_registry, f"{repo}/cache")
    assert len(tags) >= 5, tags          # 2 COPY + 3 RUN entries, stored in <destination>/cache
    second, _ = _build(kiln, plain_registry, ctx, repo, "--reproducible", "--cache-copy-layers")
    assert _ran(second) == set(), second.stderr[-3000:]
    report2 = judge_registry_image(plain_registry, ref)
    assert report2.manifest_digest == report1.manifest_digest
    assert report2.read("app/three.txt") == report1.read("app/three.txt")
    assert "bin/.wh.ls" in report2.layers[-4].names(), "the whiteout comes back as a whiteout"
    fs = report2.filesystem()
    assert "bin/ls" not in fs and "app/one.txt" in fs

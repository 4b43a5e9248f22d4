"""Issue 21: lazy extraction (a stage's base reaches the root only when a step needs its files) gives the very
image eager extraction gives. A representative set of parity cases is built both ways with --reproducible and
the two OCI manifests must be byte for byte the same. (The whole parity suite against docker runs eagerly with
KILN_PARITY_EXTRACT=eager.)"""
from __future__ import annotations

import json
import os

import pytest

from tests.e2e.parity.caseload import CASES, Case
from tests.e2e.parity.conftest import write_secrets

#: metadata-only stages, stages continuing stages, COPY --from stages and images, ONBUILD, targets, mounts from
#: stages, whiteouts, scratch, WORKDIR-only steps
REPRESENTATIVE = ["metadata", "metadata_misc", "run_metadata_only", "multistage_chain", "multistage_target",
                  "target_middle", "stage_isolation", "copy_from_image", "hardlinks_from_stage", "onbuild",
                  "onbuild_copy", "run_whiteouts", "from_scratch", "scratch_defaults", "workdir", "copy_basic",
                  "mount_bind", "mount_cache_from", "global_args", "unused_stage_fails"]
SELECTED = [c for c in CASES if c.name in REPRESENTATIVE]


def test_the_representative_cases_exist():
    assert sorted(c.name for c in SELECTED) == sorted(REPRESENTATIVE)


def _manifest(layout: str) -> tuple[str, bytes]:
    with open(os.path.join(layout, "index.json")) as f:
        digest = json.load(f)["manifests"][0]["digest"]
    with open(os.path.join(layout, "blobs", *digest.split(":")), "rb") as f:
        return digest, f.read()


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in SELECTED])
def test_lazy_and_eager_extraction_give_the_same_image(case: Case, kiln, parity_bases, plain_registry, tmp_path):
    ctx = case.make_context(str(tmp_path / "context"))
    argv = ["--no-push", "--reproducible", "--destination", f"parity/{case.name}:latest",
            "--insecure-registry", plain_registry.host]
    for k, v in case.build_args(parity_bases.busybox, parity_bases.debian, parity_bases.http,
                                parity_bases.onbuild, parity_bases.extra).items():
        argv += ["--build-arg", f"{k}={v}"]
    if case.target:
        argv += ["--target", case.target]
    for sid, path in write_secrets(case, str(tmp_path)).items():
        argv += ["--secret", f"id={sid},src={path}"]
    manifests = {}
    for mode in ("lazy", "eager"):
        layout = str(tmp_path / f"layout-{mode}")
        kiln.build(ctx, *argv, *case.kiln_args, "--oci-layout-path", layout, f"--extract={mode}").check()
        manifests[mode] = _manifest(layout)
    assert manifests["lazy"] == manifests["eager"]

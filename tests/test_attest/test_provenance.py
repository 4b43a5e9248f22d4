"""SLSA provenance as BuildKit writes it: v1 and v0.2, mode=min and max, image PURLs as BuildKit's RefToPURL."""
from __future__ import annotations

import base64
import hashlib

import pytest

from executor.attest.provenance import (BUILD_TYPE_V02, BUILD_TYPE_V1, PREDICATE_V02, PREDICATE_V1, ImageUse,
                                        ProvenanceInput, Step, image_purl, predicate)

DIGEST = "sha256:" + "ab" * 32
DOCKERFILE = b"FROM busybox\nRUN echo hi\n"


def sample(**kw) -> ProvenanceInput:
    base = dict(builder_id="https://ci.example/jobs/1", invocation_id="inv1", started="2024-01-01T00:00:00Z",
                finished="2024-01-01T00:01:00Z", dockerfile_path="Dockerfile", dockerfile=DOCKERFILE,
                builder_platform="linux/amd64", images=[ImageUse("busybox", "linux/amd64", DIGEST)],
                build_args={"VERSION": "1.2"}, labels={"team": "x"}, target="app", secrets=["npmrc"],
                network=True, steps=[Step("step1", "0", "RUN echo hi", 2, 2, False, (),
                                          ({"mediaType": "m", "digest": DIGEST, "size": 3},))])
    base.update(kw)
    return ProvenanceInput(**base)


@pytest.mark.parametrize("ref,platform,purl", [
    ("busybox", "linux/amd64", "pkg:docker/busybox@latest?platform=linux%2Famd64"),
    ("docker.io/library/alpine:3.19", "linux/arm64/v8", "pkg:docker/alpine@3.19?platform=linux%2Farm64%2Fv8"),
    ("127.0.0.1:5000/base/debian:bookworm", "linux/amd64",
     "pkg:docker/127.0.0.1:5000/base/debian@bookworm?platform=linux%2Famd64"),
    ("ghcr.io/o/r@" + DIGEST, "linux/amd64", f"pkg:docker/ghcr.io/o/r?digest={DIGEST}&platform=linux%2Famd64"),
    ("user/app:1", None, "pkg:docker/user/app@1"),
])
def test_image_purls_as_buildkit_writes_them(ref, platform, purl):
    assert image_purl(ref, platform) == purl


def test_v1_max():
    kind, p = predicate(sample(), "max", "v1")
    assert kind == PREDICATE_V1
    bd, rd = p["buildDefinition"], p["runDetails"]
    assert bd["buildType"] == BUILD_TYPE_V1
    assert bd["externalParameters"]["configSource"] == {"digest": {"sha256": hashlib.sha256(DOCKERFILE).hexdigest()},
                                                        "path": "Dockerfile"}
    request = bd["externalParameters"]["request"]
    assert request == {"frontend": "dockerfile.v0",
                       "args": {"build-arg:VERSION": "1.2", "label:team": "x", "target": "app"},
                       "secrets": [{"id": "npmrc"}], "locals": [{"name": "context"}, {"name": "dockerfile"}]}
    assert bd["resolvedDependencies"] == [{"uri": "pkg:docker/busybox@latest?platform=linux%2Famd64",
                                           "digest": {"sha256": "ab" * 32}}]
    assert bd["internalParameters"]["builderPlatform"] == "linux/amd64"
    assert bd["internalParameters"]["buildConfig"]["steps"] == [
        {"id": "step1", "stage": "0", "instruction": "RUN echo hi", "cacheHit": False}]
    meta = rd["metadata"]
    assert rd["builder"] == {"id": "https://ci.example/jobs/1"}
    assert meta["buildkit_completeness"] == {"request": True, "resolvedDependencies": False}
    assert "buildkit_hermetic" not in meta         # a RUN with network, and a local context
    assert meta["buildkit_metadata"]["layers"] == {"step1:0": [[{"mediaType": "m", "digest": DIGEST, "size": 3}]]}
    assert base64.b64decode(meta["buildkit_metadata"]["source"]["infos"][0]["data"]) == DOCKERFILE
    assert meta["buildkit_metadata"]["source"]["locations"]["step1"] == {
        "locations": [{"ranges": [{"start": {"line": 2}, "end": {"line": 2}}]}]}


def test_min_drops_args_labels_secrets_and_says_so():
    _, p = predicate(sample(), "min", "v1")
    request = p["buildDefinition"]["externalParameters"]["request"]
    assert request["args"] == {"target": "app"} and "secrets" not in request
    assert p["runDetails"]["metadata"]["buildkit_completeness"]["request"] is False
    assert "buildConfig" not in p["buildDefinition"]["internalParameters"]
    assert "layers" not in p["runDetails"]["metadata"]["buildkit_metadata"]


def test_git_context_and_hermetic_build():
    _, p = predicate(sample(context_git=("https://git.example/r.git#main", "c0ffee" * 6 + "c0ff"),
                            local_context=False, network=False), "min", "v1")
    cs = p["buildDefinition"]["externalParameters"]["configSource"]
    assert cs == {"uri": "https://git.example/r.git#main", "digest": {"sha1": "c0ffee" * 6 + "c0ff"},
                  "path": "Dockerfile"}
    assert {"uri": "https://git.example/r.git", "digest": {"sha1": "c0ffee" * 6 + "c0ff"}} in \
        p["buildDefinition"]["resolvedDependencies"]
    assert "locals" not in p["buildDefinition"]["externalParameters"]["request"]
    meta = p["runDetails"]["metadata"]
    assert meta["buildkit_hermetic"] is True and meta["buildkit_completeness"]["resolvedDependencies"] is True


def test_v02_is_buildkits_conversion():
    kind, p = predicate(sample(), "max", "v0.2")
    assert kind == PREDICATE_V02
    assert p["buildType"] == BUILD_TYPE_V02 and p["builder"] == {"id": "https://ci.example/jobs/1"}
    assert p["materials"] == [{"uri": "pkg:docker/busybox@latest?platform=linux%2Famd64",
                               "digest": {"sha256": "ab" * 32}}]
    assert p["invocation"]["configSource"] == {"digest": {"sha256": hashlib.sha256(DOCKERFILE).hexdigest()},
                                               "entryPoint": "Dockerfile"}
    assert p["invocation"]["environment"] == {"platform": "linux/amd64"}
    assert p["invocation"]["parameters"]["frontend"] == "dockerfile.v0"
    meta = p["metadata"]
    assert meta["buildInvocationID"] == "inv1" and meta["buildStartedOn"] == "2024-01-01T00:00:00Z"
    assert meta["completeness"] == {"parameters": True, "environment": True, "materials": False}
    assert "layers" in meta["https://mobyproject.org/buildkit@v1#metadata"]

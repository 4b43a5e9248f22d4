"""The registry client's retry policy, phase by phase, through the fault proxy in front of the real
docker-registry: faults within the budget end in a pushed image the judge accepts; faults past it end in
an error naming registry, phase and last status, with no manifest pushed; a later push then succeeds."""
from __future__ import annotations

import os
import time

import pytest

from executor.registry import RegistryError
from tests.faults.proxy import FaultProxy
from tests.rig.judge import judge_registry_image

BUDGET = 3   # fast_options' transport_retries: 3 faults are covered, a 4th in a row is not

# (phase, method, path pattern, extra client options)
PUSH_PHASES = [
    ("blob HEAD", "HEAD", r"/blobs/sha256:", {}),
    ("upload POST", "POST", r"/blobs/uploads/$", {}),
    ("upload PATCH", "PATCH", r"/blobs/uploads/", {"chunk_size": 64 << 10}),
    ("upload PUT", "PUT", r"/blobs/uploads/", {}),
    ("manifest PUT", "PUT", r"/manifests/", {}),
]


def _tags(proxy: FaultProxy, repo: str) -> list[str]:
    import requests
    resp = requests.get(f"http://{proxy.upstream.host}/v2/{repo}/tags/list", timeout=10)
    return resp.json().get("tags") or [] if resp.status_code == 200 else []


def _registry_digest(proxy: FaultProxy, repo: str, tag: str) -> str:
    import hashlib
    import requests
    resp = requests.get(f"http://{proxy.upstream.host}/v2/{repo}/manifests/{tag}", timeout=10,
                        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert resp.status_code == 200, resp.text
    return "sha256:" + hashlib.sha256(resp.content).hexdigest()


def _manifest_puts(proxy: FaultProxy) -> list:
    return [r for r in proxy.requests("PUT", r"/manifests/") if not r[2].startswith(("status", "reset", "stall"))]


@pytest.mark.parametrize("phase,method,path,extra", PUSH_PHASES, ids=[p[0] for p in PUSH_PHASES])
def test_push_phase_within_budget(phase, method, path, extra, plain_proxy, plain_registry, make_client, fresh_image):
    image = fresh_image()
    fault = plain_proxy.add("status", method, path, times=BUDGET, status=503)
    repo = f"faults/within-{phase.replace(' ', '-').lower()}"
    client = make_client(plain_proxy, jobs=1, **extra)
    digest = client.push(image, [plain_proxy.ref(f"{repo}:v1")])
    assert fault.fired == BUDGET, plain_proxy.log
    report = judge_registry_image(plain_registry, plain_registry.ref(f"{repo}:v1"))
    assert _registry_digest(plain_proxy, repo, "v1") == digest == image.digest
    assert len(report.layers) == len(image.layers) and report.read("random.bin")


@pytest.mark.parametrize("phase,method,path,extra", PUSH_PHASES, ids=[p[0] for p in PUSH_PHASES])
def test_push_phase_past_budget_then_clean_retry(phase, method, path, extra, plain_proxy, plain_registry,
                                                 make_client, fresh_image):
    image = fresh_image()
    plain_proxy.add("status", method, path, times=None, status=502)
    repo = f"faults/past-{phase.replace(' ', '-').lower()}"
    ref = plain_proxy.ref(f"{repo}:v1")
    with pytest.raises(RegistryError) as info:
        make_client(plain_proxy, jobs=1, **extra).push(image, [ref])
    err = info.value
    assert (err.phase, err.status, err.registry) == (phase, 502, plain_proxy.host), str(err)
    text = str(err)
    assert phase in text and plain_proxy.host in text and "502" in text
    if phase != "manifest PUT":
        assert not _manifest_puts(plain_proxy), "a manifest went up although a blob was not confirmed"
    assert _tags(plain_proxy, repo) == []
    plain_proxy.clear()
    digest = make_client(plain_proxy, jobs=1, **extra).push(image, [ref])   # no clean-up in between
    assert _tags(plain_proxy, repo) == ["v1"]
    report = judge_registry_image(plain_registry, plain_registry.ref(f"{repo}:v1"))
    assert len(report.layers) == len(image.layers) and digest.startswith("sha256:")


def test_429_retry_after_is_honoured(plain_proxy, plain_registry, make_client, fresh_image):
    image = fresh_image()
    plain_proxy.add("status", "POST", r"/blobs/uploads/$", times=1, status=429, retry_after="1")
    start = time.monotonic()
    make_client(plain_proxy, jobs=1).push(image, [plain_proxy.ref("faults/429:v1")])
    assert time.monotonic() - start >= 1.0, "Retry-After: 1 waited less than a second (backoff is 0.05 s)"
    judge_registry_image(plain_registry, plain_registry.ref("faults/429:v1"))


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_upload_reset_mid_blob(chunked, plain_proxy, plain_registry, make_client, fresh_image):
    image = fresh_image()
    method = "PATCH" if chunked else "PUT"
    fault = plain_proxy.add("reset_upload", method, r"/blobs/uploads/", times=2, nbytes=20000)
    client = make_client(plain_proxy, jobs=1, chunk_size=(96 << 10) if chunked else None)
    client.push(image, [plain_proxy.ref(f"faults/reset-up-{method.lower()}:v1")])
    assert fault.fired == 2
    report = judge_registry_image(plain_registry, plain_registry.ref(f"faults/reset-up-{method.lower()}:v1"))
    assert any("random.bin" in l.names() for l in report.layers)


DROPS = [("upload PUT", "PUT", r"/blobs/uploads/", {}),
         ("upload PATCH", "PATCH", r"/blobs/uploads/", {"chunk_size": 64 << 10}),
         ("manifest PUT", "PUT", r"/manifests/", {})]


@pytest.mark.parametrize("phase,method,path,extra", DROPS, ids=[d[0] for d in DROPS])
def test_answer_lost_after_the_registry_acted(phase, method, path, extra, plain_proxy, plain_registry, make_client,
                                              fresh_image):
    """The registry completed the request but the answer never arrived: the retry must cope with a
    registry that already holds the chunk, the blob or the manifest."""
    image = fresh_image()
    fault = plain_proxy.add("drop_answer", method, path, times=1)
    repo = f"faults/dropped-{method.lower()}"
    make_client(plain_proxy, jobs=1, **extra).push(image, [plain_proxy.ref(f"{repo}:v1")])
    assert fault.fired == 1
    judge_registry_image(plain_registry, plain_registry.ref(f"{repo}:v1"))


def test_blob_head_lies_404(plain_proxy, plain_registry, make_client, fresh_image):
    """A HEAD answering 404 for a blob that exists costs an upload, never a broken image."""
    image = fresh_image()
    ref = plain_proxy.ref("faults/head-lies:v1")
    make_client(plain_proxy, jobs=1).push(image, [ref])
    plain_proxy.clear()
    fault = plain_proxy.add("not_found", "HEAD", r"/blobs/sha256:", times=None)
    make_client(plain_proxy, jobs=1).push(image, [plain_proxy.ref("faults/head-lies:v2")])
    assert fault.fired == len(image.layers) + 1
    assert plain_proxy.requests("PUT", r"/blobs/uploads/"), "the blobs HEAD denied were uploaded again"
    judge_registry_image(plain_registry, plain_registry.ref("faults/head-lies:v2"))


# The stalls below last STALL s: waiting one out instead of timing out would pass HANG_GUARD. Measured here (load
# average 3 to 4): each of these tests ends 1.16-1.36 s after it starts the push or pull; the guard is 11x that.
STALL = 60
HANG_GUARD = 15


def test_stall_past_timeout_is_retried(plain_proxy, plain_registry, make_client, fresh_image):
    image = fresh_image()
    fault = plain_proxy.add("stall", "PUT", r"/manifests/", times=1, seconds=STALL)
    start = time.monotonic()
    make_client(plain_proxy, jobs=1, timeout=1.0).push(image, [plain_proxy.ref("faults/stall:v1")])
    assert fault.fired == 1 and len(plain_proxy.requests("PUT", r"/manifests/")) == 2, plain_proxy.log
    assert time.monotonic() - start < HANG_GUARD
    judge_registry_image(plain_registry, plain_registry.ref("faults/stall:v1"))


def test_stall_every_time_fails_naming_the_phase(plain_proxy, make_client, fresh_image):
    image = fresh_image()
    plain_proxy.add("stall", "PUT", r"/manifests/", times=None, seconds=STALL)
    start = time.monotonic()
    with pytest.raises(RegistryError) as info:
        make_client(plain_proxy, jobs=1, timeout=0.5, transport_retries=1).push(
            image, [plain_proxy.ref("faults/stall-always:v1")])
    assert str(info.value).endswith(": timed out waiting for the answer"), str(info.value)
    assert info.value.phase == "manifest PUT" and len(plain_proxy.requests("PUT", r"/manifests/")) == 2
    assert time.monotonic() - start < HANG_GUARD
    assert _tags(plain_proxy, "faults/stall-always") == []


# ---- pull ---------------------------------------------------------------------------------------
PULL_PHASES = [("manifest GET", "GET", r"/manifests/"), ("blob GET", "GET", r"/blobs/sha256:")]


@pytest.mark.parametrize("phase,method,path", PULL_PHASES, ids=[p[0] for p in PULL_PHASES])
def test_pull_phase_within_and_past_budget(phase, method, path, plain_proxy, make_client, base_images):
    repo_tag = "base/busybox:amd64"
    fault = plain_proxy.add("status", method, path, times=BUDGET, status=500)
    image = make_client(plain_proxy).pull(plain_proxy.ref(repo_tag), fetch_layers=True)
    assert fault.fired == BUDGET and image.layers
    plain_proxy.clear()
    plain_proxy.add("status", method, path, times=None, status=503)
    with pytest.raises(RegistryError) as info:
        make_client(plain_proxy).pull(plain_proxy.ref(repo_tag), fetch_layers=True)
    assert (info.value.phase, info.value.status) == (phase, 503), str(info.value)


def test_pull_reset_mid_layer_restarts_the_layer(plain_proxy, make_client, base_images, tmp_path):
    fault = plain_proxy.add("reset_download", "GET", r"/blobs/sha256:", skip=1, times=2, nbytes=50000)
    client = make_client(plain_proxy)
    image = client.pull(plain_proxy.ref("base/busybox:amd64"), fetch_layers=True)
    assert fault.fired == 2, plain_proxy.log
    for layer in image.layers:
        layer.verify()


def test_pull_stall_mid_layer_restarts_the_layer(plain_proxy, make_client, base_images):
    """The body stops flowing after 50 kB for longer than the read timeout: the layer is fetched again."""
    fault = plain_proxy.add("stall_download", "GET", r"/blobs/sha256:", skip=1, times=1, nbytes=50000,
                            seconds=STALL)
    start = time.monotonic()
    image = make_client(plain_proxy, timeout=1.0).pull(plain_proxy.ref("base/busybox:amd64"), fetch_layers=True)
    stalled = [path for _, path, what in plain_proxy.log if what.startswith("stall")]
    assert fault.fired == 1 and len(stalled) == 1, plain_proxy.log
    assert len(plain_proxy.requests("GET", stalled[0] + "$")) == 2, plain_proxy.log   # fetched again
    assert time.monotonic() - start < HANG_GUARD
    for layer in image.layers:
        layer.verify()


def test_pull_corrupt_blob_is_never_kept(plain_proxy, make_client, base_images):
    """A layer whose bytes do not hash to its digest fails the pull and leaves no blob to extract."""
    plain_proxy.add("corrupt", "GET", r"/blobs/sha256:", skip=1, times=None)
    client = make_client(plain_proxy, transport_retries=1)
    with pytest.raises(RegistryError) as info:
        client.pull(plain_proxy.ref("base/busybox:amd64"), fetch_layers=True)
    assert info.value.phase == "blob GET" and "sha256:" in str(info.value), str(info.value)
    left = [f for _, _, files in os.walk(client.blob_dir) for f in files]
    assert left == [], f"a corrupt blob stayed in the blob directory: {left}"


# ---- bearer tokens ------------------------------------------------------------------------------
def test_token_phase_and_early_expiry(token_proxy, token_registry, make_client, fresh_image):
    image = fresh_image()
    token_fault = token_proxy.add("status", "GET", r"^/_token", times=BUDGET, status=503)
    expiry = token_proxy.add("expire_token", "PUT", r"/manifests/", times=1)
    head_expiry = token_proxy.add("expire_token", "HEAD", r"/blobs/", times=1)
    client = make_client(token_proxy, jobs=1)
    client.push(image, [token_proxy.ref("faults/token:v1")])
    assert token_fault.fired == BUDGET and expiry.fired == 1 and head_expiry.fired == 1, token_proxy.log
    assert len([r for r in token_proxy.requests("GET", r"^/_token") if "forward 200" in r[2]]) >= 2, token_proxy.log or \
        "a token that expired early is fetched again"
    judge_registry_image(token_registry, token_registry.ref("faults/token:v1"))


def test_token_server_down_past_budget(token_proxy, make_client, fresh_image):
    image = fresh_image()
    token_proxy.add("status", "GET", r"^/_token", times=None, status=503)
    with pytest.raises(RegistryError) as info:
        make_client(token_proxy, jobs=1).push(image, [token_proxy.ref("faults/token-down:v1")])
    assert (info.value.phase, info.value.status) == ("token", 503), str(info.value)
    assert not token_proxy.requests("PUT", r"/manifests/")


def test_pull_with_token_expiry_and_stalled_token_server(token_proxy, token_registry, make_client, base_images):
    """Pulling from the token registry: the first token request stalls past the timeout, then tokens
    expire early on the manifest GET and on a blob GET; every fault is recovered."""
    token_proxy.add("stall", "GET", r"^/_token", times=1, seconds=2.5)
    manifest = token_proxy.add("expire_token", "GET", r"/manifests/", times=1)
    blob = token_proxy.add("expire_token", "GET", r"/blobs/sha256:", skip=1, times=1)
    ref = base_images.copy_image(base_images.busybox_amd64, token_registry, "faults/token-pull:v1")
    image = make_client(token_proxy, timeout=1.0).pull(token_proxy.ref("faults/token-pull:v1"), fetch_layers=True)
    assert ref and manifest.fired == 1 and blob.fired == 1, token_proxy.log
    assert any(r[2] == "stall" for r in token_proxy.log)
    for layer in image.layers:
        layer.verify()


def test_pull_reset_every_time_names_the_blob(plain_proxy, make_client, base_images):
    plain_proxy.add("reset_download", "GET", r"/blobs/sha256:", skip=1, times=None, nbytes=30000)
    client = make_client(plain_proxy)
    with pytest.raises(RegistryError) as info:
        client.pull(plain_proxy.ref("base/busybox:amd64"), fetch_layers=True)
    text = str(info.value)
    assert info.value.phase == "blob GET" and plain_proxy.host in text and "broke off after" in text, text
    assert f"{BUDGET + 1} times" in text, text
    left = [f for _, _, files in os.walk(client.blob_dir) for f in files]
    assert left == [], f"partial downloads left behind: {left}"


def test_parallel_push_one_blob_failing_pushes_no_manifest(plain_proxy, plain_registry, make_client, fresh_image):
    """jobs=3: while one blob's uploads keep failing the others finish, and the manifest never goes up."""
    image = fresh_image()
    image.append_layer(__import__("tests.faults.conftest", fromlist=["random_layer"]).random_layer(
        os.path.dirname(image.layers[-1].path or "/tmp")), None)
    bad = image.layers[-1].digest
    plain_proxy.add("status", "PUT", rf"/blobs/uploads/.*digest=sha256%3A{bad.split(':')[1]}", times=None,
                    status=500)
    with pytest.raises(RegistryError) as info:
        make_client(plain_proxy, jobs=3).push(image, [plain_proxy.ref("faults/parallel-fail:v1")])
    assert (info.value.phase, info.value.status) == ("upload PUT", 500), str(info.value)
    assert not _manifest_puts(plain_proxy) and _tags(plain_proxy, "faults/parallel-fail") == []
    assert len([r for r in plain_proxy.requests("PUT", r"/blobs/uploads/") if "forward 201" in r[2]]) >= 1


def test_config_download_reset_is_retried(plain_proxy, make_client, base_images):
    """The config blob (read into memory, not streamed to disk) broken off mid-body is fetched again."""
    fault = plain_proxy.add("reset_download", "GET", r"/blobs/sha256:", times=2, nbytes=100)
    image = make_client(plain_proxy).pull(plain_proxy.ref("base/busybox:amd64"), fetch_layers=True)
    assert fault.fired == 2 and image.config.diff_ids


def test_manifest_download_reset_is_retried(plain_proxy, make_client, base_images):
    fault = plain_proxy.add("reset_download", "GET", r"/manifests/", times=2, nbytes=50)
    image = make_client(plain_proxy).pull(plain_proxy.ref("base/busybox:amd64"))
    assert fault.fired == 2 and image.layers

"""Pull and push against the rig's real registries (docker-registry 2.8), judged by skopeo and umoci."""
import hashlib
import json
import re
import subprocess

import pytest

from executor.image import Platform
from executor.image import mediatypes as mt
from executor.registry import (NotFoundError, Reference, RegistryClient, RegistryError, RegistryOptions,
                               UnauthorizedError)
from executor.registry.transport import repository_scope
from tests.rig.judge import judge_registry_image
from tests.test_registry.faultproxy import Action, FaultProxy

FLAVOURS = ["plain", "basic", "token"]


def skopeo_raw(registry, ref) -> bytes:
    return subprocess.run(["skopeo", "inspect", "--raw", *registry.skopeo_args(""), f"docker://{ref}"],
                          capture_output=True, check=True).stdout


def test_index_resolves_to_host_platform_by_default(base_images, client_for):
    client = client_for(base_images.registry)
    index = json.loads(skopeo_raw(base_images.registry, base_images.busybox_index))
    by_arch = {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]}
    image = client.pull(base_images.busybox_index)
    assert image.config.platform.architecture == "amd64"
    assert image.digest == by_arch["amd64"]
    arm = client.pull(base_images.busybox_index, Platform.parse("linux/arm64"))
    assert arm.digest == by_arch["arm64"]
    assert (arm.config.platform.architecture, arm.config.platform.variant) == ("arm64", "v8")
    with pytest.raises(Exception, match="linux/s390x"):
        client.pull(base_images.busybox_index, Platform.parse("linux/s390x"))


@pytest.mark.parametrize("which,layer_type", [("busybox_docker", mt.DOCKER_LAYER),
                                              ("busybox_zstd", mt.OCI_LAYER_ZSTD)])
def test_pull_formats_and_fetch_verified_layers(base_images, client_for, which, layer_type):
    ref = getattr(base_images, which)
    image = client_for(base_images.registry).pull(ref, fetch_layers=True)
    raw = skopeo_raw(base_images.registry, ref)
    assert image.manifest_bytes() == raw  # exactly the bytes the registry holds
    assert image.layers[0].media_type == layer_type
    with image.layers[0].open_tar() as t:
        assert len(t.read(1024)) == 1024


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_push_and_pull_through_each_flavour(base_images, registries, client_for, flavour):
    registry = registries[flavour]
    src = base_images.copy_image(base_images.busybox_amd64, registry, f"src/busybox-{flavour}:1")
    client = client_for(registry)
    image = client.pull(src)
    original = image.digest
    image.config.labels = {"kiln.test": flavour}
    dests = [f"{registry.host}/pushed/{flavour}:a", f"{registry.host}/pushed/{flavour}-other:b"]
    digest = client.push(image, dests)
    assert digest == image.digest != original
    for dest in dests:
        report = judge_registry_image(registry, dest)
        assert report.manifest_digest == digest
        assert report.config["config"]["Labels"] == {"kiln.test": flavour}
    # the second destination mounted its blobs from the first
    log = registry.read_log().replace("%3A", ":").replace("%2F", "/")
    for layer in image.layers:
        assert f"/v2/pushed/{flavour}-other/blobs/uploads/?mount={layer.digest}&from=src/busybox-{flavour}" in log
    config_digest = image.config_descriptor().digest
    assert f"/v2/pushed/{flavour}-other/blobs/uploads/?mount={config_digest}&from=pushed/{flavour}" in log
    again = client_for(registry).pull(dests[1], fetch_layers=True)
    assert again.manifest_bytes() == image.manifest_bytes()
    assert again.config_bytes() == image.config_bytes()


def test_unchanged_pulled_image_keeps_its_digest(base_images, plain_registry, client_for):
    client = client_for(plain_registry)
    image = client.pull(base_images.busybox_docker)
    digest = client.push(image, [f"{plain_registry.host}/copies/docker:1"])
    assert digest == "sha256:" + hashlib.sha256(skopeo_raw(plain_registry, base_images.busybox_docker)).hexdigest()


@pytest.mark.parametrize("kind", ["wrong-diffid", "wrong-size", "truncated", "wrong-compression", "missing-blob"])
def test_broken_images_are_refused_naming_the_blob(base_images, client_for, kind):
    ref = base_images.broken[kind]
    manifest = json.loads(skopeo_raw(base_images.registry, ref))
    layer_digest = manifest["layers"][0]["digest"]
    client = client_for(base_images.registry)
    with pytest.raises(RegistryError) as e:
        client.pull(ref, fetch_layers=True)
    assert layer_digest in str(e.value)
    assert "broken/" + kind in str(e.value) and base_images.registry.host in str(e.value)
    if kind == "missing-blob":
        assert isinstance(e.value, NotFoundError) and e.value.status == 404


def test_push_without_credentials_fails_and_leaves_no_tag(base_images, token_registry, client_for,
                                                          no_ambient_credentials):
    image = client_for(base_images.registry).pull(base_images.busybox_amd64)
    anonymous = client_for(token_registry, docker_config_dir=no_ambient_credentials)
    with pytest.raises(UnauthorizedError) as e:
        anonymous.push(image, [f"{token_registry.host}/denied/app:1"])
    message = str(e.value)
    assert token_registry.host in message and "denied/app" in message
    assert "anonymous" in message
    proc = subprocess.run(["skopeo", "inspect", "--raw", *token_registry.skopeo_args(""),
                           f"docker://{token_registry.host}/denied/app:1"], capture_output=True, text=True)
    assert proc.returncode != 0 and "manifest unknown" in proc.stderr.lower()


def test_cross_repo_mount(base_images, token_registry, client_for):
    src = base_images.copy_image(base_images.busybox_amd64, token_registry, "mount/source:1")
    client = client_for(token_registry)
    image = client.pull(src)
    image.config.user = "nobody"
    layer_digest = image.layers[0].digest
    client.push(image, [f"{token_registry.host}/mount/target:1"])
    log = token_registry.read_log()
    assert re.search(rf"POST /v2/mount/target/blobs/uploads/\?mount={layer_digest}&from=mount/source[^\"]*\" 201", log.replace("%3A", ":").replace("%2F", "/")), \
        "registry log shows no cross-repository mount"
    scopes = [set(r.get("scopes") or []) for r in token_registry.token_log()]
    assert {"repository:mount/target:pull,push", "repository:mount/source:pull"} in scopes
    judge_registry_image(token_registry, f"{token_registry.host}/mount/target:1")


@pytest.fixture
def proxy_for(plain_registry):
    proxies = []

    def make(rule=None, **kw) -> FaultProxy:
        p = FaultProxy(plain_registry.url(), rule, **kw)
        proxies.append(p)
        return p
    yield make
    for p in proxies:
        p.close()


def test_chunked_upload_resyncs_after_416(base_images, plain_registry, proxy_for, tmp_path):
    # docker-registry 2.8 never answers 416 itself (it ignores Content-Range), so the proxy stores the
    # second PATCH at the registry and then tells the client 416, as a registry that lost step would.
    patches = []

    def rule(method, path, proxy):
        if method == "PATCH":
            patches.append(path)
            if len(patches) == 2:
                return Action(416, forward_first=True)
        return None

    proxy = proxy_for(rule)
    image = RegistryClient(RegistryOptions(retry_backoff=0.01), blob_dir=str(tmp_path / "b")).pull(
        base_images.busybox_amd64, fetch_layers=True)
    assert image.layers[0].size > 3 * 64 * 1024
    client = RegistryClient(RegistryOptions(chunk_size=64 * 1024, retry_backoff=0.01, jobs=1))
    client.push(image, [f"{proxy.host}/chunked/app:1"])
    methods = [m for m, p, _ in proxy.requests if "/blobs/uploads/" in p]
    i = methods.index("PATCH")
    assert methods[i:i + 4] == ["PATCH", "PATCH", "GET", "PATCH"]   # 416, then upload status, then on
    judge_registry_image(plain_registry, f"{plain_registry.host}/chunked/app:1")


def test_retries_on_5xx_and_429_with_retry_after(base_images, plain_registry, proxy_for, tmp_path):
    answers = {"n": 0}

    def rule(method, path, proxy):
        if "/manifests/" in path and answers.get("always"):
            return Action(503)
        if "/manifests/" in path and answers["n"] < 2:
            answers["n"] += 1
            return Action(503) if answers["n"] == 1 else Action(429, {"Retry-After": "0"})
        return None

    proxy = proxy_for(rule)
    src = base_images.busybox_amd64.replace(plain_registry.host, proxy.host)
    client = RegistryClient(RegistryOptions(retry_backoff=0.01), blob_dir=str(tmp_path / "b"))
    assert client.pull(src).digest
    assert answers["n"] == 2
    # out of retries: the error names the phase and the last status
    answers["always"] = True
    client = RegistryClient(RegistryOptions(retry_backoff=0.01, transport_retries=2), blob_dir=str(tmp_path / "c"))
    with pytest.raises(RegistryError, match=r"manifest GET .*base/busybox.*\(HTTP 503\)") as e:
        client.pull(src)
    assert e.value.status == 503


def test_push_retry_reruns_a_failed_destination(base_images, plain_registry, proxy_for, tmp_path):
    failures = {"n": 0}

    def rule(method, path, proxy):
        if method == "PUT" and "/manifests/" in path and failures["n"] < 1:
            failures["n"] += 1
            return Action(400)
        return None

    proxy = proxy_for(rule)
    image = RegistryClient(RegistryOptions(), blob_dir=str(tmp_path / "b")).pull(base_images.busybox_amd64)
    with pytest.raises(RegistryError, match="manifest PUT"):
        RegistryClient(RegistryOptions(retry_backoff=0.01)).push(image, [f"{proxy.host}/retry/app:1"])
    failures["n"] = 0
    RegistryClient(RegistryOptions(retry_backoff=0.01, push_retry=1)).push(image, [f"{proxy.host}/retry/app:1"])
    judge_registry_image(plain_registry, f"{plain_registry.host}/retry/app:1")


def test_redirect_followed_and_authorization_dropped_across_hosts(base_images, plain_registry, proxy_for, tmp_path):
    blob_host = proxy_for(hostname="localhost")   # another host name: credentials must not follow

    def rule(method, path, proxy):
        if method == "GET" and "/blobs/sha256:" in path:
            return Action(307, {"Location": f"http://{blob_host.host}{path}"})
        return None

    front = proxy_for(rule, require_basic=True)
    config = tmp_path / "cfg"
    config.mkdir()
    import base64
    (config / "config.json").write_text(json.dumps({"auths": {front.host: {
        "auth": base64.b64encode(b"user:secret").decode()}}}))
    client = RegistryClient(RegistryOptions(docker_config_dir=str(config)), blob_dir=str(tmp_path / "b"))
    image = client.pull(base_images.busybox_amd64.replace(plain_registry.host, front.host), fetch_layers=True)
    assert image.layers
    assert any(a for _, _, a in front.requests), "the front host got no credentials"
    blob_gets = [(p, a) for m, p, a in blob_host.requests if m == "GET"]
    assert len(blob_gets) == 2 and all(a is None for _, a in blob_gets)


def test_expired_token_mid_push_reauthenticates_once(base_images, token_registry, client_for):
    client = client_for(token_registry)
    image = client.pull(base_images.copy_image(base_images.busybox_amd64, token_registry, "expiry/src:1"))
    image.config.working_dir = "/expiry"
    t = client.transport(token_registry.host, push=True)
    dest = Reference.parse(f"{token_registry.host}/expiry/dst:1")
    layer = image.layers[0].digest
    # get a real push token, then spoil the cached copy: the registry answers 401 to it, as to an expired one
    t.request("HEAD", f"/v2/{dest.repository}/blobs/{layer}", phase="blob HEAD", repository=dest.repository,
              scopes=[repository_scope(dest.repository, "pull,push")], expect=[200, 404])
    for tok in t._tokens.values():
        tok.value = tok.value[:-8] + "AAAAAAAA"
    client.push(image, [dest])
    log = token_registry.read_log()
    assert re.search(rf'"HEAD /v2/expiry/dst/blobs/{layer} HTTP/1.1" 401', log)
    judge_registry_image(token_registry, f"{token_registry.host}/expiry/dst:1")


def test_wrong_credentials_name_the_phase(base_images, basic_registry, client_for, tmp_path, no_ambient_credentials):
    d = tmp_path / "bad"
    d.mkdir()
    import base64
    (d / "config.json").write_text(json.dumps({"auths": {basic_registry.host: {
        "auth": base64.b64encode(b"kiln:wrong").decode()}}}))
    client = client_for(basic_registry, docker_config_dir=str(d))
    with pytest.raises(UnauthorizedError, match=rf"manifest GET {re.escape(basic_registry.host)}/nothing/here") as e:
        client.pull(f"{basic_registry.host}/nothing/here:1")
    assert e.value.status == 401


def test_tls_without_ca_fails_with_a_hint(basic_registry, no_ambient_credentials):
    from executor.registry import RegistryClient, RegistryOptions
    client = RegistryClient(RegistryOptions(docker_config_dir=basic_registry.docker_config_dir, transport_retries=0))
    with pytest.raises(RegistryError, match="registry-certificate"):
        client.get_manifest(f"{basic_registry.host}/x:1")
    skip = RegistryClient(RegistryOptions(docker_config_dir=basic_registry.docker_config_dir, skip_tls_verify_pull=True))
    with pytest.raises(NotFoundError) as err:     # TLS skipped: the request got through, the tag is not there
        skip.get_manifest(f"{basic_registry.host}/x:1")
    assert str(err.value) == (f"manifest GET {basic_registry.host}/x: GET /v2/x/manifests/1: MANIFEST_UNKNOWN: "
                              "manifest unknown (HTTP 404)")


def test_identity_token_is_exchanged_with_a_refresh_grant(base_images, token_registry, client_for, tmp_path,
                                                          no_ambient_credentials):
    import requests
    src = base_images.copy_image(base_images.busybox_amd64, token_registry, "private/idt:1")
    answer = requests.get(token_registry.token_realm, params={"service": "kiln-test-registry", "offline_token": "true",
                                                               "scope": "repository:private/idt:pull"},
                          auth=(token_registry.username, token_registry.password), verify=token_registry.ca_path)
    refresh = answer.json()["refresh_token"]
    d = tmp_path / "idt"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"auths": {token_registry.host: {"identitytoken": refresh}}}))
    image = client_for(token_registry, docker_config_dir=str(d)).pull(src)
    assert image.layers
    grants = [r.get("grant_type") for r in token_registry.token_log()]
    assert "refresh_token" in grants
    # anonymous pull of private/ is refused at the token phase, naming registry and repository
    with pytest.raises(UnauthorizedError, match=rf"{re.escape(token_registry.host)}/private/idt"):
        client_for(token_registry, docker_config_dir=no_ambient_credentials).pull(src)


def test_registry_mirror_serves_docker_hub_names(base_images, plain_registry, client_for):
    base_images.copy_image(base_images.busybox_amd64, plain_registry, "library/busybox:mirrored")
    client = client_for(plain_registry, registry_mirrors=[plain_registry.host], skip_default_registry_fallback=True)
    image = client.pull("busybox:mirrored")
    assert image.layers and image.layers[0].source == f"{plain_registry.host}/library/busybox"
    base_images.copy_image(base_images.busybox_amd64, plain_registry, "hub/user/app:1")
    prefixed = client_for(plain_registry, registry_mirrors=["nothing.invalid", f"{plain_registry.host}/hub"],
                          skip_default_registry_fallback=True, transport_retries=0)
    assert prefixed.pull("user/app:1").layers[0].source == f"{plain_registry.host}/hub/user/app"
    empty = client_for(plain_registry, registry_mirrors=[plain_registry.host], skip_default_registry_fallback=True)
    with pytest.raises(RegistryError, match="library/nothing-here"):
        empty.pull("nothing-here:1")


def test_image_download_retry(base_images, plain_registry, proxy_for, tmp_path):
    state = {"n": 0}

    def rule(method, path, proxy):
        if "/blobs/" in path and method == "GET" and state["n"] < 1:
            state["n"] += 1
            return Action(502)
        return None

    proxy = proxy_for(rule)
    src = base_images.busybox_amd64.replace(plain_registry.host, proxy.host)
    no_retry = RegistryClient(RegistryOptions(transport_retries=0, retry_backoff=0.01), blob_dir=str(tmp_path / "a"))
    with pytest.raises(RegistryError, match=r"blob GET .*\(HTTP 502\)"):
        no_retry.pull(src)
    state["n"] = 0
    retrying = RegistryClient(RegistryOptions(transport_retries=0, image_download_retry=1, retry_backoff=0.01),
                              blob_dir=str(tmp_path / "b"))
    assert retrying.pull(src, fetch_layers=True).layers


def test_expires_in_is_honoured(base_images, make_registry, client_for, tmp_path):
    """A token past its expires_in is fetched anew before use, not discovered by a 401."""
    registry = make_registry("token", token_expires_in=2)
    image = client_for(base_images.registry).pull(base_images.busybox_amd64)
    client = client_for(registry)
    client.push(image, [f"{registry.host}/short/app:1"])
    issued = len(registry.token_log())
    import time
    time.sleep(2.2)
    image.config.user = "1000"
    client.push(image, [f"{registry.host}/short/app:2"])
    assert len(registry.token_log()) > issued
    assert not re.search(r'"[A-Z]+ /v2/short/app/[^"]*" 401', registry.read_log())


@pytest.mark.parametrize("fmt", [mt.OCI, mt.DOCKER])
def test_multi_platform_index_push(base_images, token_registry, client_for, fmt):
    from executor.image import Index
    src = client_for(base_images.registry)
    images = [src.pull(base_images.busybox_index, Platform.parse(p)).converted(fmt)
              for p in ("linux/amd64", "linux/arm64")]
    client = client_for(token_registry)
    descriptors = []
    for image in images:
        client.push(image, [f"{token_registry.host}/multi/{fmt}@{image.digest}"])
        descriptors.append(image.descriptor(platform=True))
    index = Index(mt.to_format(mt.OCI_INDEX, fmt), tuple(descriptors))
    ref = f"{token_registry.host}/multi/{fmt}:1"
    assert client.push_index(index, [ref]) == index.digest
    report = judge_registry_image(token_registry, ref, platform="linux/arm64")
    assert report.index_digest == index.digest and report.manifest_digest == images[1].digest
    assert client.pull(ref, Platform.parse("linux/arm64/v8")).digest == images[1].digest


def test_push_permission_check(token_registry, client_for, no_ambient_credentials):
    client_for(token_registry).check_push_permission(f"{token_registry.host}/perm/app:1")
    with pytest.raises(UnauthorizedError, match=rf"upload POST {re.escape(token_registry.host)}/perm/app"):
        client_for(token_registry, docker_config_dir=no_ambient_credentials).check_push_permission(
            f"{token_registry.host}/perm/app:1")
    log = token_registry.read_log()
    assert re.search(r'"POST /v2/perm/app/blobs/uploads/ HTTP/1.1" 202', log)


def test_plain_http_needs_insecure_for_non_local_names(base_images, plain_registry, tmp_path):
    """'127.1' reaches the loopback registry but is not a local name to kiln: HTTP must be allowed."""
    port = plain_registry.host.rsplit(":", 1)[1]
    src = base_images.busybox_amd64.replace(plain_registry.host, f"127.1:{port}")
    strict = RegistryClient(RegistryOptions(transport_retries=0), blob_dir=str(tmp_path / "a"))
    with pytest.raises(RegistryError, match="--insecure-pull"):
        strict.pull(src)
    assert RegistryClient(RegistryOptions(insecure_pull=True), blob_dir=str(tmp_path / "b")).pull(src).layers
    per_registry = RegistryClient(RegistryOptions(insecure_registries=[f"127.1:{port}"]), blob_dir=str(tmp_path / "c"))
    image = per_registry.pull(src)
    with pytest.raises(RegistryError, match="--insecure"):
        RegistryClient(RegistryOptions(insecure_pull=True, transport_retries=0)).push(
            image, [f"127.1:{port}/insecure/app:1"])
    per_registry.push(image, [f"127.1:{port}/insecure/app:1"])
    judge_registry_image(plain_registry, f"{plain_registry.host}/insecure/app:1")

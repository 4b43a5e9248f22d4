"""Each registry flavour works with a real client (skopeo) and enforces its auth rules."""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import requests

from tests.rig.registry import Registry

from .conftest import assert_ok, skopeo


@pytest.mark.parametrize("flavour", ["plain", "basic", "token"])
def test_skopeo_pushes_and_pulls_with_credentials(flavour: str, registries: dict[str, Registry],
                                                   tiny_layout: str, tmp_path) -> None:
    reg = registries[flavour]
    assert reg.host.startswith("127.0.0.1:")
    assert_ok(skopeo("copy", "-q", *reg.skopeo_args("dest"), tiny_layout, f"docker://{reg.host}/rig/tiny:1"))
    assert_ok(skopeo("copy", "-q", *reg.skopeo_args("src"), f"docker://{reg.host}/rig/tiny:1", f"dir:{tmp_path}/d"))
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert len(manifest["layers"]) == 1
    with open(f"{reg.docker_config_dir}/config.json") as f:
        auths = json.load(f)["auths"]
    assert (reg.host in auths) == (flavour != "plain")


def test_plain_registry_storage_and_log(plain_registry: Registry, tiny_layout: str) -> None:
    assert_ok(skopeo("copy", "-q", *plain_registry.skopeo_args(), tiny_layout,
                     f"docker://{plain_registry.host}/rig/logged:1"))
    assert "/v2/rig/logged/manifests/1" in plain_registry.read_log()
    assert requests.get(plain_registry.url("/v2/rig/logged/tags/list")).json()["tags"] == ["1"]


def test_basic_registry_refuses_wrong_and_missing_credentials(basic_registry: Registry, tiny_layout: str) -> None:
    reg = basic_registry
    assert requests.get(reg.url("/v2/"), verify=reg.ca_path).status_code == 401
    assert requests.get(reg.url("/v2/"), verify=reg.ca_path, auth=(reg.username, "wrong")).status_code == 401
    assert requests.get(reg.url("/v2/"), verify=reg.ca_path, auth=(reg.username, reg.password)).status_code == 200
    proc = skopeo("copy", "-q", f"--dest-cert-dir={reg.cert_dir}", f"--dest-creds={reg.username}:wrong",
                  tiny_layout, f"docker://{reg.host}/rig/tiny:wrong")
    assert proc.returncode != 0 and "unauthorized" in proc.stderr.lower()


def test_tls_is_verified_against_the_session_ca(basic_registry: Registry) -> None:
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        requests.get(basic_registry.url("/v2/"))  # system trust store does not know our CA


def _token(reg: Registry, scopes: list[str], auth=None) -> requests.Response:
    return requests.get(reg.token_realm, params={"service": "kiln-test-registry", "scope": scopes},
                        auth=auth, verify=reg.ca_path)


def test_token_registry_push_needs_credentials(token_registry: Registry, tiny_layout: str) -> None:
    reg = token_registry
    proc = skopeo("copy", "-q", *reg.skopeo_args("dest", anonymous=True), tiny_layout,
                  f"docker://{reg.host}/rig/anon:1")
    assert proc.returncode != 0, "anonymous push must be refused"
    assert re.search(r"unauthorized|authentication required|denied", proc.stderr, re.I), proc.stderr
    proc = skopeo("copy", "-q", f"--dest-cert-dir={reg.cert_dir}", f"--dest-creds={reg.username}:wrong",
                  tiny_layout, f"docker://{reg.host}/rig/anon:1")
    assert proc.returncode != 0, "push with a wrong password must be refused"
    assert re.search(r"unauthorized|authentication required", proc.stderr, re.I), proc.stderr
    assert _token(reg, ["repository:rig/anon:push"], auth=(reg.username, "wrong")).status_code == 401
    denied = [e for e in reg.token_log() if e.get("status") == 401]
    assert denied and denied[-1]["account"] == reg.username


def test_token_registry_anonymous_pull_public_not_private(token_registry: Registry, tiny_layout: str,
                                                          tmp_path) -> None:
    reg = token_registry
    for repo in ("rig/public", "private/secret"):
        assert_ok(skopeo("copy", "-q", *reg.skopeo_args("dest"), tiny_layout, f"docker://{reg.host}/{repo}:1"))
    assert_ok(skopeo("inspect", "--raw", *reg.skopeo_args("", anonymous=True), f"docker://{reg.host}/rig/public:1"))
    proc = skopeo("inspect", "--raw", *reg.skopeo_args("", anonymous=True), f"docker://{reg.host}/private/secret:1")
    assert proc.returncode != 0, "anonymous pull of private/ must be refused"
    assert re.search(r"unauthorized|authentication required|denied", proc.stderr, re.I), proc.stderr
    assert_ok(skopeo("inspect", "--raw", *reg.skopeo_args(""), f"docker://{reg.host}/private/secret:1"))
    # the token itself: anonymous gets pull on public, nothing on private, never push
    body = _token(reg, ["repository:rig/public:pull,push", "repository:private/secret:pull"]).json()
    granted = [e for e in reg.token_log() if e.get("method") == "GET"][-1]["granted"]
    assert granted == [{"type": "repository", "name": "rig/public", "actions": ["pull"]},
                       {"type": "repository", "name": "private/secret", "actions": []}]
    assert body["token"] == body["access_token"] and body["expires_in"] > 0
    headers = {"Authorization": f"Bearer {body['token']}"}
    ok = requests.get(reg.url("/v2/rig/public/tags/list"), headers=headers, verify=reg.ca_path)
    assert ok.status_code == 200 and ok.json()["tags"] == ["1"]
    refused = requests.get(reg.url("/v2/private/secret/tags/list"), headers=headers, verify=reg.ca_path)
    assert refused.status_code == 401


def test_token_server_oauth2_post_and_refresh(token_registry: Registry) -> None:
    reg = token_registry
    scopes = "repository:rig/a:pull,push repository:rig/b:pull"   # two scopes: cross-repo mount
    resp = requests.post(reg.token_realm, verify=reg.ca_path, data={
        "grant_type": "password", "username": reg.username, "password": reg.password, "scope": scopes,
        "service": "kiln-test-registry", "client_id": "kiln-tests", "access_type": "offline"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["access_token"] and body["refresh_token"] and body["expires_in"] > 0
    entry = reg.token_log()[-1]
    assert entry["grant_type"] == "password" and entry["account"] == reg.username
    assert entry["granted"] == [{"type": "repository", "name": "rig/a", "actions": ["pull", "push"]},
                                {"type": "repository", "name": "rig/b", "actions": ["pull"]}]
    resp = requests.post(reg.token_realm, verify=reg.ca_path, data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"], "scope": "repository:rig/c:push",
        "service": "kiln-test-registry", "client_id": "kiln-tests"})
    assert resp.status_code == 200 and resp.json()["access_token"]
    assert reg.token_log()[-1]["granted"][0]["actions"] == ["push"]
    bad = requests.post(reg.token_realm, verify=reg.ca_path, data={
        "grant_type": "refresh_token", "refresh_token": "nope", "scope": "repository:rig/c:push"})
    assert bad.status_code == 401
    bad = requests.post(reg.token_realm, verify=reg.ca_path, data={
        "grant_type": "password", "username": reg.username, "password": "wrong", "scope": scopes})
    assert bad.status_code == 401


def test_registry_processes_listen_on_loopback_only(registries: dict[str, Registry]) -> None:
    out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    for reg in registries.values():
        port = reg.host.rsplit(":", 1)[1]
        listeners = [ln.split()[3] for ln in out.splitlines() if ln.split()[3].endswith(f":{port}")]
        assert listeners == [f"127.0.0.1:{port}"], listeners


def test_token_server_get_offline_token(token_registry: Registry) -> None:
    reg = token_registry
    resp = requests.get(reg.token_realm, verify=reg.ca_path, auth=(reg.username, reg.password),
                        params={"service": "kiln-test-registry", "scope": "repository:rig/x:pull",
                                "offline_token": "true", "client_id": "kiln-tests"})
    assert resp.status_code == 200 and resp.json()["refresh_token"]
    anon = requests.get(reg.token_realm, verify=reg.ca_path,
                        params={"service": "kiln-test-registry", "scope": "repository:rig/x:pull",
                                "offline_token": "true"})
    assert anon.status_code == 200 and "refresh_token" not in anon.json()   # no account, no refresh token
    wrong_service = requests.get(reg.token_realm, verify=reg.ca_path, params={"service": "other"})
    assert wrong_service.status_code == 400


def test_cross_repo_mount_with_a_two_scope_token(token_registry: Registry) -> None:
    from tests.rig.regclient import RigClient

    reg = token_registry
    digest = RigClient(reg).upload_blob("rig/mount-src", b"a blob to mount " * 100)
    token = _token(reg, ["repository:rig/mount-dst:pull,push", "repository:rig/mount-src:pull"],
                   auth=(reg.username, reg.password)).json()["token"]
    resp = requests.post(reg.url(f"/v2/rig/mount-dst/blobs/uploads/?mount={digest}&from=rig/mount-src"),
                         headers={"Authorization": f"Bearer {token}"}, verify=reg.ca_path)
    assert resp.status_code == 201, resp.text           # mounted, not a new upload (202)
    assert f"mount={digest}&from=rig/mount-src" in reg.read_log().replace("%3A", ":").replace("%2F", "/")
    head = requests.head(reg.url(f"/v2/rig/mount-dst/blobs/{digest}"), headers={"Authorization": f"Bearer {token}"},
                         verify=reg.ca_path)
    assert head.status_code == 200


def test_make_registry_gives_private_short_lived_tokens(make_registry, token_registry: Registry) -> None:
    reg = make_registry("token", token_expires_in=7)
    assert reg.host != token_registry.host and reg.token_log_path != token_registry.token_log_path
    body = _token(reg, ["repository:x/y:pull"]).json()
    assert body["expires_in"] == 7
    plain = make_registry("plain")
    assert requests.get(plain.url("/v2/_catalog")).json() == {"repositories": []}


@pytest.mark.parametrize("flavour", ["basic", "token"])
def test_docker_config_dir_authenticates_skopeo(flavour: str, registries: dict[str, Registry],
                                                tiny_layout: str) -> None:
    reg = registries[flavour]
    authfile = f"{reg.docker_config_dir}/config.json"
    assert_ok(skopeo("copy", "-q", f"--dest-cert-dir={reg.cert_dir}", f"--dest-authfile={authfile}",
                     tiny_layout, f"docker://{reg.host}/rig/authfile:1"))


def test_stop_kills_the_processes_and_frees_the_port(test_pki, tmp_path) -> None:
    import socket

    from tests.rig.registry import start_registry

    running = start_registry("token", str(tmp_path / "reg"), test_pki)
    pids = [p.pid for p in running.processes]
    assert len(pids) == 2   # token server + registry
    running.stop()
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(running.registry.host.rsplit(":", 1)[1])), timeout=1)

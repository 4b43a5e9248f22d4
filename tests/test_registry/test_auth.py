import base64
import json
import os
import stat

import pytest

from executor.registry import ANONYMOUS, CredentialError
from executor.registry.auth import resolve

REG = "reg.example:5000"


def _config(d, obj):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(obj, f)
    return str(d)


@pytest.fixture
def env(monkeypatch, tmp_path):
    for k in ("DOCKER_CONFIG", "CI_REGISTRY", "CI_REGISTRY_USER", "CI_REGISTRY_PASSWORD"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def _b64(s):
    return base64.b64encode(s.encode()).decode()


def test_auth_field(env, tmp_path):
    d = _config(tmp_path / "c", {"auths": {REG: {"auth": _b64("alice:s3:cret")}}})
    env.setenv("DOCKER_CONFIG", d)
    c = resolve(REG)
    assert (c.username, c.password) == ("alice", "s3:cret")
    assert "s3:cret" not in repr(c)
    assert resolve("other.example") is ANONYMOUS


def test_username_password_and_url_keys(env, tmp_path):
    d = _config(tmp_path / "c", {"auths": {f"https://{REG}/v2/": {"username": "bob", "password": "pw"},
                                           "https://index.docker.io/v1/": {"auth": _b64("hub:pw")}}})
    env.setenv("DOCKER_CONFIG", d)
    assert resolve(REG).username == "bob"
    assert resolve("docker.io").username == "hub"
    assert resolve("index.docker.io").username == "hub"


def test_identity_token(env, tmp_path):
    d = _config(tmp_path / "c", {"auths": {REG: {"identitytoken": "refresh-me"}}})
    env.setenv("DOCKER_CONFIG", d)
    c = resolve(REG)
    assert c.identity_token == "refresh-me" and not c.anonymous


def test_search_order(env, tmp_path):
    home = tmp_path / "home"
    _config(home / ".docker", {"auths": {REG: {"auth": _b64("home:pw")}}})
    assert resolve(REG).username == "home"
    d = _config(tmp_path / "env", {"auths": {REG: {"auth": _b64("env:pw")}}})
    env.setenv("DOCKER_CONFIG", d)
    assert resolve(REG).username == "env"
    explicit = _config(tmp_path / "explicit", {"auths": {REG: {"auth": _b64("explicit:pw")}}})
    assert resolve(REG, explicit).username == "explicit"


def test_bad_config_names_the_file(env, tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    (d / "config.json").write_text("{not json")
    env.setenv("DOCKER_CONFIG", str(d))
    with pytest.raises(CredentialError, match=str(d / "config.json")):
        resolve(REG)
    _config(d, {"auths": {REG: {"auth": _b64("no-colon")}}})
    with pytest.raises(CredentialError, match=r"auths\['reg.example:5000'\]"):
        resolve(REG)


@pytest.fixture
def fake_helper(env, tmp_path):
    """docker-credential-fake on PATH: answers from a JSON file of server -> [user, secret]."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    store = tmp_path / "store.json"
    log = tmp_path / "helper.log"
    script = bindir / "docker-credential-fake"
    script.write_text(f"""#!/usr/bin/env python3
import json, sys
assert sys.argv[1] == "get", sys.argv
server = sys.stdin.read().strip()
open({str(log)!r}, "a").write(server + "\\n")
store = json.load(open({str(store)!r}))
if server not in store:
    print("credentials not found in native keychain")
    sys.exit(1)
user, secret = store[server]
print(json.dumps({{"ServerURL": server, "Username": user, "Secret": secret}}))
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    env.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return store, log


def test_cred_helpers_and_store(env, tmp_path, fake_helper):
    store, log = fake_helper
    store.write_text(json.dumps({REG: ["helper-user", "helper-pw"], "https://index.docker.io/v1/": ["<token>", "idt"]}))
    d = _config(tmp_path / "c", {"credHelpers": {REG: "fake"}, "auths": {REG: {"auth": _b64("file:pw")}}})
    env.setenv("DOCKER_CONFIG", d)
    c = resolve(REG)
    assert (c.username, c.password) == ("helper-user", "helper-pw")
    assert "docker-credential-fake" in c.origin
    _config(tmp_path / "c", {"credsStore": "fake"})
    hub = resolve("docker.io")
    assert hub.identity_token == "idt" and hub.username == ""
    assert log.read_text().splitlines() == [REG, "https://index.docker.io/v1/"]
    # the helper knows nothing of this registry: falls back to auths, then anonymous
    _config(tmp_path / "c", {"credsStore": "fake", "auths": {"other.example": {"auth": _b64("o:p")}}})
    assert resolve("other.example").username == "o"
    assert resolve("third.example") is ANONYMOUS


def test_missing_helper_is_named(env, tmp_path):
    env.setenv("DOCKER_CONFIG", _config(tmp_path / "c", {"credHelpers": {REG: "nosuchhelper"}}))
    with pytest.raises(CredentialError, match="docker-credential-nosuchhelper is not on PATH"):
        resolve(REG)


def test_gitlab_fallback(env, tmp_path):
    env.setenv("CI_REGISTRY", REG)
    env.setenv("CI_REGISTRY_USER", "gitlab-ci-token")
    env.setenv("CI_REGISTRY_PASSWORD", "job-token")
    c = resolve(REG)
    assert (c.username, c.password) == ("gitlab-ci-token", "job-token")
    assert resolve("other.example") is ANONYMOUS
    # config.json wins over the CI variables
    env.setenv("DOCKER_CONFIG", _config(tmp_path / "c", {"auths": {REG: {"auth": _b64("cfg:pw")}}}))
    assert resolve(REG).username == "cfg"

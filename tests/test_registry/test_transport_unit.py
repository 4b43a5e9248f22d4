import time

from executor.registry.options import RegistryOptions, is_local
from executor.registry.transport import parse_challenge, parse_token_answer, retry_after_seconds


def test_parse_challenge():
    c = parse_challenge('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.example/token", "service": "reg", "scope": "repository:a/b:pull,push"}
    assert parse_challenge('Basic realm="x"').scheme == "basic"
    assert parse_challenge("") is None


def test_retry_after():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after_seconds(future) <= 31
    assert retry_after_seconds("garbage") is None


def test_options_per_registry():
    o = RegistryOptions(insecure_registries=["a.example:5000"], skip_tls_verify_registries=["b.example"],
                        registry_certificates={"c.example": "/ca.pem"}, skip_tls_verify_pull=True)
    assert o.allows_http("a.example:5000", push=True) and o.allows_http("a.example:5000", push=False)
    assert not o.allows_http("b.example", push=True)
    assert o.verify_tls("b.example", push=True) is False
    assert o.verify_tls("c.example", push=True) == "/ca.pem"
    assert o.verify_tls("c.example", push=False) is False  # --skip-tls-verify-pull
    assert o.verify_tls("d.example", push=True) is True
    assert RegistryOptions(insecure=True).allows_http("x", push=True)
    assert not RegistryOptions(insecure=True).allows_http("x", push=False)


def test_mirrors():
    o = RegistryOptions(registry_mirrors=["mirror.example", "https://m2.example/", "m3.example:5000/hub"])
    assert o.pull_registries("docker.io") == ["mirror.example", "m2.example", "m3.example:5000/hub", "docker.io"]
    assert o.pull_registries("ghcr.io") == ["ghcr.io"]
    o.skip_default_registry_fallback = True
    assert o.pull_registries("docker.io") == ["mirror.example", "m2.example", "m3.example:5000/hub"]


def test_registry_maps():
    """--registry-map (kaniko's RegistryMaps): mirrors per registry, in order, then the registry itself."""
    o = RegistryOptions(registry_maps={"quay.io": ["q1.example", "q2.example:5000/quay"],
                                       "index.docker.io": ["hub-mirror.example"], "made-up.example": ["127.0.0.1:5000"]},
                        registry_mirrors=["m.example"])
    assert o.pull_registries("quay.io") == ["q1.example", "q2.example:5000/quay", "quay.io"]
    assert o.pull_registries("docker.io") == ["hub-mirror.example", "m.example", "docker.io"]
    assert o.pull_registries("made-up.example") == ["127.0.0.1:5000", "made-up.example"]
    assert o.pull_registries("ghcr.io") == ["ghcr.io"]
    assert RegistryOptions(registry_maps={"docker.io": ["d.example"]}).pull_registries("docker.io") == \
        ["d.example", "docker.io"]
    o.skip_default_registry_fallback = True
    assert o.pull_registries("quay.io") == ["q1.example", "q2.example:5000/quay"]
    assert o.pull_registries("ghcr.io") == ["ghcr.io"]       # nothing mapped: the registry itself


def test_is_local():
    assert is_local("localhost:5000") and is_local("127.0.0.1:1") and is_local("10.1.2.3")
    assert not is_local("ghcr.io") and not is_local("8.8.8.8:443")


def test_token_answers():
    assert parse_token_answer({"token": "a", "expires_in": 300}) == ("a", 300.0)
    assert parse_token_answer({"access_token": "b"}) == ("b", 60.0)
    assert parse_token_answer({"token": "c", "access_token": "d", "expires_in": "x"}) == ("c", 60.0)
    assert parse_token_answer({"token": "e", "expires_in": 0}) == ("e", 60.0)
    assert parse_token_answer([]) == ("", 60.0)

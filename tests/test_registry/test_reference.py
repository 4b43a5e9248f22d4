import pytest

from executor.registry import Reference, ReferenceError
from executor.registry.reference import registry_host

H = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,registry,repository,tag,digest", [
    ("busybox", "docker.io", "library/busybox", "latest", None),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
    ("user/app", "docker.io", "user/app", "latest", None),
    ("docker.io/busybox", "docker.io", "library/busybox", "latest", None),
    ("index.docker.io/library/busybox:x", "docker.io", "library/busybox", "x", None),
    ("registry-1.docker.io/user/app:1", "docker.io", "user/app", "1", None),
    ("localhost/app", "localhost", "app", "latest", None),
    ("localhost:5000/a/b/c:v1.2-rc_3", "localhost:5000", "a/b/c", "v1.2-rc_3", None),
    ("127.0.0.1:5000/app@" + H, "127.0.0.1:5000", "app", None, H),
    ("ghcr.io/org/app:1@" + H, "ghcr.io", "org/app", "1", H),
    ("gcr.io/p/a__b.c-d", "gcr.io", "p/a__b.c-d", "latest", None),
    ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
])
def test_parse(text, registry, repository, tag, digest):
    r = Reference.parse(text)
    assert (r.registry, r.repository, r.tag, r.digest) == (registry, repository, tag, digest)


def test_views():
    r = Reference.parse("busybox")
    assert str(r) == "docker.io/library/busybox:latest"
    assert r.familiar() == "busybox:latest"
    assert r.kaniko_name == "index.docker.io/library/busybox"
    assert r.api_host == "index.docker.io"
    d = Reference.parse("ghcr.io/org/app:1@" + H)
    assert d.identifier == H and str(d) == "ghcr.io/org/app:1@" + H
    assert Reference.parse("app", default_tag=False).tag is None
    # a Docker Hub repository whose first component looks like a host keeps its registry when shortened
    dotted = Reference.parse("docker.io/a.b/c")
    assert dotted.familiar() == "docker.io/a.b/c:latest" and Reference.parse(dotted.familiar()) == dotted


@pytest.mark.parametrize("bad,why", [
    ("", "empty"),
    (" busybox", "whitespace"),
    ("Busybox", "lowercase"),
    ("docker.io/User/app", "lowercase"),
    ("app:", "tag"),
    ("app:-x", "tag"),
    ("app:" + "x" * 129, "tag"),
    ("app@sha256:abc", "64"),
    ("app@" + H + "@" + H, "more than one"),
    ("a//b", "path component"),
    ("a/b_-c", "path component"),
    ("host:port/app", "tag|port"),
    ("localhost:5000/", "no repository"),
    ("x" * 250 + ".io/" + "y" * 10, "longer"),
])
def test_parse_rejects_naming_the_reference(bad, why):
    with pytest.raises(ReferenceError, match=why) as e:
        Reference.parse(bad)
    assert repr(bad)[:20].strip("'") in str(e.value) or bad == ""


def test_registry_host():
    assert registry_host("https://index.docker.io/v1/") == "docker.io"
    assert registry_host("127.0.0.1:5000") == "127.0.0.1:5000"
    assert registry_host("http://my.reg:443/path") == "my.reg:443"

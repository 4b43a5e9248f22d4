import pytest

from executor.image import Descriptor, Index, NoMatchingPlatform, Platform, host_platform
from executor.image import mediatypes as mt


@pytest.mark.parametrize("text,want", [
    ("linux/amd64", Platform("linux", "amd64")),
    ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
    ("linux/arm64", Platform("linux", "arm64")),
    ("linux/arm/7", Platform("linux", "arm", "v7")),
    ("linux/aarch64", Platform("linux", "arm64")),
    ("linux/x86_64", Platform("linux", "amd64")),
    ("linux/armhf", Platform("linux", "arm", "v7")),
    ("arm64", Platform("linux", "arm64")),
    ("Linux/AMD64", Platform("linux", "amd64")),
])
def test_parse(text, want):
    assert Platform.parse(text) == want


@pytest.mark.parametrize("bad", ["", "linux/", "/amd64", "linux/arm/v7/x"])
def test_parse_rejects(bad):
    with pytest.raises(ValueError, match="invalid platform"):
        Platform.parse(bad)


@pytest.mark.parametrize("want,have,ok", [
    ("linux/arm64", "linux/arm64/v8", True),
    ("linux/arm64/v8", "linux/arm64", True),
    ("linux/arm64/v8", "linux/arm64/v9", False),
    ("linux/arm", "linux/arm/v7", True),
    ("linux/arm", "linux/arm/v6", False),
    ("linux/arm/v6", "linux/arm/v6", True),
    ("linux/amd64", "linux/amd64/v3", True),
    ("linux/amd64/v3", "linux/amd64", False),
    ("linux/amd64/v3", "linux/amd64/v3", True),
    ("linux/amd64", "linux/arm64", False),
    ("linux/amd64", "windows/amd64", False),
])
def test_matches(want, have, ok):
    assert Platform.parse(want).matches(Platform.parse(have)) is ok


def _index():
    def desc(n, plat):
        return Descriptor(mt.OCI_MANIFEST, "sha256:" + str(n) * 64, 100 + n, platform=plat)
    return Index(mt.OCI_INDEX, (
        desc(1, Platform("unknown", "unknown")),
        desc(2, Platform("linux", "amd64")),
        desc(3, Platform("linux", "arm", "v6")),
        desc(4, Platform("linux", "arm", "v7")),
        desc(5, Platform("linux", "arm64", "v8")),
    ))


def test_index_select():
    idx = _index()
    assert idx.select(Platform.parse("linux/amd64")).size == 102
    assert idx.select(Platform.parse("linux/arm64")).size == 105
    assert idx.select(Platform.parse("linux/arm")).size == 104
    assert idx.select(Platform.parse("linux/arm/v6")).size == 103
    with pytest.raises(NoMatchingPlatform, match=r"linux/s390x .*linux/amd64"):
        idx.select(Platform.parse("linux/s390x"), where="example.com/x:1")


def test_index_round_trip_keeps_bytes():
    raw = _index().to_bytes().replace(b",", b", ")
    idx = Index.from_bytes(raw)
    assert idx.to_bytes() == raw
    assert idx.with_manifest(idx.manifests[0]).to_bytes() != raw


def test_host_is_linux():
    p = host_platform()
    assert p.os == "linux" and p.architecture

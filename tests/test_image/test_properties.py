import io
import pathlib
import tempfile
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from executor.image import Descriptor, Index, Manifest, Platform, compression
from executor.image import mediatypes as mt

hexdigest = st.from_regex(r"\A[0-9a-f]{64}\Z").map(lambda h: "sha256:" + h)


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=50_000), kind=st.sampled_from(["gzip", "zstd", "none"]),
       level=st.none() | st.integers(1, 9))
def test_compression_round_trip(data, kind, level):
    with tempfile.TemporaryDirectory(prefix="kiln-comp-") as tmp:
        _round_trip(pathlib.Path(tmp), data, kind, level)


def _round_trip(d, data, kind, level):
    src, dst = d / "src", d / "dst"
    src.write_bytes(data)
    res = compression.compress_file(str(src), str(dst), kind, level)
    blob = dst.read_bytes()
    assert res.size == len(blob) and res.uncompressed_size == len(data)
    if kind != "none":
        assert compression.detect(blob[:4]) == kind
    with compression.open_decompressed(io.BytesIO(blob), kind) as r:
        assert r.read() == data


descriptor = st.builds(
    Descriptor, media_type=st.sampled_from([mt.OCI_LAYER_GZIP, mt.OCI_LAYER_ZSTD, mt.DOCKER_LAYER, mt.OCI_LAYER]),
    digest=hexdigest, size=st.integers(0, 2**40),
    annotations=st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=2))


@settings(max_examples=60, deadline=None)
@given(st.lists(descriptor, max_size=5), hexdigest, st.sampled_from([mt.OCI, mt.DOCKER]))
def test_manifest_json_round_trip(layers, config_digest, fmt):
    m = Manifest(mt.to_format(mt.OCI_MANIFEST, fmt), Descriptor(mt.to_format(mt.OCI_CONFIG, fmt), config_digest, 7),
                 tuple(layers))
    data = m.to_bytes()
    back = Manifest.from_bytes(data)
    assert back == m and back.to_bytes() == data
    assert json.loads(data)["schemaVersion"] == 2
    other = mt.DOCKER if fmt == mt.OCI else mt.OCI
    assert m.converted(other).converted(fmt).to_bytes() == Manifest(
        m.media_type, m.config, tuple(l.with_media_type(mt.to_format(mt.to_format(l.media_type, other), fmt))
                                      for l in m.layers)).to_bytes()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(hexdigest, st.sampled_from(["linux/amd64", "linux/arm64/v8", "linux/arm/v7",
                                                       "linux/s390x", "windows/amd64"])), max_size=5))
def test_index_round_trip_and_select(entries):
    idx = Index(mt.DOCKER_MANIFEST_LIST, tuple(Descriptor(mt.DOCKER_MANIFEST, d, 10, platform=Platform.parse(p))
                                                for d, p in entries))
    back = Index.from_bytes(idx.to_bytes())
    assert back == idx
    for d, p in entries:
        chosen = back.select(Platform.parse(p))
        assert Platform.parse(p).matches(chosen.platform)

from hypothesis import given, settings
from hypothesis import strategies as st

from executor.registry import Reference

component = st.from_regex(r"\A[a-z0-9]{1,6}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,6}){0,2}\Z")
tag = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")
host = st.sampled_from(["", "localhost:5000/", "127.0.0.1:5000/", "ghcr.io/", "docker.io/", "index.docker.io/",
                        "my-reg.example.com:443/"])
digest = st.from_regex(r"\A[0-9a-f]{64}\Z").map(lambda h: "sha256:" + h)


@settings(max_examples=150, deadline=None)
@given(host, st.lists(component, min_size=1, max_size=3), st.none() | tag, st.none() | digest)
def test_parse_print_parse_is_stable(h, parts, t, d):
    if h == "" and ("." in parts[0] and len(parts) > 1):
        h = "docker.io/"   # docker reads a dotted first component as a registry host
    text = h + "/".join(parts) + (f":{t}" if t else "") + (f"@{d}" if d else "")
    ref = Reference.parse(text)
    assert Reference.parse(str(ref)) == ref
    assert Reference.parse(ref.familiar()) == ref
    assert ref.digest == d
    assert ref.tag == (t or (None if d else "latest"))
    assert ref.repository.endswith("/".join(parts))

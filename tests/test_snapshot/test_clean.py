"""`clean`: a tar name or image path to the relative image path; its fast path agrees with the careful one."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from snapshot.paths import PathEscapeError, clean


def careful(name: str) -> str:
    """`clean`'s own careful path for `name`: a leading "//" (dropped, as every leading slash) never takes the
    fast path."""
    return clean("//" + name)


@pytest.mark.parametrize("name, rel", [
    ("./usr/bin/env", "usr/bin/env"), ("./usr/", "usr"), ("usr/bin/", "usr/bin"), ("./", ""), (".", ""),
    ("/etc/passwd", "etc/passwd"), ("./.hidden/x", ".hidden/x"), ("a/./b", "a/b"), ("a/../b", "b"),
    ("a//b", "a/b"), ("./a/.wh.b", "a/.wh.b"), ("x/..", ""), ("...", "..."), ("./..a/b", "..a/b"),
])
def test_table(name, rel):
    assert clean(name) == rel


@pytest.mark.parametrize("name", ["..", "../x", "./../x", "a/../../x", "/.."])
def test_escape_refused(name):
    with pytest.raises(PathEscapeError, match="leaves the root"):
        clean(name)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["", ".", "..", "a", ".b", "..c", "d.", ".wh.e", "f g"]), min_size=1, max_size=6))
def test_agrees_with_careful(parts):
    name = "/".join(parts)
    try:
        want = careful(name)
    except PathEscapeError:
        with pytest.raises(PathEscapeError):
            clean(name)
        return
    assert clean(name) == want

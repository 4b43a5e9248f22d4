from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapshot.paths import PathEscapeError, RootPathError, clean, resolve_in_root


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp("hostile"))
    os.makedirs(os.path.join(root, "a", "b"))
    os.symlink("/", os.path.join(root, "a", "abs-root"))
    os.symlink("../../../../..", os.path.join(root, "a", "b", "up"))
    os.symlink("/etc/../../../x", os.path.join(root, "escape"))
    os.symlink("a/b", os.path.join(root, "rel"))
    os.symlink("loop2", os.path.join(root, "loop1"))
    os.symlink("loop1", os.path.join(root, "loop2"))
    return root


def test_absolute_symlink_stays_in_the_root(hostile_root):
    assert resolve_in_root(hostile_root, "/a/abs-root/etc/passwd") == os.path.join(hostile_root, "etc", "passwd")
    assert resolve_in_root(hostile_root, "/escape") == os.path.join(hostile_root, "x")
    assert resolve_in_root(hostile_root, "/rel/up/z") == os.path.join(hostile_root, "z")
    assert resolve_in_root(hostile_root, "/") == hostile_root


def test_symlink_loop_is_an_error(hostile_root):
    with pytest.raises(RootPathError) as err:
        resolve_in_root(hostile_root, "/loop1/x")
    assert str(err.value) == f"too many levels of symbolic links resolving /loop1/x in {hostile_root}"


def test_a_name_above_the_root_is_refused():
    """snapshot.paths.clean: `..` may not climb above the root (a tar entry, a snapshot path)."""
    assert clean("/a/./b/../c/") == "a/c" and clean("a/..") == ""
    with pytest.raises(PathEscapeError) as err:
        clean("a/../../etc/passwd")
    assert str(err.value) == "'a/../../etc/passwd' leaves the root through '..'"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "..", ".", "abs-root", "up", "escape", "rel", "etc", "x"]),
                max_size=12))
def test_no_path_escapes_the_root(hostile_root, parts):
    result = resolve_in_root(hostile_root, "/" + "/".join(parts))
    assert result == hostile_root or result.startswith(hostile_root + os.sep)

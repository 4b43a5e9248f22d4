"""Go filepath.Match semantics (cases from Go's documented behaviour), bad patterns match nothing."""
from __future__ import annotations

import pytest

from executor.commands.copying.match import BadPattern, go_match, has_wildcards, validate_pattern

CASES = [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True),
    ("a*", "abc", True), ("a*", "ab/c", False), ("a*/b", "abc/b", True), ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True), ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False), ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True), ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True), ("ab[b-d]", "abc", True), ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False), ("ab[^b-d]", "abc", False), ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True), ("a\\*b", "ab", False), ("a?b", "a\u263ab", True),
    ("a[^a]b", "a\u263ab", True), ("a???b", "a\u263ab", False), ("[a-\u03b6]*", "\u03b1", True),
    ("*[a-\u03b6]", "A", False), ("a?b", "a/b", False), ("a*b", "a/b", False),
    ("[\\]a]", "]", True), ("[\\-]", "-", True), ("[x\\-]", "x", True), ("[x\\-]", "-", True),
    ("[x\\-]", "z", False), ("[\\-x]", "-", True), ("[\\-x]", "a", False), ("*x", "xxx", True),
    ("arr[[]0].txt", "arr[0].txt", True), ("index.?s", "index.js", True), ("*.png", "a/b.png", False),
]

BAD = ["[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "a/b["]


@pytest.mark.parametrize("pattern,name,expected", CASES)
def test_go_match(pattern: str, name: str, expected: bool) -> None:
    assert go_match(pattern, name) is expected


@pytest.mark.parametrize("pattern", BAD)
def test_bad_patterns_match_nothing(pattern: str) -> None:
    with pytest.raises(BadPattern) as err:     # internal: never shown, a bad pattern matches nothing
        validate_pattern(pattern)
    assert str(err.value) == pattern
    assert go_match(pattern, "a") is False
    assert go_match(pattern, "]") is False


def test_has_wildcards_honours_escapes() -> None:
    assert has_wildcards("*.txt") and has_wildcards("a?") and has_wildcards("[ab]")
    assert not has_wildcards("plain.txt")
    assert not has_wildcards("a\\*b")  # escaped: taken literally

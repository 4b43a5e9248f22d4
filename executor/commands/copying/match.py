"""Go ``filepath.Match`` semantics for COPY/ADD source wildcards.

Rules (Go, Unix): ``*`` is any run of non-``/`` characters, ``?`` one non-``/`` character,
``[...]`` a non-empty class of characters or ``lo-hi`` ranges (``^`` negates, ``\\`` escapes inside),
``\\c`` the literal ``c``. A malformed pattern matches nothing (BuildKit ignores Go's ErrBadPattern).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

WILDCARD_CHARS = "*?["


class BadPattern(ValueError):
    """A pattern Go's filepath.Match would reject with ErrBadPattern."""


@dataclass(frozen=True)
class _Class:
    """A `[...]` character class of a wildcard pattern: its ranges and whether `^` negates it (Go's
    filepath.Match)."""
    negated: bool
    ranges: tuple[tuple[str, str], ...]

    def matches(self, ch: str) -> bool:
        inside = any(lo <= ch <= hi for lo, hi in self.ranges)
        return inside != self.negated


# A token is a literal character (str of length 1), "*" star, "?" any, or a _Class.
_STAR = object()
_ANY = object()


def has_wildcards(name: str) -> bool:
    """True when ``name`` holds an unescaped ``*``, ``?`` or ``[`` (a backslash skips the next byte)."""
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "\\":
            i += 2
            continue
        if ch in WILDCARD_CHARS:
            return True
        i += 1
    return False


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    """One character of a class at ``i`` (escape aware); returns it and the next index."""
    if i >= len(pattern) or pattern[i] in "-]":
        raise BadPattern(pattern)
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise BadPattern(pattern)
    return pattern[i], i + 1


@lru_cache(maxsize=256)
def _compile(pattern: str) -> tuple[object, ...]:
    tokens: list[object] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            tokens.append(_STAR)
            i += 1
        elif ch == "?":
            tokens.append(_ANY)
            i += 1
        elif ch == "\\":
            if i + 1 >= len(pattern):
                raise BadPattern(pattern)
            tokens.append(pattern[i + 1])
            i += 2
        elif ch == "[":
            i += 1
            negated = i < len(pattern) and pattern[i] == "^"
            if negated:
                i += 1
            ranges: list[tuple[str, str]] = []
            while True:
                if i < len(pattern) and pattern[i] == "]" and ranges:
                    i += 1
                    break
                lo, i = _class_char(pattern, i)
                hi = lo
                if i < len(pattern) and pattern[i] == "-":
                    hi, i = _class_char(pattern, i + 1)
                ranges.append((lo, hi))
            tokens.append(_Class(negated, tuple(ranges)))
        else:
            tokens.append(ch)
            i += 1
    return tuple(tokens)


def _match_tokens(tokens: tuple[object, ...], name: str) -> bool:
    # Iterative wildcard matching with single-star backtracking; a star never crosses "/".
    ti = ni = 0
    star_ti = star_ni = -1
    while ni < len(name):
        if ti < len(tokens):
            tok = tokens[ti]
            ch = name[ni]
            if tok is _STAR:
                star_ti, star_ni = ti, ni
                ti += 1
                continue
            if tok is _ANY:
                ok = ch != "/"
            elif isinstance(tok, _Class):
                ok = tok.matches(ch)
            else:
                ok = tok == ch
            if ok:
                ti += 1
                ni += 1
                continue
        if star_ti >= 0 and name[star_ni] != "/":
            star_ni += 1
            ni = star_ni
            ti = star_ti + 1
            continue
        return False
    while ti < len(tokens) and tokens[ti] is _STAR:
        ti += 1
    return ti == len(tokens)


def go_match(pattern: str, name: str) -> bool:
    """Go's ``filepath.Match(pattern, name)`` with a bad pattern counting as no match."""
    try:
        tokens = _compile(pattern)
    except BadPattern:
        return False
    return _match_tokens(tokens, name)


def validate_pattern(pattern: str) -> None:
    """Raise BadPattern when Go would reject ``pattern``."""
    _compile(pattern)

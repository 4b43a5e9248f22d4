"""Per-instruction argument parsers (BuildKit's line parsers): the leading ``--flags``,
JSON (exec) form, shell form, ``key=value`` pairs and white-space separated words."""
from __future__ import annotations

import json
import re

from .shell import go_isspace

__all__ = ["LineError", "parse_args", "split_command", "lstrip_go", "strip_go"]

_RE_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"


def lstrip_go(s: str) -> str:
    i = 0
    while i < len(s) and go_isspace(s[i]):
        i += 1
    return s[i:]


def strip_go(s: str) -> str:
    s = lstrip_go(s)
    j = len(s)
    while j > 0 and go_isspace(s[j - 1]):
        j -= 1
    return s[:j]


# -- the line parsers ----------------------------------------------------------------------------
def split_command(line: str, escape: str) -> tuple[str, list[str], str]:
    parts = _RE_WHITESPACE.split(strip_go(line), maxsplit=1)
    flags: list[str] = []
    rest = ""
    if len(parts) == 2:
        rest, flags = _extract_flags(parts[1], escape)
    return parts[0], flags, strip_go(rest)


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading ``--flag`` words (quotes and escapes processed); returns (rest, flags)."""
    words: list[str] = []
    word: list[str] = []
    blank_ok = False
    n = len(line)
    pos = 0
    while pos < n and go_isspace(line[pos]):
        pos += 1
    while pos < n:
        # at the start of a word
        if not line.startswith("--", pos):
            return line[pos:], words
        quote = ""
        while pos < n:
            ch = line[pos]
            if quote:
                if ch == quote:
                    quote = ""
                elif ch == escape:
                    if pos + 1 == n:
                        quote = ""
                    else:
                        pos += 1
                        word.append(line[pos])
                else:
                    word.append(ch)
                pos += 1
                continue
            if go_isspace(ch):
                break
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
            elif ch == escape:
                if pos + 1 < n:
                    pos += 1
                    word.append(line[pos])
            else:
                word.append(ch)
            pos += 1
        text = "".join(word)
        if pos >= n:
            if text != "--" and (blank_ok or text):
                words.append(text)
            return "", words
        if text == "--":
            return line[pos:], words
        if blank_ok or text:
            words.append(text)
        word = []
        blank_ok = False
        while pos < n and go_isspace(line[pos]):
            pos += 1
    return "", words


def _parse_words(rest: str, escape: str) -> list[str]:
    """Split on white space, keeping quotes and escapes in the words (ENV/LABEL/ARG)."""
    words: list[str] = []
    buf: list[str] = []
    blank_ok = False
    in_word = False
    quote = ""
    n = len(rest)
    pos = 0
    while pos < n:
        ch = rest[pos]
        if not in_word:
            if go_isspace(ch):
                pos += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if pos + 1 == n:
                    quote = ""
                    pos += 1
                    continue
                buf.append(ch)
                pos += 1
                ch = rest[pos]
            buf.append(ch)
            pos += 1
            continue
        if go_isspace(ch):
            if blank_ok or buf:
                words.append("".join(buf))
            buf = []
            blank_ok = False
            in_word = False
            pos += 1
            continue
        if ch in ("'", '"'):
            quote = ch
            blank_ok = True
        if ch == escape:
            if pos + 1 == n:
                pos += 1
                continue
            buf.append(ch)
            pos += 1
            ch = rest[pos]
        buf.append(ch)
        pos += 1
    if in_word and (blank_ok or buf):
        words.append("".join(buf))
    return words


class LineError(Exception):
    """A line parser's complaint; the caller adds file and line."""


def _parse_name_val(rest: str, key: str, escape: str) -> list[str]:
    words = _parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _RE_WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise LineError(f"{key} must have two arguments")
        return [parts[0], parts[1], ""]
    out: list[str] = []
    for word in words:
        if "=" not in word:
            raise LineError(
                f"Syntax error - can't find = in {json.dumps(word)}. Must be of the form: name=value")
        k, v = word.split("=", 1)
        out += [k, v, "="]
    return out


def _parse_whitespace_delimited(rest: str) -> list[str]:
    if rest == "":
        return []
    return _RE_WHITESPACE.split(rest)


def _reject_constant(name: str) -> None:
    raise ValueError(name)


def _parse_json(rest: str) -> list[str] | None:
    """The JSON (exec) form, or None when ``rest`` is not a JSON array."""
    rest = lstrip_go(rest)
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise LineError(_NOT_STRING_ARRAY)
    return value


def parse_args(keyword: str, rest: str, escape: str) -> tuple[list[str], bool]:
    """Dispatch on the instruction name: (args, json)."""
    if keyword in ("RUN", "CMD", "ENTRYPOINT", "SHELL"):
        if rest == "":
            return [], False
        parsed = _parse_json(rest)
        return (parsed, True) if parsed is not None else ([rest], False)
    if keyword in ("ADD", "COPY", "VOLUME"):
        parsed = _parse_json(rest)
        return (parsed, True) if parsed is not None else (_parse_whitespace_delimited(rest), False)
    if keyword in ("ENV", "LABEL"):
        return _parse_name_val(rest, keyword, escape), False
    if keyword == "ARG":
        return _parse_words(rest, escape), False
    if keyword in ("EXPOSE", "FROM"):
        return _parse_whitespace_delimited(rest), False
    if keyword in ("MAINTAINER", "STOPSIGNAL", "USER", "WORKDIR"):
        return ([rest] if rest else []), False
    if keyword == "HEALTHCHECK":
        sep = 0
        while sep < len(rest) and not go_isspace(rest[sep]):
            sep += 1
        if sep == 0:
            return [], False
        nxt = sep
        while nxt < len(rest) and go_isspace(rest[nxt]):
            nxt += 1
        cmd = rest[nxt:]
        if cmd == "":
            return [rest[:sep]], False
        parsed = _parse_json(cmd)
        if parsed is not None:
            return [rest[:sep], *parsed], True
        return [rest[:sep], cmd], False
    return [], False  # unknown instruction: reported by the instruction layer

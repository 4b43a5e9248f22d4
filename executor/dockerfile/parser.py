"""Dockerfile syntax: directives, comments, continuations, heredocs, one node per instruction.

This is the syntax layer only (BuildKit's ``parser`` package): it knows the shape of each
instruction's arguments (JSON or shell form, key=value pairs, words) but not their meaning;
:mod:`executor.dockerfile.instructions` turns nodes into typed instructions. Unknown
instruction names are *not* an error here (they become one in the instruction layer, with
the node's line), exactly as in BuildKit.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .errors import DockerfileError, ExpansionError
from .shell import Lexer, go_isspace

__all__ = [
    "Directive",
    "Heredoc",
    "Node",
    "ParseResult",
    "chomp_heredoc",
    "parse_heredoc_word",
    "parse_nodes",
]

VALID_DIRECTIVES = ("syntax", "escape", "check")
HEREDOC_INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD"})

_RE_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
# Go's \s is [\t\n\f\r ] (no \v); Go's $ without (?m) is the end of the text only.
_RE_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_RE_HEREDOC = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z", re.DOTALL)
_RE_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)

_NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"


@dataclass(frozen=True)
class Directive:
    """A parser directive (``# syntax=...``, ``# escape=...``, ``# check=...``)."""

    name: str
    value: str
    line: int


@dataclass(frozen=True)
class Heredoc:
    """A here-document named on an instruction line.

    ``content`` is the body as written (lines with their newlines, tabs *not* stripped);
    ``chomp`` is true for ``<<-`` (strip leading tabs with :func:`chomp_heredoc`);
    ``expand`` is false when any part of the delimiter was quoted (``<<"EOF"``, ``<<'EOF'``).
    """

    name: str
    content: str = ""
    file_descriptor: int = 0
    expand: bool = True
    chomp: bool = False


@dataclass
class Node:
    """One instruction as written.

    ``command`` is the instruction name as written (use ``keyword`` for the upper-case
    name); ``flags`` the leading ``--flag[=value]`` words (quotes removed); ``args`` the
    arguments after the line parser for that instruction ran (for ENV and LABEL: triples
    ``key, value, sep`` where ``sep`` is ``"="`` or ``""`` for the legacy ``ENV k v``; for
    HEALTHCHECK: the type then the command); ``json`` is true for the exec (JSON) form;
    ``original`` is the logical line (continuations joined, comments dropped), which is
    what BuildKit calls ``Original``; ``sub`` is ONBUILD's inner instruction.
    """

    command: str
    flags: list[str]
    args: list[str]
    json: bool
    original: str
    start_line: int = 0
    end_line: int = 0
    heredocs: list[Heredoc] = field(default_factory=list)
    sub: Node | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def keyword(self) -> str:
        """The instruction name upper-cased, matched as BuildKit matches it (Go's
        strings.ToLower, under which the Kelvin sign is a "k" and dotted capital I an "i");
        a name that stays non-ASCII is returned lower-cased and matches nothing."""
        low = self.command.replace("\u0130", "i").lower()
        return low.upper() if low.isascii() else low

    def can_contain_heredoc(self) -> bool:
        node = self.sub if self.keyword == "ONBUILD" and self.sub is not None else self
        return node.keyword in HEREDOC_INSTRUCTIONS and not node.json


@dataclass
class ParseResult:
    file: str
    nodes: list[Node]
    directives: list[Directive]
    escape: str
    warnings: list[str] = field(default_factory=list)

    def directive(self, name: str) -> str | None:
        for d in self.directives:
            if d.name == name:
                return d.value
        return None


# -- lines -------------------------------------------------------------------------------------
def _split_lines(text: str) -> list[str]:
    """Lines with their ``\\n`` kept (only ``\\n`` ends a line, as Go's scanner)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _lstrip_go(s: str) -> str:
    i = 0
    while i < len(s) and go_isspace(s[i]):
        i += 1
    return s[i:]


def _strip_go(s: str) -> str:
    s = _lstrip_go(s)
    j = len(s)
    while j > 0 and go_isspace(s[j - 1]):
        j -= 1
    return s[:j]


def _trim_newline(s: str) -> str:
    return s.rstrip("\r\n")


def _is_comment(s: str) -> bool:
    return _lstrip_go(s).startswith("#")


class _Directives:
    """Directive recognition state: only the first lines may hold directives."""

    def __init__(self, file: str):
        self.file = file
        self.done = False
        self.seen: dict[str, Directive] = {}
        self.found: list[Directive] = []
        self.escape = "\\"
        self.continuation = self._continuation_regex("\\")

    @staticmethod
    def _continuation_regex(esc: str) -> re.Pattern[str]:
        e = re.escape(esc)
        return re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z", re.DOTALL)

    def offer(self, line: str, lineno: int) -> bool:
        """Look at one physical line (newline trimmed); True when it was a directive."""
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        m = _RE_DIRECTIVE.match(_lstrip_go(line[1:]))
        if not m or m.group(1).lower() not in VALID_DIRECTIVES:
            self.done = True
            return False
        name = m.group(1).lower()
        if name in self.seen:
            raise DockerfileError(self.file, lineno, f"only one {name} parser directive can be used")
        d = Directive(name, m.group(2), lineno)
        self.seen[name] = d
        self.found.append(d)
        if name == "escape":
            if d.value not in ("\\", "`"):
                raise DockerfileError(self.file, lineno, f"invalid escape token '{d.value}' does not match ` or \\")
            self.escape = d.value
            self.continuation = self._continuation_regex(d.value)
        return True

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """(line without its continuation escape, True when the logical line ends here)."""
        m = self.continuation.search(line)
        if m:
            return line[: m.start()] + (m.group(1) or ""), False
        return line, True


# -- the line parsers ----------------------------------------------------------------------------
def _split_command(line: str, escape: str) -> tuple[str, list[str], str]:
    parts = _RE_WHITESPACE.split(_strip_go(line), maxsplit=1)
    flags: list[str] = []
    rest = ""
    if len(parts) == 2:
        rest, flags = _extract_flags(parts[1], escape)
    return parts[0], flags, _strip_go(rest)


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


class _LineError(Exception):
    """A line parser's complaint; the caller adds file and line."""


def _parse_name_val(rest: str, key: str, escape: str) -> list[str]:
    words = _parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _RE_WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _LineError(f"{key} must have two arguments")
        return [parts[0], parts[1], ""]
    out: list[str] = []
    for word in words:
        if "=" not in word:
            raise _LineError(
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
    rest = _lstrip_go(rest)
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise _LineError(_NOT_STRING_ARRAY)
    return value


def _parse_args(keyword: str, rest: str, escape: str) -> tuple[list[str], bool]:
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


def _node_from_line(line: str, escape: str, comments: list[str]) -> Node:
    cmd, flags, rest = _split_command(line, escape)
    node = Node(cmd, flags, [], False, line, comments=comments)
    if node.keyword == "ONBUILD":
        node.sub = _node_from_line(rest, escape, []) if rest else None
    else:
        node.args, node.json = _parse_args(node.keyword, rest, escape)
    return node


# -- heredocs ------------------------------------------------------------------------------------
_EMPTY_ENV: dict[str, str] = {}


def parse_heredoc_word(word: str) -> Heredoc | None:
    """The heredoc a word like ``<<EOF``, ``<<-"EOF"``, ``3<<EOF`` introduces, or None.
    Raises ExpansionError when the delimiter cannot be lexed (an unclosed quote)."""
    m = _RE_HEREDOC.match(word)
    if not m:
        return None
    fd_text, chomp, rest = m.groups()
    if not rest:
        return None
    plain = Lexer(skip_unset_env=True).process_words(rest, _EMPTY_ENV)
    raw = Lexer(skip_unset_env=True, raw_quotes=True).process_words(rest, _EMPTY_ENV)
    if len(plain) != 1:
        return None
    if len(raw) != len(plain):
        raise ExpansionError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    name = plain[0]
    quotes = name.count("'") + name.count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    fd = int(fd_text) if fd_text else 0
    return Heredoc(name=name, file_descriptor=fd, expand=quotes == raw_quotes, chomp=chomp == "-")


def _heredocs_from_line(line: str) -> list[Heredoc]:
    lexer = Lexer(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    try:
        words = lexer.process_words(line, _EMPTY_ENV)
    except ExpansionError:
        words = []
    docs = []
    for word in words:
        doc = parse_heredoc_word(word)
        if doc is not None:
            docs.append(doc)
    return docs


def chomp_heredoc(content: str) -> str:
    """Remove leading tabs from every line (what ``<<-`` asks for)."""
    return _RE_LEADING_TABS.sub("", content)


# -- the parse loop ------------------------------------------------------------------------------
def parse_nodes(text: str | bytes, file: str = "Dockerfile") -> ParseResult:
    """Parse a Dockerfile's text into nodes. Raises :class:`DockerfileError`."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _split_lines(text)
    d = _Directives(file)
    nodes: list[Node] = []
    warnings: list[str] = []
    comments: list[str] = []
    i = 0
    n = len(lines)
    while i < n:
        raw = lines[i]
        i += 1
        lineno = i
        if _is_comment(raw):
            comment = _strip_go(_lstrip_go(raw)[1:])
            if comment:
                comments.append(comment)
            else:
                comments = []
        token = _lstrip_go(_trim_newline(raw))
        if d.offer(token, lineno) and comments:
            comments.pop()
        if _is_comment(token):
            token = ""
        start = lineno
        line, end_of_line = d.trim_continuation(token)
        if end_of_line and line == "":
            continue
        parts = [line]
        empty_continuation = False
        while not end_of_line and i < n:
            raw = lines[i]
            i += 1
            token = _trim_newline(raw)
            d.offer(token, i)
            if _is_comment(raw):
                continue
            if _lstrip_go(token) == "":
                empty_continuation = True
                continue
            token, end_of_line = d.trim_continuation(token)
            parts.append(token)
        line = "".join(parts)
        if empty_continuation:
            warnings.append(f"{file}:{i}: empty continuation line found in: {line}")
        try:
            node = _node_from_line(line, d.escape, comments)
        except _LineError as exc:
            raise DockerfileError(file, start, str(exc), i) from None
        except RecursionError:
            raise DockerfileError(file, start, "instruction nested too deeply (ONBUILD ONBUILD ...)", i) from None
        if node.can_contain_heredoc() and "<<" in line:
            try:
                docs = _heredocs_from_line(line)
            except ExpansionError as exc:
                raise DockerfileError(file, start, str(exc), i) from None
            bodies = []
            for doc in docs:
                content: list[str] = []
                terminated = False
                while i < n:
                    raw = lines[i]
                    i += 1
                    candidate = _trim_newline(raw)
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        terminated = True
                        break
                    content.append(raw)
                if not terminated:
                    raise DockerfileError(
                        file, start, f"unterminated heredoc {doc.name!r}: no line {doc.name!r} before the end of the file", i)
                bodies.append(Heredoc(doc.name, "".join(content), doc.file_descriptor, doc.expand, doc.chomp))
            target = node.sub if node.keyword == "ONBUILD" and node.sub is not None else node
            target.heredocs = bodies
            if target is not node:
                node.heredocs = bodies
        node.start_line = start
        node.end_line = i
        if node.sub is not None:
            node.sub.start_line, node.sub.end_line = start, i
        nodes.append(node)
        comments = []
    if not nodes:
        raise DockerfileError(file, max(n, 1), "file with no instructions")
    return ParseResult(file=file, nodes=nodes, directives=d.found, escape=d.escape, warnings=warnings)

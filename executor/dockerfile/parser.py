"""Dockerfile syntax: directives, comments, continuations, heredocs, one node per instruction.

This is the syntax layer only (BuildKit's ``parser`` package): it knows the shape of each
instruction's arguments (JSON or shell form, key=value pairs, words) but not their meaning;
:mod:`executor.dockerfile.instructions` turns nodes into typed instructions. Unknown
instruction names are *not* an error here (they become one in the instruction layer, with
the node's line), exactly as in BuildKit.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import DockerfileError, ExpansionError
from .heredocs import Heredoc, chomp_heredoc, heredocs_from_line, parse_heredoc_word
from .line_parsers import LineError, lstrip_go, parse_args, split_command, strip_go

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

# Go's \s is [\t\n\f\r ] (no \v); Go's $ without (?m) is the end of the text only.
_RE_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")


@dataclass(frozen=True)
class Directive:
    """A parser directive (``# syntax=...``, ``# escape=...``, ``# check=...``)."""

    name: str
    value: str
    line: int


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
    """A Dockerfile split into nodes (one logical line each, heredocs attached) with its parser directives, escape
    character and warnings; `stages.parse` types it."""
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


def _trim_newline(s: str) -> str:
    return s.rstrip("\r\n")


def _is_comment(s: str) -> bool:
    return lstrip_go(s).startswith("#")


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
        m = _RE_DIRECTIVE.match(lstrip_go(line[1:]))
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


def _node_from_line(line: str, escape: str, comments: list[str]) -> Node:
    cmd, flags, rest = split_command(line, escape)
    node = Node(cmd, flags, [], False, line, comments=comments)
    if node.keyword == "ONBUILD":
        node.sub = _node_from_line(rest, escape, []) if rest else None
    else:
        node.args, node.json = parse_args(node.keyword, rest, escape)
    return node


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
            comment = strip_go(lstrip_go(raw)[1:])
            if comment:
                comments.append(comment)
            else:
                comments = []
        token = lstrip_go(_trim_newline(raw))
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
            if lstrip_go(token) == "":
                empty_continuation = True
                continue
            token, end_of_line = d.trim_continuation(token)
            parts.append(token)
        line = "".join(parts)
        if empty_continuation:
            warnings.append(f"{file}:{i}: empty continuation line found in: {line}")
        try:
            node = _node_from_line(line, d.escape, comments)
        except LineError as exc:
            raise DockerfileError(file, start, str(exc), i) from None
        except RecursionError:
            raise DockerfileError(file, start, "instruction nested too deeply (ONBUILD ONBUILD ...)", i) from None
        if node.can_contain_heredoc() and "<<" in line:
            try:
                docs = heredocs_from_line(line)
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

"""Here-documents: recognising ``<<EOF`` words (BuildKit's rules) and chomping ``<<-`` bodies."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ExpansionError
from .shell import Lexer

__all__ = ["Heredoc", "chomp_heredoc", "heredocs_from_line", "parse_heredoc_word"]

_RE_HEREDOC = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z", re.DOTALL)
_RE_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_EMPTY_ENV: dict[str, str] = {}


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


def heredocs_from_line(line: str) -> list[Heredoc]:
    """The heredocs a whole instruction line names, in order (bodies not yet read). The
    line is lexed as BuildKit does (backslash escape whatever the directive says)."""
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

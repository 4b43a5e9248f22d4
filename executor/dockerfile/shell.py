"""Word expansion with the semantics of BuildKit's Dockerfile shell lexer.

Two entry points, as BuildKit has:

* :func:`expand` turns one word into one string (ENV and LABEL values, WORKDIR, USER,
  COPY sources and destination, --chown, ...);
* :func:`expand_words` turns a word into a list of words, splitting unquoted results on
  white space (EXPOSE ports, heredoc detection, ...).

:func:`expand_with_matches` also reports which variables the word looked up (found and not
found): the build needs them for the "unused build argument" warning.

Supported: ``$v``, ``${v}``, ``${v:-w}``, ``${v-w}``, ``${v:+w}``, ``${v+w}``, ``${v:?m}``,
``${v?m}``, ``${v#p}``, ``${v##p}``, ``${v%p}``, ``${v%%p}``, ``${v/p/r}``, ``${v//p/r}``,
single and double quotes, the escape character (backslash or backtick). Positional and
special parameters (``$1``, ``$@``, ``$#``...) are never set. Errors are
:class:`~executor.dockerfile.errors.ExpansionError`.
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ExpansionError

__all__ = [
    "ExpansionError",
    "Lexer",
    "WordResult",
    "expand",
    "expand_words",
    "expand_heredoc",
    "expand_with_matches",
    "go_isspace",
]

_EOF = ""
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
# Python's str.isspace() also accepts the ASCII separators 0x1c..0x1f, Go's unicode.IsSpace does not.
_NOT_GO_SPACE = frozenset("\x1c\x1d\x1e\x1f")


def go_isspace(ch: str) -> bool:
    """Go's ``unicode.IsSpace`` for one character."""
    return ch.isspace() and ch not in _NOT_GO_SPACE


def _is_digit(ch: str) -> bool:
    return unicodedata.category(ch) == "Nd"


def _is_letter(ch: str) -> bool:
    return ch.isalpha()


def go_quote(s: str) -> str:
    """An approximation of Go's ``%q`` (used in error messages only)."""
    return json.dumps(s, ensure_ascii=False)


class _Scanner:
    __slots__ = ("text", "pos")

    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        if self.pos < len(self.text):
            ch = self.text[self.pos]
            self.pos += 1
            return ch
        return _EOF


class _Words:
    """Splits the expanded text into words the way BuildKit's wordsStruct does."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if go_isspace(ch):
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf = []
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf.append(ch)
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        if s:
            self.buf.append(s)
        self.in_word = True

    def get(self) -> list[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf = []
            self.in_word = False
        return self.words


@dataclass
class WordResult:
    """What :meth:`Lexer.process` found: the single-string result, the word split, and
    the variable names looked up that were set (``matched``) or not (``unmatched``)."""

    result: str
    words: list[str]
    matched: set[str] = field(default_factory=set)
    unmatched: set[str] = field(default_factory=set)


@dataclass
class Lexer:
    """BuildKit's shell lexer. The flags mirror BuildKit's: ``raw_quotes`` keeps quote
    characters in the output, ``raw_escapes`` keeps escape characters, ``skip_unset_env``
    leaves references to unset variables as written, ``skip_process_quotes`` treats quotes
    as ordinary characters."""

    escape: str = "\\"
    raw_quotes: bool = False
    raw_escapes: bool = False
    skip_unset_env: bool = False
    skip_process_quotes: bool = False

    def process(self, word: str, env: Mapping[str, str]) -> WordResult:
        run = _Run(self, word, env)
        try:
            result, words = run.stop_on(None, self.raw_escapes)
        except ExpansionError as exc:
            raise ExpansionError(f"failed to process {go_quote(word)}: {exc}") from None
        except RecursionError:
            raise ExpansionError(f"failed to process {go_quote(word[:80])}...: substitutions nested too deeply") from None
        return WordResult(result, words, run.matched, run.unmatched)

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        return self.process(word, env).result

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        return self.process(word, env).words


class _Run:
    """State of one expansion: the scanner, the environment and the lookups made."""

    def __init__(self, lex: Lexer, word: str, env: Mapping[str, str]):
        self.lex = lex
        self.sc = _Scanner(word)
        self.env = env
        self.raw_escapes = lex.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    # -- helpers -------------------------------------------------------------------------
    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matched.add(name)
            return self.env[name], True
        self.unmatched.add(name)
        return "", False

    # -- the main loop -------------------------------------------------------------------
    def stop_on(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str | None) -> tuple[str, list[str]]:
        sc = self.sc
        esc = self.lex.escape
        quotes = not self.lex.skip_process_quotes
        result: list[str] = []
        words = _Words()
        while sc.peek() != _EOF:
            ch = sc.peek()
            if stop is not None and ch == stop:
                sc.next()
                return "".join(result), words.get()
            if ch == "$":
                tmp = self.dollar()
                result.append(tmp)
                words.add_string(tmp)
                continue
            if ch == "<":
                tmp = self.possible_heredoc()
                result.append(tmp)
                words.add_raw_string(tmp)
                continue
            if quotes and ch in ("'", '"'):
                tmp = self.single_quote() if ch == "'" else self.double_quote()
                result.append(tmp)
                words.add_raw_string(tmp)
                continue
            ch = sc.next()
            if ch == esc:
                if self.raw_escapes:
                    words.add_raw_char(ch)
                    result.append(ch)
                ch = sc.next()
                if ch == _EOF:
                    break
                words.add_raw_char(ch)
            else:
                words.add_char(ch)
            result.append(ch)
        if stop is not None:
            raise ExpansionError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get()

    # -- quotes --------------------------------------------------------------------------
    def single_quote(self) -> str:
        sc = self.sc
        out: list[str] = []
        ch = sc.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            ch = sc.next()
            if ch == _EOF:
                raise ExpansionError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        sc = self.sc
        esc = self.lex.escape
        out: list[str] = []
        ch = sc.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            peek = sc.peek()
            if peek == _EOF:
                raise ExpansionError("unexpected end of statement while looking for matching double-quote")
            if peek == '"':
                ch = sc.next()
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if peek == "$":
                out.append(self.dollar())
                continue
            ch = sc.next()
            if ch == esc:
                if self.raw_escapes:
                    out.append(ch)
                following = sc.peek()
                if following == _EOF:
                    continue
                if following in ('"', "$", esc):
                    ch = sc.next()
            out.append(ch)

    # -- variables -----------------------------------------------------------------------
    def name(self) -> str:
        sc = self.sc
        out: list[str] = []
        while sc.peek() != _EOF:
            ch = sc.peek()
            if not out and _is_digit(ch):
                while sc.peek() != _EOF and _is_digit(sc.peek()):
                    out.append(sc.next())
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                return sc.next()
            if not (_is_letter(ch) or _is_digit(ch) or ch == "_"):
                break
            out.append(sc.next())
        return "".join(out)

    def dollar(self) -> str:
        sc = self.sc
        lex = self.lex
        sc.next()  # the '$'
        if sc.peek() != "{":
            name = self.name()
            if name == "":
                return "$"
            value, found = self.get_env(name)
            if not found and lex.skip_unset_env:
                return "$" + name
            return value

        sc.next()  # the '{'
        peek = sc.peek()
        if peek == _EOF:
            raise ExpansionError("syntax error: missing '}'")
        if peek in ("{", "}", ":"):
            raise ExpansionError("syntax error: bad substitution")
        name = self.name()
        ch = sc.next()
        if ch == _EOF:  # BuildKit says "unsupported modifier (\ufffd)" here; this is clearer
            raise ExpansionError("syntax error: missing '}'")
        chs = ch
        if ch == "}":
            value, found = self.get_env(name)
            if not found and lex.skip_unset_env:
                return "${%s}" % name
            return value
        if ch == "/":
            return self.substitute(name)
        if ch not in (":", "+", "-", "?", "#", "%"):
            raise ExpansionError(f"unsupported modifier ({chs}) in substitution")

        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = sc.next()
            chs += ch if ch != _EOF else "\ufffd"
        raw = ch in ("#", "%")
        if null_is_unset and raw:
            raise ExpansionError(f"unsupported modifier ({chs}) in substitution")
        try:
            word, _ = self.stop_on("}", raw)
        except ExpansionError:
            if sc.peek() == _EOF:
                raise ExpansionError("syntax error: missing '}'") from None
            raise

        value, found = self.get_env(name)
        if lex.skip_unset_env and not found:
            return "${%s%s%s}" % (name, chs, word)
        if ch == "-":
            if not found or (null_is_unset and value == ""):
                return word
            return value
        if ch == "+":
            if not found or (null_is_unset and value == ""):
                return ""
            return word
        if ch == "?":
            if not found:
                raise ExpansionError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise ExpansionError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in ("#", "%"):
            greedy = False
            if word and word[0] == ch:
                greedy = True
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        raise ExpansionError(f"unsupported modifier ({chs}) in substitution")

    def substitute(self, name: str) -> str:
        sc = self.sc
        replace_all = sc.peek() == "/"
        if replace_all:
            sc.next()
        try:
            pattern, _ = self.stop_on("/", True)
        except ExpansionError:
            if sc.peek() == _EOF:
                raise ExpansionError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self.stop_on("}", True)
        except ExpansionError:
            if sc.peek() == _EOF:
                raise ExpansionError("syntax error: missing '}'") from None
            raise
        value, found = self.get_env(name)
        if self.lex.skip_unset_env and not found:
            return "${%s/%s/%s}" % (name, pattern, replacement)
        regex = _pattern_to_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return _go_replace_all(regex, value, replacement)
        m = regex.search(value)
        if m:
            value = value[: m.start()] + replacement + value[m.end():]
        return value

    def possible_heredoc(self) -> str:
        sc = self.sc
        sc.next()
        if sc.peek() != "<":
            return "<"
        sc.next()
        space: list[str] = []
        while sc.peek() in ("\t", "\r", " ") and sc.peek() != _EOF:
            space.append(sc.next())
        return "<<" + "".join(space)


# -- shell patterns ----------------------------------------------------------------------------
_REGEX_SPECIAL = frozenset("[]{}.+()|^$")


def _pattern_to_regex(pattern: str, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell pattern (``*``, ``?``, backslash escapes) as a regular expression."""
    out: list[str] = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    n = len(pattern)
    while i < n:
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            following = pattern[i] if i < n else _EOF
            if following in ("}", "/") and following != _EOF:
                continue
            out.append("\\")
            tok = following
            i += 1
            if tok not in ("*", "?", "\\"):
                shown = tok if tok != _EOF else "\ufffd"
                raise ExpansionError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{shown}'")
        elif tok in _REGEX_SPECIAL:
            out.append("\\")
        out.append(tok)
    try:
        return re.compile("".join(out))
    except re.error as exc:  # pragma: no cover - every special character is escaped above
        raise ExpansionError(f"invalid pattern ({pattern}) in substitution: {exc}") from None


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _pattern_to_regex(pattern, greedy, anchored=True).match(value)
    return value[m.end():] if m else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern keeping each ``\\x`` escape pair in order."""
    out = [""] * len(pattern)
    last = len(pattern) - 1
    i = 0
    while i <= last:
        tok = pattern[i]
        pos = last - i
        if tok == "\\" and i != last:
            out[pos - 1] = tok
            out[pos] = pattern[i + 1]
            i += 2
        else:
            out[pos] = tok
            i += 1
    return "".join(out)


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


_TEMPLATE_REF = re.compile(r"\$(?:\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def _go_template(template: str, m: re.Match[str]) -> str:
    """Go's Regexp.Expand: ``$$``, ``$name``/``${name}`` (our regexes have no groups, so
    only group 0, the whole match, is non-empty); anything malformed stays literal."""

    def ref(r: re.Match[str]) -> str:
        if r.group(0) == "$$":
            return "$"
        name = r.group(1) or r.group(2)
        if name.isdigit() and name.isascii() and int(name) == 0:
            return m.group(0)
        return ""

    return _TEMPLATE_REF.sub(ref, template)


def _go_replace_all(regex: re.Pattern[str], value: str, template: str) -> str:
    """Go's ReplaceAllString: an empty match right after a previous match is skipped."""
    out: list[str] = []
    last = 0
    pos = 0
    prev_end = -1
    while pos <= len(value):
        m = regex.search(value, pos)
        if m is None:
            break
        accept = True
        if m.end() == pos:
            if m.start() == prev_end:
                accept = False
            pos += 1
        else:
            pos = m.end()
        prev_end = m.end()
        if accept:
            out.append(value[last: m.start()])
            out.append(_go_template(template, m))
            last = m.end()
    out.append(value[last:])
    return "".join(out)


# -- entry points ------------------------------------------------------------------------------
def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Expand ``word`` to one string (quotes removed, never split)."""
    return Lexer(escape=escape).process_word(word, env)


def expand_words(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expand ``word`` to a list of words: unquoted white space, including white space that
    comes from a variable's value, separates words."""
    return Lexer(escape=escape).process_words(word, env)


def expand_with_matches(word: str, env: Mapping[str, str], escape: str = "\\") -> WordResult:
    """Expand ``word`` and report the variables it used (``matched``: set in ``env``,
    ``unmatched``: looked up but unset)."""
    return Lexer(escape=escape).process(word, env)


def expand_heredoc(data: str, env: Mapping[str, str]) -> WordResult:
    """Expand the body of a COPY/ADD heredoc whose delimiter was not quoted, as BuildKit
    does: variables and backslash escapes are processed, quotes are ordinary characters,
    and the escape character is always the backslash (the ``# escape`` directive does not
    apply to heredoc bodies)."""
    return Lexer(escape="\\", skip_process_quotes=True).process(data, env)

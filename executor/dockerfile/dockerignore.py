""".dockerignore: docker's pattern rules, reading the file, and walking a build context.

Rules (moby/patternmatcher, as BuildKit applies them): one pattern a line; lines starting
with ``#`` are comments; surrounding white space is trimmed; ``!`` re-includes; patterns
are cleaned like Go's ``path.Clean`` and a leading ``/`` is dropped, so every pattern is
anchored at the context root; ``*`` and ``?`` do not cross ``/``, ``**`` crosses any
number of directories, ``[...]`` is a character class, ``\\`` escapes. The last pattern
that matches a path decides; a path is excluded when it or one of its parent directories
is. A directory that is excluded but may hold re-included children is still walked.
"""
from __future__ import annotations

import logging
import os
import posixpath
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DockerIgnore", "DockerIgnoreError", "ContextEntry", "clean_path", "clean_pattern", "ignore_file_for",
           "read_dockerignore", "read_patterns", "walk_context"]

log = logging.getLogger(__name__)

_ESCAPE = frozenset(".+()|{}$")


class DockerIgnoreError(ValueError):
    """A malformed pattern; the message names the file and line when known."""


def clean_path(p: str) -> str:
    """Go's ``path.Clean``."""
    if p == "":
        return "."
    cleaned = posixpath.normpath(p)
    # posixpath keeps a leading "//"; Go collapses it
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def clean_pattern(line: str) -> str | None:
    """One .dockerignore line as docker reads it: None for comments and blank lines."""
    if line.startswith("#"):
        return None
    pattern = line.strip()
    if pattern == "":
        return None
    invert = pattern.startswith("!")
    if invert:
        pattern = pattern[1:].strip()
    if pattern:
        pattern = clean_path(pattern)
        if len(pattern) > 1 and pattern.startswith("/"):
            pattern = pattern[1:]
    return "!" + pattern if invert else pattern


def _check_class_syntax(pattern: str) -> None:
    """Reject what Go's filepath.Match calls a bad pattern: an unclosed or empty ``[]``, a
    class item starting with ``-`` or ``]``, a trailing backslash."""

    def bad(why: str) -> DockerIgnoreError:
        return DockerIgnoreError(f"syntax error in pattern {pattern!r}: {why}")

    def item(i: int) -> int:
        if i >= n or pattern[i] in "-]":
            raise bad("bad character class")
        if pattern[i] == "\\":
            i += 1
            if i >= n:
                raise bad("trailing backslash")
        return i + 1

    n = len(pattern)
    i = 0
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise bad("trailing backslash")
            i += 2
        elif ch == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            ranges = 0
            while True:
                if i < n and pattern[i] == "]" and ranges > 0:
                    i += 1
                    break
                if i >= n:
                    raise bad("unclosed '['")
                i = item(i)
                if i < n and pattern[i] == "-":
                    i = item(i + 1)
                ranges += 1
        else:
            i += 1


@dataclass
class _Pattern:
    """One .dockerignore line compiled: `exclusion` for a `!` line, `dirs` its number of path parts, and how it
    matches (exact, prefix, suffix or regexp)."""
    text: str
    exclusion: bool
    dirs: int
    kind: str = ""          # exact, prefix, suffix, regexp
    regex: re.Pattern[str] | None = None

    def compile(self) -> None:
        out = ["^"]
        kind = "exact"
        p = self.text
        i, n = 0, len(p)
        index = 0
        while i < n:
            ch = p[i]
            i += 1
            if ch == "*":
                if i < n and p[i] == "*":
                    i += 1
                    if i < n and p[i] == "/":
                        i += 1
                    if i >= n:
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            out.append(".*")
                            kind = "regexp"
                    else:
                        out.append("(.*/)?")
                        kind = "regexp"
                    if index == 0:
                        kind = "suffix"
                else:
                    out.append("[^/]*")
                    kind = "regexp"
            elif ch == "?":
                out.append("[^/]")
                kind = "regexp"
            elif ch in _ESCAPE:
                out.append("\\" + ch)
            elif ch == "\\":
                if i < n:
                    out.append(re.escape(p[i]))
                    i += 1
                    kind = "regexp"
                else:
                    out.append("\\\\")
            elif ch in "[]":
                out.append(ch)
                kind = "regexp"
            else:
                out.append(ch)
            index += 1
        self.kind = kind
        if kind == "regexp":
            try:
                self.regex = re.compile("".join(out) + r"\Z", re.DOTALL)
            except re.error as exc:
                raise DockerIgnoreError(f"syntax error in pattern {self.text!r}: {exc}") from None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.match(path) is not None


@dataclass
class DockerIgnore:
    """A compiled list of patterns. ``always_include`` names context-relative paths that
    are never hidden (the caller passes the Dockerfile and ``.dockerignore`` when its rules
    say so)."""

    patterns: list[str] = field(default_factory=list)
    always_include: frozenset[str] = frozenset()
    source: str = ".dockerignore"
    lines: list[int] | None = None

    def __post_init__(self) -> None:
        self._compiled: list[_Pattern] = []
        for i, raw in enumerate(self.patterns):
            where = f"{self.source}:{self.lines[i]}: " if self.lines else ""
            p = raw.strip()
            if p == "":
                continue
            p = clean_path(p)
            exclusion = p.startswith("!")
            if exclusion:
                if len(p) == 1:
                    raise DockerIgnoreError(f'{where}illegal exclusion pattern: "!"')
                p = p[1:]
            try:
                _check_class_syntax(p)
                pat = _Pattern(p, exclusion, len(p.split("/")))
                pat.compile()
            except DockerIgnoreError as exc:
                raise DockerIgnoreError(f"{where}{exc}") from None
            self._compiled.append(pat)
        self.always_include = frozenset(clean_path(p).lstrip("/") for p in self.always_include)
        self._has_exclusions = any(p.exclusion for p in self._compiled)

    @property
    def has_exclusions(self) -> bool:
        """True when some pattern starts with ``!`` (excluded directories must be walked)."""
        return self._has_exclusions

    def with_always_included(self, paths: Iterable[str]) -> DockerIgnore:
        return DockerIgnore(self.patterns, self.always_include | frozenset(paths), self.source, self.lines)

    def matches(self, relpath: str) -> bool:
        """True when ``relpath`` (relative to the context root, ``/``-separated) is excluded."""
        path = clean_path(relpath).lstrip("/") or "."
        if path == "." or path in self.always_include:
            return False
        parent = posixpath.dirname(path) or "."
        parent_dirs = parent.split("/")
        matched = False
        for pat in self._compiled:
            if pat.exclusion != matched:
                continue
            hit = pat.match(path)
            if not hit and parent != ".":
                for i in range(len(parent_dirs)):
                    if pat.match("/".join(parent_dirs[: i + 1])):
                        hit = True
                        break
            if hit:
                matched = not pat.exclusion
        return matched

    def match_vector(self, relpath: str, parent: tuple[bool, ...] | None = None) -> tuple[bool, ...]:
        """Which patterns match ``relpath`` or one of its ancestors, given the vector of its
        parent directory (None for a top-level path): what BuildKit's walker carries down
        so that each path costs one test per pattern."""
        path = clean_path(relpath).lstrip("/")
        if parent is None:
            parent = (False,) * len(self._compiled)
        return tuple(p or pat.match(path) for p, pat in zip(parent, self._compiled))

    def decide(self, relpath: str, vector: tuple[bool, ...]) -> bool:
        """Excluded? from a :meth:`match_vector` (last matching pattern wins)."""
        if clean_path(relpath).lstrip("/") in self.always_include:
            return False
        matched = False
        for hit, pat in zip(vector, self._compiled):
            if pat.exclusion != matched:
                continue
            if hit:
                matched = not pat.exclusion
        return matched

    def may_reinclude_under(self, reldir: str) -> bool:
        """Could an exclusion pattern re-include something below ``reldir``? (cheap test:
        compares the literal leading components of each ``!`` pattern)."""
        parts = clean_path(reldir).strip("/").split("/")
        for pat in self._compiled:
            if not pat.exclusion:
                continue
            pdirs = pat.text.split("/")
            ok = True
            for i, comp in enumerate(parts):
                if i >= len(pdirs):
                    break  # the pattern names an ancestor: anything below may be re-included
                if any(c in pdirs[i] for c in "*?[\\"):
                    break  # a wildcard from here on: anything may match
                if pdirs[i] != comp:
                    ok = False
                    break
            if ok:
                return True
        return False


def read_patterns(text: str, source: str = ".dockerignore") -> DockerIgnore:
    """Patterns from the text of an ignore file (BOM, comments and blank lines handled)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    patterns: list[str] = []
    lines: list[int] = []
    for number, line in enumerate(text.split("\n"), start=1):
        pattern = clean_pattern(line.rstrip("\r"))
        if pattern is not None:
            patterns.append(pattern)
            lines.append(number)
    return DockerIgnore(patterns, source=source, lines=lines)


def ignore_file_for(context_dir: str | os.PathLike[str], dockerfile: str | os.PathLike[str] | None = None) -> Path | None:
    """The ignore file that applies: ``<Dockerfile>.dockerignore`` beside the Dockerfile
    when it exists (BuildKit's rule), else ``<context>/.dockerignore``, else None."""
    if dockerfile is not None:
        specific = Path(str(dockerfile) + ".dockerignore")
        if specific.is_file():
            return specific
    general = Path(context_dir) / ".dockerignore"
    return general if general.is_file() else None


def read_dockerignore(context_dir: str | os.PathLike[str], dockerfile: str | os.PathLike[str] | None = None) -> DockerIgnore:
    """The DockerIgnore for a build (empty when no ignore file exists)."""
    path = ignore_file_for(context_dir, dockerfile)
    if path is None:
        return DockerIgnore()
    log.debug("using ignore file %s", path)
    return read_patterns(path.read_text(encoding="utf-8", errors="surrogateescape"), source=str(path))


@dataclass(frozen=True)
class ContextEntry:
    """An included path of the build context: ``relpath`` is ``/``-separated, relative to
    the context root; ``parent_only`` marks an excluded directory yielded only because
    re-included entries live below it."""

    relpath: str
    is_dir: bool
    parent_only: bool = False


def walk_context(context_dir: str | os.PathLike[str], ignore: DockerIgnore) -> Iterator[ContextEntry]:
    """Yield the included entries of a context, parents before children, sorted by name.
    Symbolic links are yielded, never followed. An excluded directory is entered only when
    a ``!`` pattern may re-include something below it, and yielded (``parent_only``) only
    when something below it is."""
    root = os.fspath(context_dir)
    Frame = tuple[str, tuple[bool, ...] | None, Iterator[str]]
    stack: list[Frame] = [("", None, iter(_list(root, "")))]
    pending: list[ContextEntry] = []  # excluded directories entered but not yielded yet
    while stack:
        rel, vector, names = stack[-1]
        name = next(names, None)
        if name is None:
            stack.pop()
            if pending and pending[-1].relpath == rel:
                pending.pop()  # nothing below it was included
            continue
        child = f"{rel}/{name}" if rel else name
        path = os.path.join(root, child)
        is_dir = os.path.isdir(path) and not os.path.islink(path)
        child_vector = ignore.match_vector(child, vector)
        excluded = ignore.decide(child, child_vector)
        if not excluded:
            yield from pending
            pending.clear()
            yield ContextEntry(child, is_dir)
            if is_dir:
                stack.append((child, child_vector, iter(_list(root, child))))
        elif is_dir and ignore.has_exclusions and ignore.may_reinclude_under(child):
            pending.append(ContextEntry(child, True, parent_only=True))
            stack.append((child, child_vector, iter(_list(root, child))))


def _list(root: str, rel: str) -> list[str]:
    full = os.path.join(root, rel) if rel else root
    try:
        return sorted(os.listdir(full))
    except OSError as exc:
        raise OSError(exc.errno, f"cannot read build context directory {full}: {exc.strerror}") from None

"""Our parser against BuildKit's: a corpus of hand-written Dockerfiles and generated ones."""
from __future__ import annotations

from pathlib import Path

import pytest
import json

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from executor.dockerfile import DockerfileError
from executor.dockerfile.parser import parse_nodes

from .oracle import oracle_fails, oracle_view, our_view

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.Dockerfile"))


def test_corpus_is_there():
    assert len(CORPUS) >= 8


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_matches_buildkit(path: Path):
    text = path.read_bytes().decode("utf-8")  # keep CRLF line ends as they are
    ours = our_view(text)
    theirs = oracle_view(text)
    assert len(ours) == len(theirs)
    for mine, ref in zip(ours, theirs):
        assert mine == ref


# -- generated Dockerfiles ----------------------------------------------------------------------
_CHARS = st.sampled_from(list("abcxyz019/._-:=,@") + ["$", "${V}", "$V", '"', "'", "\\", " ", "  ", "\t", "*"])
_WORD = st.lists(st.sampled_from(list("abcxyz019/._-:@")), min_size=1, max_size=6).map("".join)
_TEXT = st.lists(_CHARS, min_size=0, max_size=12).map("".join)
_FLAG = st.one_of(
    st.builds(lambda n, v: f"--{n}={v}", st.sampled_from(["from", "chown", "chmod", "mount", "platform",
                                                           "network", "interval", "retries", "exclude"]),
              _WORD),
    st.builds(lambda n: f"--{n}", st.sampled_from(["link", "parents", "keep-git-dir"])),
    st.builds(lambda n, v: f'--{n}="{v}"', st.sampled_from(["chown", "mount"]), _TEXT.filter(lambda t: '"' not in t and "\\" not in t)),
)
_JSON = st.lists(_WORD, min_size=0, max_size=3).map(lambda ws: "[" + ", ".join(f'"{w}"' for w in ws) + "]")
_CMDS = ["RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "ENV", "LABEL", "ARG", "EXPOSE", "VOLUME", "USER",
         "WORKDIR", "STOPSIGNAL", "SHELL", "MAINTAINER", "HEALTHCHECK", "ONBUILD RUN", "ONBUILD COPY",
         "FROM", "run", "Copy", "FOO"]


@st.composite
def _instruction(draw, escape: str = "\\") -> str:
    cmd = draw(st.sampled_from(_CMDS))
    flags = draw(st.lists(_FLAG, max_size=2))
    kind = draw(st.sampled_from(["text", "json", "kv", "heredoc", "words"]))
    if kind == "json":
        rest = draw(_JSON)
    elif kind == "kv":
        rest = " ".join(f"{k}={v}" for k, v in draw(st.lists(st.tuples(_WORD, _TEXT.filter(lambda t: "\\" not in t and '"' not in t and "'" not in t)), min_size=1, max_size=3)))
    elif kind == "heredoc":
        name = draw(st.sampled_from(["EOF", "END", "X"]))
        quote = draw(st.sampled_from(["", '"', "'"]))
        dash = draw(st.sampled_from(["", "-"]))
        body = draw(st.lists(st.sampled_from(["echo hi", "\tindented", "", "x $V", "#c"]), max_size=3))
        tab = "\t" if dash else ""
        rest = f"<<{dash}{quote}{name}{quote} /dst\n" + "".join(b + "\n" for b in body) + tab + name
    elif kind == "words":
        rest = " ".join(draw(st.lists(_WORD, min_size=1, max_size=4)))
    else:
        rest = draw(_TEXT)
    line = " ".join([cmd, *flags, rest]).rstrip("\n")
    if kind != "heredoc" and draw(st.booleans()):
        # a continuation, maybe with a comment or an empty line inside it
        cut = draw(st.integers(min_value=0, max_value=len(line)))
        middle = draw(st.sampled_from(["", "# inner comment\n", "  # indented\n"]))
        line = line[:cut] + " " + escape + "\n" + middle + line[cut:]
    return line


@st.composite
def _dockerfile(draw) -> str:
    lines = []
    escape = "\\"
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["# syntax=docker/dockerfile:1", "# escape=`", "# check=skip=all",
                                           "#escape=\\", "# not a directive"])))
        escape = "`" if lines[0] == "# escape=`" else escape
    lines.append("FROM " + draw(_WORD))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        lines.append(draw(st.sampled_from(["", "# comment", "   "])) if draw(st.integers(0, 4)) == 0
                     else draw(_instruction(escape)))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"]))


def _json_then_garbage(text: str) -> bool:
    """A JSON array followed by more text: BuildKit >= 0.15 reads it as shell form, the
    older BuildKit in the wheel read the array and dropped the rest (BuildKit 80518e257)."""
    try:
        nodes = parse_nodes(text).nodes
    except DockerfileError:
        return False
    for node in nodes:
        node = node.sub or node
        if node.json or not node.args:
            continue
        rest = node.args[-1] if node.keyword != "HEALTHCHECK" else node.args[-1]
        for candidate in (rest, node.original.split(None, 1)[-1]):
            candidate = candidate.lstrip()
            if candidate.startswith("["):
                try:
                    json.JSONDecoder().raw_decode(candidate)
                    return True
                except ValueError:
                    pass
    return False


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(_dockerfile())
def test_generated_dockerfiles_match_buildkit(text: str):
    assume(not _json_then_garbage(text))
    if oracle_fails(text):
        with pytest.raises(DockerfileError):
            parse_nodes(text)
        return
    assert our_view(text) == oracle_view(text)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(alphabet=st.sampled_from(list("FROMRUNaz \t\n\\`#=\"'[]<-$:{}")), max_size=80))
def test_arbitrary_text_never_crashes(text: str):
    try:
        parse_nodes(text)
    except DockerfileError as exc:
        assert exc.line is not None


_KEYWORDS = st.sampled_from(["ENV", "LABEL", "ARG", "COPY", "ADD", "RUN", "EXPOSE", "HEALTHCHECK", "ONBUILD ENV",
                             "USER", "FROM", "CMD"])
_PIECES = st.sampled_from(list("ab=\"' \\`$\t[],") + ["\\\n", "`\n", "<<E", "\nE\n", "--x=1 ", "#"])


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(["", "# escape=`\n", "# escape=\\\n"]), _KEYWORDS, st.lists(_PIECES, max_size=15).map("".join))
def test_quotes_escapes_and_continuations_match_buildkit(directive: str, keyword: str, rest: str):
    text = directive + "FROM a\n" + keyword + " " + rest + "\n"
    assume(not _json_then_garbage(text))
    if oracle_fails(text):
        with pytest.raises(DockerfileError):
            parse_nodes(text)
        return
    assert our_view(text) == oracle_view(text)

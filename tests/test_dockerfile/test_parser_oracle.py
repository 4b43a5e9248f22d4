"""Our parser against BuildKit's: a corpus of hand-written Dockerfiles and generated ones."""
from __future__ import annotations

from pathlib import Path

import json
import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from executor.dockerfile import DockerfileError
from executor.dockerfile.parser import parse_nodes

from .oracle import oracle_error, oracle_view, our_view
from .strategies import dockerfiles

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


def _refused_as_buildkit_refuses(text: str) -> bool:
    """When BuildKit's parser refuses `text`, ours refuses it with BuildKit's words after a `Dockerfile:N: `
    prefix (-> True); when BuildKit parses it, False."""
    theirs = oracle_error(text)
    if theirs is None:
        return False
    with pytest.raises(DockerfileError) as err:
        parse_nodes(text)
    ours = str(err.value)
    assert re.match(r"^Dockerfile:\d+: ", ours) and theirs in ours, (ours, theirs)
    return True


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(dockerfiles())
def test_generated_dockerfiles_match_buildkit(text: str):
    assume(not _json_then_garbage(text))
    if _refused_as_buildkit_refuses(text):
        return
    assert our_view(text) == oracle_view(text)


_KEYWORDS = st.sampled_from(["ENV", "LABEL", "ARG", "COPY", "ADD", "RUN", "EXPOSE", "HEALTHCHECK", "ONBUILD ENV",
                             "USER", "FROM", "CMD"])
_PIECES = st.sampled_from(list("ab=\"' \\`$\t[],") + ["\\\n", "`\n", "<<E", "\nE\n", "--x=1 ", "#"])


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(["", "# escape=`\n", "# escape=\\\n"]), _KEYWORDS, st.lists(_PIECES, max_size=15).map("".join))
def test_quotes_escapes_and_continuations_match_buildkit(directive: str, keyword: str, rest: str):
    text = directive + "FROM a\n" + keyword + " " + rest + "\n"
    assume(not _json_then_garbage(text))
    if _refused_as_buildkit_refuses(text):
        return
    assert our_view(text) == oracle_view(text)

"""Compare our parser's nodes with BuildKit's own parser (the `dockerfile` package).

The `dockerfile` wheel embeds an older BuildKit than the one we follow; where BuildKit
changed since (whitespace allowed after ``<<``; ENV/LABEL nodes carrying the separator)
the comparison normalises or the generators avoid the construct.
"""
from __future__ import annotations

import platform

import pytest

from executor.dockerfile.parser import Node, parse_nodes

# The wheel exists for x86-64 only (pyproject's test extra installs it there): elsewhere the oracle tests are
# skipped; on x86-64 a missing oracle is a broken setup, not a reason to skip.
if platform.machine() != "x86_64":
    pytest.skip("BuildKit's parser wheel (dockerfile) is built for x86-64 only", allow_module_level=True)
import dockerfile  # noqa: E402


def oracle_view(text: str) -> list[tuple]:
    out = []
    for c in dockerfile.parse_string(text):
        value = tuple(c.value)
        if value == ("",) and (c.sub_cmd or c.cmd or "").upper() not in _KNOWN:
            value = ()
        out.append(((c.cmd or "").upper(), (c.sub_cmd or "").upper() or None, c.json, tuple(c.flags), value,
                    c.start_line, c.end_line, c.original or "",
                    tuple((h.name, h.file_descriptor, h.content) for h in c.heredocs)))
    return out


_KNOWN = {"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
          "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}


def _values(node: Node) -> tuple[str, ...]:
    if node.keyword in ("ENV", "LABEL"):
        pairs: list[str] = []
        for i in range(0, len(node.args), 3):
            pairs += node.args[i:i + 2]
        return tuple(pairs)
    return tuple(node.args)


def _original(node: Node) -> str:
    if not node.heredocs or node.keyword == "ONBUILD":
        return node.original  # the old BuildKit in the wheel does not append ONBUILD's heredocs
    return node.original + "\n" + "".join(h.content + h.name + "\n" for h in node.heredocs)


def our_view(text: str) -> list[tuple]:
    out = []
    for n in parse_nodes(text).nodes:
        inner = n.sub if n.keyword == "ONBUILD" and n.sub is not None else n
        out.append((n.keyword, inner.keyword if inner is not n else None, inner.json, tuple(n.flags),
                    _values(inner), n.start_line, n.end_line, _original(n),
                    # the wheel does not expose ONBUILD's heredocs (its line range shows they were read)
                    () if n.keyword == "ONBUILD" else
                    tuple((h.name, h.file_descriptor, h.content) for h in n.heredocs)))
    return out


def oracle_error(text: str) -> str | None:
    """BuildKit's parse error for `text` (without a file or line), or None when it parses."""
    try:
        dockerfile.parse_string(text)
    except dockerfile.GoParseError as err:
        return str(err)
    return None

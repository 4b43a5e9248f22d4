"""Hypothesis strategies for Dockerfiles (shared by the oracle and typed-instruction tests)."""
from __future__ import annotations

from hypothesis import strategies as st

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
def dockerfiles(draw) -> str:
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

"""Typed instructions: fields, flags, heredoc attachment, locations and original text."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor.dockerfile import DockerfileError, parse
from executor.dockerfile.parser import parse_nodes
from executor.dockerfile import instructions as ins
from executor.dockerfile.shell import expand, expand_heredoc, expand_words

from .strategies import dockerfiles

CORPUS = Path(__file__).parent / "corpus"


def _only(text: str, stage: int = 0):
    df = parse("FROM scratch\n" + text)
    (inst,) = df.stages[stage].instructions
    return inst


def test_from_and_stages():
    df = parse("ARG A=1 B\nARG C\nFROM --platform=linux/arm64 img:${A} AS Build\nRUN x\nfrom build\nFROM scratch as last\n")
    assert [a.args for a in df.global_args] == [[ins.ArgDef("A", "1"), ins.ArgDef("B")], [ins.ArgDef("C")]]
    assert [(s.index, s.name, s.base_name, s.platform) for s in df.stages] == [
        (0, "build", "img:${A}", "linux/arm64"), (1, "", "build", ""), (2, "last", "scratch", "")]
    assert df.stages[0].from_.location == ins.Location("Dockerfile", 3, 3)
    assert df.stage("BUILD") is df.stages[0] and df.stage("1") is df.stages[1] and df.stage("9") is None
    assert df.stages[0].instructions[0].original == "RUN x"


def test_from_names_only_earlier_stages():
    # a FROM naming itself or a later stage names an image, as in kaniko and BuildKit
    df = parse("FROM node AS node\nFROM later AS first\nFROM node AS later\n")
    assert [(s.name, s.base_name) for s in df.stages] == [("node", "node"), ("first", "later"), ("later", "node")]


def test_run_forms_and_flags():
    run = _only("RUN --network=none --security=insecure --mount=type=cache,target=/c,id=x,sharing=private "
                "--mount=type=secret,id=s,env=TOKEN,required \\\n  make all\n")
    assert isinstance(run, ins.RunInstruction)
    assert run.command == ["make all"] and run.prepend_shell
    assert (run.network, run.security) == ("none", "insecure")
    assert run.mount_specs == ["type=cache,target=/c,id=x,sharing=private", "type=secret,id=s,env=TOKEN,required"]
    cache, secret = run.mounts
    assert (cache.type, cache.target, cache.id, cache.sharing, cache.readonly) == ("cache", "/c", "x", "private", False)
    assert (secret.type, secret.id, secret.env, secret.required, secret.readonly) == ("secret", "s", "TOKEN", True, True)
    assert run.location == ins.Location("Dockerfile", 2, 3)
    assert run.original == "RUN --network=none --security=insecure --mount=type=cache,target=/c,id=x,sharing=private " \
                           "--mount=type=secret,id=s,env=TOKEN,required   make all"
    exec_form = _only('RUN ["echo", "a b"]\n')
    assert exec_form.command == ["echo", "a b"] and not exec_form.prepend_shell


def test_run_mounts_expand_later():
    run = _only("RUN --mount=type=$T,target=${DIR}/x,size=${S} ls\n")
    assert run.mount_specs == ["type=$T,target=${DIR}/x,size=${S}"]
    env = {"T": "tmpfs", "DIR": "/work", "S": "1g"}
    (m,) = run.expand(lambda w: expand(w, env)).mounts
    assert (m.type, m.target, m.size, m.readonly) == ("tmpfs", "/work/x", 1 << 30, False)
    assert run.mount_specs == ["type=$T,target=${DIR}/x,size=${S}"]     # the instruction itself stays as parsed
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: RUN --mount=.*unsupported mount type \"nfs\""):
        run.expand(lambda w: expand(w, {"T": "nfs"}))
    needs = _only("RUN --mount=type=cache,target=${X:?needed} ls\n")
    assert needs.mounts[0].type == "cache" and needs.mounts[0].target == ""
    with pytest.raises(DockerfileError, match=r'^Dockerfile:2: RUN: failed to process "\$\{X:\?needed\}": X: needed'):
        needs.expand(lambda w: expand(w, {}))


def test_run_heredocs_attached():
    run = _only("RUN <<-EOF cat <<'RAW'\n\techo $HOME\n\tEOF\n$not expanded\nRAW\n")
    assert run.command == ["<<-EOF cat <<'RAW'"]
    assert [(h.name, h.data, h.chomp, h.expand) for h in run.heredocs] == [
        ("EOF", "\techo $HOME\n", True, True), ("RAW", "$not expanded\n", False, False)]
    assert run.heredocs[0].text == "echo $HOME\n"
    assert run.location == ins.Location("Dockerfile", 2, 6)


def test_copy_and_add():
    df = parse("FROM a AS base\nFROM b\nCOPY --from=base --chown=${U}:g --chmod=0755 --link --parents "
               "--exclude=*.md --exclude=tmp <<-EOF a b/ /dst/\n\tinline $X\n\tEOF\n")
    (copy,) = df.stages[1].instructions
    assert isinstance(copy, ins.CopyInstruction)
    assert copy.sources == ["a", "b/"] and copy.dest == "/dst/"
    assert copy.contents == [ins.SourceContent("EOF", "inline $X\n", True)]
    assert (copy.from_, copy.chown, copy.chmod, copy.link, copy.parents) == ("base", "${U}:g", "0755", True, True)
    assert copy.excludes == ["*.md", "tmp"]
    add = _only("ADD --checksum=sha256:abc --keep-git-dir --unpack=false --chmod=u+x https://x/y.git /src\n")
    assert isinstance(add, ins.AddInstruction)
    assert (add.checksum, add.keep_git_dir, add.unpack, add.chmod) == ("sha256:abc", True, False, "u+x")
    assert _only("ADD a b\n").keep_git_dir is None
    json_copy = _only('COPY ["<<EOF", "/x y"]\n')
    assert json_copy.sources == ["<<EOF"] and json_copy.dest == "/x y" and not json_copy.contents


def test_env_label_arg():
    env = _only('ENV A=1 B="two words" C=three\\ four\n')
    assert env.pairs == [ins.KeyValue("A", "1"), ins.KeyValue("B", '"two words"'), ins.KeyValue("C", "three\\ four")]
    assert [expand(p.value, {}) for p in env.pairs] == ["1", "two words", "three four"]
    legacy = _only("ENV KEY some value here\n")
    assert legacy.pairs == [ins.KeyValue("KEY", "some value here", legacy=True)]
    label = _only('LABEL "com.x"="y z" v=1\n')
    assert [(expand(p.key, {}), expand(p.value, {})) for p in label.pairs] == [("com.x", "y z"), ("v", "1")]
    arg = _only('ARG A B=2 C="x y"\n')
    assert arg.args == [ins.ArgDef("A"), ins.ArgDef("B", "2"), ins.ArgDef("C", '"x y"')]


def test_metadata_instructions():
    df = parse(CORPUS.joinpath("json_forms.Dockerfile").read_text())
    by_kind: dict[str, list] = {}
    for inst in df.stages[0].instructions:
        by_kind.setdefault(inst.keyword, []).append(inst)
    cmds = [c.command for c in by_kind["CMD"]]
    assert cmds[:4] == [["/bin/sh", "-c", "echo hi"], ["spaced", "json"], ["unicode é", 'esc"aped'], []]
    assert cmds[4:] == [["[not json]"], ['["unterminated"']]
    assert [c.prepend_shell for c in by_kind["CMD"]] == [False] * 4 + [True] * 2
    assert [e.command for e in by_kind["ENTRYPOINT"]] == [["/entry"], ["exec form not"]]
    assert by_kind["SHELL"][0].shell == ["powershell", "-command"]
    assert [v.volumes for v in by_kind["VOLUME"]] == [["/data"], ["/var/log", "/var/db"]]
    assert by_kind["EXPOSE"][0].ports == sorted(["80", "443/tcp", "53/udp", "8000-8010"])
    assert [h.test for h in by_kind["HEALTHCHECK"]] == [["CMD", "true"], ["NONE"]]


def test_user_workdir_stopsignal_maintainer():
    df = parse("FROM a\nUSER  app:app  \nWORKDIR /x y\nSTOPSIGNAL SIGINT\nMAINTAINER Jane <j@x>\n")
    user, workdir, sig, maint = df.stages[0].instructions
    assert user.user == "app:app" and workdir.path == "/x y" and sig.signal == "SIGINT"
    assert maint.maintainer == "Jane <j@x>"


def test_healthcheck_durations():
    hc = _only("HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=0s --start-interval=2s --retries=5 "
               "CMD curl -f http://x/ || exit 1\n")
    assert hc.test == ["CMD-SHELL", "curl -f http://x/ || exit 1"]
    assert (hc.interval, hc.timeout, hc.start_period, hc.start_interval, hc.retries) == (
        90_000_000_000, 500_000_000, 0, 2_000_000_000, 5)


def test_onbuild():
    df = parse("FROM a\nONBUILD COPY <<EOF /x\nhello\nEOF\nonbuild   RUN make\n")
    first, second = df.stages[0].instructions
    assert isinstance(first, ins.OnbuildInstruction) and isinstance(first.trigger, ins.CopyInstruction)
    assert first.expression == "COPY <<EOF /x\nhello\nEOF"
    assert first.trigger.contents == [ins.SourceContent("EOF", "hello\n", True)]
    assert second.expression == "RUN make" and second.trigger.command == ["make"]
    assert second.location.start_line == 5


def _expanded(text: str, env: dict[str, str]):
    inst = _only(text)
    return inst, inst.expand(lambda w: expand(w, env), lambda w: expand_words(w, env),
                             lambda w: expand_heredoc(w, env).result)


def test_each_instruction_expands_its_own_fields():
    env = {"A": "1", "B": "two words", "D": "/dst", "U": "app", "SIG": "TERM", "F": "builder", "N": "it's"}
    _, env_ = _expanded("ENV $A=$B K=${A}x\n", env)
    assert [(p.key, p.value) for p in env_.pairs] == [("1", "two words"), ("K", "1x")]
    _, label = _expanded('LABEL "l$A"="$B"\n', env)
    assert [(p.key, p.value) for p in label.pairs] == [("l1", "two words")]
    _, expose = _expanded("EXPOSE $A 80/$B\n", env)
    assert expose.ports == ["1", "80/two", "words"]                    # split into words, as BuildKit
    _, volume = _expanded("VOLUME $D /v$A\n", env)
    assert volume.volumes == ["/dst", "/v1"]
    for text, field, value in (("USER $U:$A\n", "user", "app:1"), ("WORKDIR $D/w\n", "path", "/dst/w"),
                               ("STOPSIGNAL SIG$SIG\n", "signal", "SIGTERM")):
        assert getattr(_expanded(text, env)[1], field) == value
    raw, copy = _expanded('COPY --from=$F --chown=$U --chmod=$A --exclude=*.$A $D/a "$B" $D/\n', env)
    assert (copy.from_, copy.chown, copy.chmod, copy.excludes, copy.sources, copy.dest) == \
        ("builder", "app", "1", ["*.1"], ["/dst/a", "two words"], "/dst/")
    assert raw.sources == ["$D/a", '"$B"'] and raw.from_ == "$F"     # the parsed instruction is untouched
    _, add = _expanded("ADD --checksum=sha256:$A http://h/$A /x\n", env)
    assert (add.checksum, add.sources) == ("sha256:1", ["http://h/1"])
    _, heredoc = _expanded("COPY <<EOF <<'RAW' /x/\nsay \"$N\" $A\nEOF\n$A stays\nRAW\n", env)
    assert [c.data for c in heredoc.contents] == ['say "it\'s" 1\n', "$A stays\n"]   # quotes kept, as ExpandRaw
    _, arg = _expanded("ARG X=$A\n", env)
    assert arg.args[0].default == "$A"        # each ARG default is expanded when it is declared
    for text in ("CMD echo $A\n", "ENTRYPOINT [\"$A\"]\n", "SHELL [\"$A\"]\n", "MAINTAINER $A\n",
                 "HEALTHCHECK CMD $A\n", "ONBUILD RUN $A\n"):
        inst, expanded = _expanded(text, env)
        assert expanded == inst, text
    from_ = parse("FROM $A\n").stages[0].from_          # FROM takes the global ARGs, in the build
    assert from_.expand(lambda w: expand(w, env)) == from_


def test_every_keyword_has_one_parser():
    assert set(ins.PARSERS) == set(ins.INSTRUCTIONS)


def test_instruction_error_helper():
    inst = _only("WORKDIR ${X:?must be set}\n")
    with pytest.raises(DockerfileError) as info:
        inst.expand(lambda w: expand(w, {}))
    assert str(info.value) == 'Dockerfile:2: WORKDIR: failed to process "${X:?must be set}": X: must be set'


def test_directives_and_warnings():
    df = parse("# syntax=docker/dockerfile:1.7\n# check=skip=all\nFROM a\nRUN a \\\n\n  b\n")
    assert df.directive("syntax") == "docker/dockerfile:1.7" and df.directive("check") == "skip=all"
    assert df.directive("escape") is None and df.escape == "\\"
    assert len(df.warnings) == 1 and "empty continuation line" in df.warnings[0]
    assert parse("# escape=`\nFROM a\n").escape == "`"
    # a directive after a comment or an instruction is only a comment
    assert parse("# hello\n# escape=`\nFROM a\n").escape == "\\"


def test_every_corpus_file_parses_into_typed_instructions():
    for path in sorted(CORPUS.glob("*.Dockerfile")):
        df = parse(path.read_text(), path.name)
        for st in df.stages:
            for inst in st.instructions:
                assert isinstance(inst, ins.Instruction)
                assert inst.location.file == path.name
                assert 1 <= inst.location.start_line <= inst.location.end_line


# -- generated Dockerfiles: parse() either gives typed stages or a DockerfileError -----------------
_FLAGGED = st.sampled_from([
    "RUN --mount=type=cache,target=/x,sharing=locked make", "RUN --mount=type=secret,id=a,mode=0400 cat",
    "RUN --mount=type=tmpfs,target=/t,size=1g ls", "RUN --mount=from=0,target=/y ls", "RUN --network=host x",
    "COPY --from=0 a b", "COPY --from=s a b", "COPY --chmod=755 --link=false a b", "ADD --checksum=sha256:00 a b",
    "HEALTHCHECK --interval=1s --retries=2 CMD true", "HEALTHCHECK --start-interval=1us CMD x",
    "FROM scratch AS s", "FROM s", "ONBUILD RUN x", "ONBUILD ONBUILD RUN x", "ARG A=1 B", "EXPOSE 80 $P",
    "SHELL [\"sh\", \"-c\"]", "SHELL sh", "STOPSIGNAL 9", "USER", "VOLUME [\"\"]", "ENV A", "LABEL =x",
])


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(dockerfiles(), st.lists(_FLAGGED, max_size=4))
def test_generated_dockerfiles_parse_or_fail_cleanly(text, extra):
    text = text + "\n" + "\n".join(extra)
    try:
        df = parse(text, "gen.Dockerfile")
    except DockerfileError as exc:
        assert exc.file == "gen.Dockerfile" and exc.line is not None and exc.line >= 1
        assert str(exc).startswith(f"gen.Dockerfile:{exc.line}: ")
        return
    assert df.stages
    for st_ in df.stages:
        for inst in st_.instructions:
            assert isinstance(inst, ins.Instruction)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(alphabet=st.sampled_from(list("FROMRUNaz \t\n\\`#=\"'[]<-$:{}")), max_size=80))
def test_arbitrary_text_never_crashes(text: str):
    try:
        parse_nodes(text)
    except DockerfileError as exc:
        assert exc.line is not None

"""Typed Dockerfile instructions, made from parser nodes (BuildKit's ``instructions``).

Every instruction keeps its source location and its original text (BuildKit's ``Original``: the logical
line, continuations joined), from which the build writes history ``created_by``. Nothing is expanded when
they are made: each instruction expands its own fields with the stage's environment in one method,
``expand(word, words, raw)`` (``word``: one word to one string, ``shell.expand``; ``words``: one word to
several, ``shell.expand_words``, where BuildKit splits; ``raw``: a heredoc body, quotes left alone,
``shell.expand_heredoc``), which returns an expanded copy:

=============  ==========================================================================
instruction    ``expand`` expands
=============  ==========================================================================
FROM           nothing: base_name and platform take the global ARGs only (the build does it)
RUN            the ``--mount`` values (the command itself is the shell's to expand)
COPY/ADD       sources, dest, --chown, --chmod, --exclude, heredoc bodies whose delimiter is unquoted,
               --checksum (ADD), --from (COPY: kaniko expands it; current BuildKit refuses a variable
               there)
ENV/LABEL      keys and values
EXPOSE         ports, split into words
VOLUME         volumes
USER           user
WORKDIR        path
STOPSIGNAL     signal
ARG            nothing: each default is expanded when its ARG is declared, seeing the ARGs declared
               before it (BuildKit's dispatchArg)
CMD, ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD, MAINTAINER: nothing
=============  ==========================================================================

Each keyword is made from its node by one small function, found in ``PARSERS``.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from .durations import parse_duration
from .errors import DockerfileError, ExpansionError
from .flags import FlagError, FlagKind, ParsedFlags, parse_flags
from .mounts import Mount, MountError, parse_mount
from .heredocs import Heredoc, chomp_heredoc, parse_heredoc_word
from .parser import Node

__all__ = [
    "AddInstruction", "ArgDef", "ArgInstruction", "CmdInstruction", "CopyInstruction",
    "EntrypointInstruction", "EnvInstruction", "ExposeInstruction", "FromInstruction",
    "HealthcheckInstruction", "HeredocFile", "INSTRUCTIONS", "Instruction", "KeyValue",
    "LabelInstruction", "Location", "MaintainerInstruction", "OnbuildInstruction",
    "RunInstruction", "ShellInstruction", "SourceContent", "StopSignalInstruction",
    "UserInstruction", "VolumeInstruction", "WorkdirInstruction", "from_node",
]

INSTRUCTIONS = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
                "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
                "WORKDIR")
NETWORK_MODES = ("default", "none", "host")
SECURITY_MODES = ("sandbox", "insecure")
_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*\Z")
_MS = 1_000_000

Expand = Callable[[str], str]                  # one word -> one string
ExpandWords = Callable[[str], "list[str]"]     # one word -> words
_I = TypeVar("_I", bound="Instruction")


@dataclass(frozen=True)
class Location:
    """Where an instruction is in its Dockerfile (file, first and last line): error messages name it, the build
    report and provenance carry its lines."""
    file: str
    start_line: int
    end_line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.start_line}"


@dataclass(kw_only=True)
class Instruction:
    """Fields common to every instruction."""

    keyword: ClassVar[str] = ""
    #: string fields the base ``expand`` expands as one word each (other rules override ``expand``)
    WORD_FIELDS: ClassVar[tuple[str, ...]] = ()
    location: Location
    original: str

    def error(self, message: str) -> DockerfileError:
        """A DockerfileError at this instruction (for the build's own checks)."""
        return DockerfileError(self.location.file, self.location.start_line, message, self.location.end_line)

    def expand(self: _I, word: Expand, words: ExpandWords | None = None, raw: Expand | None = None) -> _I:
        """A copy with every field the build expands expanded (see the table above); expansion errors
        become DockerfileErrors at this instruction. The instruction itself stays as parsed."""
        if not self.WORD_FIELDS:
            return self
        return dataclasses.replace(self, **{f: self.expand_word(word, getattr(self, f)) for f in self.WORD_FIELDS})

    def expand_word(self, expander: Expand, word: str) -> str:
        """``expander(word)``, its ExpansionError as a DockerfileError at this instruction."""
        try:
            return expander(word)
        except ExpansionError as exc:
            raise self.error(f"{self.keyword}: {exc}") from None


@dataclass(frozen=True)
class KeyValue:
    """One ENV or LABEL pair; ``legacy`` for the ``ENV key value`` form."""

    key: str
    value: str
    legacy: bool = False


@dataclass(frozen=True)
class ArgDef:
    """One ARG name with its default (None when none is given)."""

    key: str
    default: str | None = None


@dataclass(frozen=True)
class HeredocFile:
    """A heredoc of a RUN: ``data`` as written; ``chomp`` for ``<<-``; ``expand`` False
    when the delimiter was quoted. :attr:`text` applies the chomp."""

    name: str
    data: str
    chomp: bool = False
    expand: bool = True
    file_descriptor: int = 0

    @property
    def text(self) -> str:
        return chomp_heredoc(self.data) if self.chomp else self.data


@dataclass(frozen=True)
class SourceContent:
    """An inline COPY/ADD source from a heredoc: ``path`` is the heredoc name (the file
    name it gets), ``data`` the body (tabs already stripped for ``<<-``)."""

    path: str
    data: str
    expand: bool = True


@dataclass(kw_only=True)
class FromInstruction(Instruction):
    """`FROM [--platform=p] base [AS name]`: base and platform as written (the build expands them with the global
    ARGs)."""
    keyword: ClassVar[str] = "FROM"
    base_name: str
    stage_name: str = ""      # lower-cased, "" when no AS
    platform: str = ""        # --platform as written, "" when absent


@dataclass(kw_only=True)
class RunInstruction(Instruction):
    """``command`` is the argv in JSON form, or one string in shell form (then
    ``prepend_shell`` is True and the stage's SHELL runs it). ``mounts`` are parsed with the
    values as written (checked at parse time); ``mount_specs`` keeps the raw ``--mount``
    values, from which :meth:`expand` parses them again after expansion."""

    keyword: ClassVar[str] = "RUN"
    command: list[str]
    prepend_shell: bool
    heredocs: list[HeredocFile] = field(default_factory=list)
    mount_specs: list[str] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    network: str = "default"
    security: str = "sandbox"
    devices: list[str] = field(default_factory=list)
    flags_used: list[str] = field(default_factory=list)

    def expand(self, word: Expand, words: ExpandWords | None = None,
               raw: Expand | None = None) -> "RunInstruction":
        mounts = []
        for spec in self.mount_specs:
            try:
                mounts.append(parse_mount(spec, lambda w: self.expand_word(word, w)))
            except MountError as exc:
                raise self.error(f"RUN --mount={spec}: {exc}") from None
        return dataclasses.replace(self, mounts=mounts)


@dataclass(kw_only=True)
class CmdInstruction(Instruction):
    """`CMD`: the argv in JSON form, or one string run by the stage's SHELL (`prepend_shell`)."""
    keyword: ClassVar[str] = "CMD"
    command: list[str]
    prepend_shell: bool


@dataclass(kw_only=True)
class EntrypointInstruction(Instruction):
    """`ENTRYPOINT`, in the forms of CMD; `command` is None for `ENTRYPOINT []`, which clears the entry point."""
    keyword: ClassVar[str] = "ENTRYPOINT"
    command: list[str] | None   # None for an empty ENTRYPOINT (resets it)
    prepend_shell: bool


@dataclass(kw_only=True)
class ShellInstruction(Instruction):
    """`SHELL ["executable", "parameters"]`: the argv that runs later shell-form commands of the stage."""
    keyword: ClassVar[str] = "SHELL"
    shell: list[str]


@dataclass(kw_only=True)
class _CopyBase(Instruction):
    """What COPY and ADD share: file sources and heredoc sources, the destination, --chown, --chmod, --link and
    --exclude."""
    sources: list[str]                 # file sources as written (heredoc sources excluded)
    dest: str
    contents: list[SourceContent] = field(default_factory=list)
    chown: str = ""
    chmod: str = ""
    link: bool = False
    excludes: list[str] = field(default_factory=list)

    def _expanded(self, word: Expand, raw: Expand | None, **more: str) -> dict:
        w = lambda text: self.expand_word(word, text)     # noqa: E731
        body = lambda text: self.expand_word(raw or word, text)     # noqa: E731
        return dict(sources=[w(x) for x in self.sources], dest=w(self.dest), chown=w(self.chown),
                    chmod=w(self.chmod), excludes=[w(x) for x in self.excludes],
                    contents=[dataclasses.replace(c, data=body(c.data)) if c.expand else c for c in self.contents],
                    **{k: w(v) for k, v in more.items()})


@dataclass(kw_only=True)
class CopyInstruction(_CopyBase):
    """`COPY`: from the build context, or from a stage or image (`--from`); `--parents` keeps the sources'
    directories."""
    keyword: ClassVar[str] = "COPY"
    from_: str = ""
    parents: bool = False

    def expand(self, word: Expand, words: ExpandWords | None = None,
               raw: Expand | None = None) -> "CopyInstruction":
        return dataclasses.replace(self, **self._expanded(word, raw, from_=self.from_))


@dataclass(kw_only=True)
class AddInstruction(_CopyBase):
    """`ADD`: COPY that also takes URLs and git repositories, and unpacks local archives (`--checksum`,
    `--keep-git-dir`, `--unpack`)."""
    keyword: ClassVar[str] = "ADD"
    checksum: str = ""
    keep_git_dir: bool | None = None   # None when the flag is absent
    unpack: bool | None = None

    def expand(self, word: Expand, words: ExpandWords | None = None,
               raw: Expand | None = None) -> "AddInstruction":
        return dataclasses.replace(self, **self._expanded(word, raw, checksum=self.checksum))


@dataclass(kw_only=True)
class _KeyValues(Instruction):
    """What ENV and LABEL share: their key=value pairs in order."""
    pairs: list[KeyValue]

    def expand(self: _I, word: Expand, words: ExpandWords | None = None,
               raw: Expand | None = None) -> _I:
        w = lambda text: self.expand_word(word, text)     # noqa: E731
        return dataclasses.replace(self, pairs=[dataclasses.replace(p, key=w(p.key), value=w(p.value))
                                                for p in self.pairs])


@dataclass(kw_only=True)
class EnvInstruction(_KeyValues):
    """`ENV key=value...` (or the legacy `ENV key value`)."""
    keyword: ClassVar[str] = "ENV"


@dataclass(kw_only=True)
class LabelInstruction(_KeyValues):
    """`LABEL key=value...`."""
    keyword: ClassVar[str] = "LABEL"


@dataclass(kw_only=True)
class ArgInstruction(Instruction):
    """`ARG name[=default]...`; each default is expanded when the build declares it."""
    keyword: ClassVar[str] = "ARG"
    args: list[ArgDef]


@dataclass(kw_only=True)
class ExposeInstruction(Instruction):
    """`EXPOSE port[/proto]...`."""
    keyword: ClassVar[str] = "EXPOSE"
    ports: list[str]    # sorted as BuildKit sorts them

    def expand(self, word: Expand, words: ExpandWords | None = None,
               raw: Expand | None = None) -> "ExposeInstruction":
        split = words or (lambda text: [word(text)])
        return dataclasses.replace(self, ports=[p for port in self.ports for p in self.expand_word(split, port)])


@dataclass(kw_only=True)
class VolumeInstruction(Instruction):
    """`VOLUME`, in JSON or word form."""
    keyword: ClassVar[str] = "VOLUME"
    volumes: list[str]

    def expand(self, word: Expand, words: ExpandWords | None = None,
               raw: Expand | None = None) -> "VolumeInstruction":
        return dataclasses.replace(self, volumes=[self.expand_word(word, v) for v in self.volumes])


@dataclass(kw_only=True)
class UserInstruction(Instruction):
    """`USER user[:group]`."""
    keyword: ClassVar[str] = "USER"
    WORD_FIELDS: ClassVar[tuple[str, ...]] = ("user",)
    user: str


@dataclass(kw_only=True)
class WorkdirInstruction(Instruction):
    """`WORKDIR path`; a relative path is joined to the current one when the build applies it."""
    keyword: ClassVar[str] = "WORKDIR"
    WORD_FIELDS: ClassVar[tuple[str, ...]] = ("path",)
    path: str


@dataclass(kw_only=True)
class StopSignalInstruction(Instruction):
    """`STOPSIGNAL signal`, a name or a number."""
    keyword: ClassVar[str] = "STOPSIGNAL"
    WORD_FIELDS: ClassVar[tuple[str, ...]] = ("signal",)
    signal: str


@dataclass(kw_only=True)
class MaintainerInstruction(Instruction):
    """`MAINTAINER name` (deprecated): it sets the config's `author`."""
    keyword: ClassVar[str] = "MAINTAINER"
    maintainer: str


@dataclass(kw_only=True)
class HealthcheckInstruction(Instruction):
    """``test`` as in the image config: ``["NONE"]``, ``["CMD", argv...]`` (JSON form) or
    ``["CMD-SHELL", "command"]``. Durations are integer nanoseconds (0 = unset), as the
    image config stores them."""

    keyword: ClassVar[str] = "HEALTHCHECK"
    test: list[str]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(kw_only=True)
class OnbuildInstruction(Instruction):
    """``expression`` is the trigger text stored in the image config (with heredoc bodies
    appended as BuildKit does); ``trigger`` the inner instruction, parsed and checked."""

    keyword: ClassVar[str] = "ONBUILD"
    expression: str
    trigger: Instruction


# -- building them from nodes ---------------------------------------------------------------------
class _Bad(Exception):
    """An instruction-level complaint; from_node adds file and line."""


def _flags(node: Node, spec: dict[str, FlagKind]) -> ParsedFlags:
    try:
        return parse_flags(node.flags, spec, node.keyword)
    except FlagError as exc:
        raise _Bad(f"{node.keyword}: {exc}") from None


def _cmdline(node: Node) -> list[str]:
    if not node.args:
        return []
    return list(node.args) if node.json else [" ".join(node.args)]


def _kvps(node: Node) -> list[KeyValue]:
    args = node.args
    if not args:
        raise _Bad(f"{node.keyword} requires at least one argument")
    out = []
    for i in range(0, len(args), 3):
        key, value, sep = args[i], args[i + 1], args[i + 2]
        if key == "":
            raise _Bad(f"{node.keyword} names can not be blank")
        out.append(KeyValue(key, value, legacy=sep == ""))
    return out


def _duration(name: str, value: str) -> int:
    if value == "":
        return 0
    try:
        ns = parse_duration(value)
    except ValueError as exc:
        raise _Bad(f"HEALTHCHECK --{name}={value}: {exc}") from None
    if ns == 0:
        return 0
    if ns < _MS:
        raise _Bad(f"HEALTHCHECK: Interval \"{name}\" cannot be less than 1ms (got {value})")
    return ns


def _heredoc_word(word: str) -> Heredoc | None:
    try:
        return parse_heredoc_word(word)
    except ExpansionError as exc:
        raise _Bad(f"bad heredoc {word}: {exc}") from None


def _sources_and_dest(node: Node) -> tuple[list[str], str, list[SourceContent]]:
    kw = node.keyword
    if len(node.args) < 2:
        raise _Bad(f"{kw} requires at least two arguments, but only one was provided. "
                   "Destination could not be determined")
    *srcs, dest = node.args
    if not node.json and _heredoc_word(dest) is not None:
        raise _Bad(f"{kw} cannot accept a heredoc as a destination")
    bodies = {h.name: h for h in node.heredocs}
    sources: list[str] = []
    contents: list[SourceContent] = []
    for src in srcs:
        doc = _heredoc_word(src) if not node.json else None
        if doc is None:
            sources.append(src)
            continue
        body = bodies.get(doc.name)
        data = body.content if body else ""
        if doc.chomp:
            data = chomp_heredoc(data)
        contents.append(SourceContent(path=doc.name, data=data, expand=doc.expand))
    return sources, dest, contents


_NO_FLAGS: dict[str, FlagKind] = {}


def _from(node: Node, common: dict) -> Instruction:
    fl = _flags(node, {"platform": FlagKind.STRING})
    args = node.args
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise _Bad(f"invalid name for build stage: \"{args[2]}\", name can't start with a number "
                       "or contain symbols")
    elif len(args) != 1:
        raise _Bad("FROM requires either one or three arguments")
    else:
        name = ""
    return FromInstruction(base_name=args[0], stage_name=name, platform=fl.string("platform"), **common)


def _run(node: Node, common: dict) -> Instruction:
    fl = _flags(node, {"mount": FlagKind.STRINGS, "network": FlagKind.STRING,
                       "security": FlagKind.STRING, "device": FlagKind.STRINGS})
    specs = fl.strings("mount")
    mounts = []
    for spec in specs:
        try:
            mounts.append(parse_mount(spec))
        except MountError as exc:
            raise _Bad(f"RUN --mount={spec}: {exc}") from None
    network = fl.string("network", "default")
    if network not in NETWORK_MODES:
        raise _Bad(f"RUN: invalid network mode \"{network}\" (use one of {', '.join(NETWORK_MODES)})")
    security = fl.string("security", "sandbox")
    if security not in SECURITY_MODES:
        raise _Bad(f"RUN: security \"{security}\" is not valid (use sandbox or insecure)")
    docs = [HeredocFile(h.name, h.content, h.chomp, h.expand, h.file_descriptor) for h in node.heredocs]
    command = _cmdline(node)
    if not command and not docs:
        raise _Bad("RUN requires at least one argument")
    return RunInstruction(command=command, prepend_shell=not node.json, heredocs=docs, mount_specs=specs,
                          mounts=mounts, network=network, security=security, devices=fl.strings("device"),
                          flags_used=sorted(fl.used), **common)


def _cmd(node: Node, common: dict) -> Instruction:
    _flags(node, _NO_FLAGS)
    return CmdInstruction(command=_cmdline(node), prepend_shell=not node.json, **common)


def _entrypoint(node: Node, common: dict) -> Instruction:
    _flags(node, _NO_FLAGS)
    return EntrypointInstruction(command=_cmdline(node) or None, prepend_shell=not node.json, **common)


def _shell(node: Node, common: dict) -> Instruction:
    _flags(node, _NO_FLAGS)
    if not node.args:
        raise _Bad("SHELL requires at least one argument")
    if not node.json:
        raise _Bad(f"SHELL requires the arguments to be in JSON form, e.g. SHELL [\"/bin/sh\", \"-c\"] "
                   f"(got: {node.original.strip()})")
    return ShellInstruction(shell=list(node.args), **common)


def _copy(node: Node, common: dict) -> Instruction:
    fl = _flags(node, {"chown": FlagKind.STRING, "from": FlagKind.STRING, "chmod": FlagKind.STRING,
                       "link": FlagKind.BOOL, "exclude": FlagKind.STRINGS, "parents": FlagKind.BOOL})
    sources, dest, contents = _sources_and_dest(node)
    _check_chmod(fl.string("chmod"))
    return CopyInstruction(sources=sources, dest=dest, contents=contents, chown=fl.string("chown"),
                           chmod=fl.string("chmod"), link=fl.boolean("link"), excludes=fl.strings("exclude"),
                           from_=fl.string("from"), parents=fl.boolean("parents"), **common)


def _add(node: Node, common: dict) -> Instruction:
    fl = _flags(node, {"chown": FlagKind.STRING, "chmod": FlagKind.STRING, "link": FlagKind.BOOL,
                       "keep-git-dir": FlagKind.BOOL, "checksum": FlagKind.STRING,
                       "unpack": FlagKind.BOOL, "exclude": FlagKind.STRINGS})
    sources, dest, contents = _sources_and_dest(node)
    _check_chmod(fl.string("chmod"))
    return AddInstruction(sources=sources, dest=dest, contents=contents, chown=fl.string("chown"),
                          chmod=fl.string("chmod"), link=fl.boolean("link"), excludes=fl.strings("exclude"),
                          checksum=fl.string("checksum"),
                          keep_git_dir=fl.boolean("keep-git-dir") if "keep-git-dir" in fl.used else None,
                          unpack=fl.boolean("unpack") if "unpack" in fl.used else None, **common)


def _env(node: Node, common: dict) -> Instruction:
    _flags(node, _NO_FLAGS)
    return EnvInstruction(pairs=_kvps(node), **common)


def _label(node: Node, common: dict) -> Instruction:
    _flags(node, _NO_FLAGS)
    return LabelInstruction(pairs=_kvps(node), **common)


def _arg(node: Node, common: dict) -> Instruction:
    _flags(node, _NO_FLAGS)
    if not node.args:
        raise _Bad("ARG requires at least one argument")
    defs = []
    for arg in node.args:
        if "=" in arg:
            key, value = arg.split("=", 1)
            if key == "":
                raise _Bad("ARG names can not be blank")
            defs.append(ArgDef(key, value))
        else:
            defs.append(ArgDef(arg))
    return ArgInstruction(args=defs, **common)


def _expose(node: Node, common: dict) -> Instruction:
    _flags(node, _NO_FLAGS)
    if not node.args:
        raise _Bad("EXPOSE requires at least one argument")
    return ExposeInstruction(ports=sorted(node.args), **common)


def _volume(node: Node, common: dict) -> Instruction:
    _flags(node, _NO_FLAGS)
    if not node.args:
        raise _Bad("VOLUME requires at least one argument")
    volumes = [v.strip() for v in node.args]
    if "" in volumes:
        raise _Bad("VOLUME specified can not be an empty string")
    return VolumeInstruction(volumes=volumes, **common)


def _one_argument(node: Node) -> str:
    if len(node.args) != 1:
        raise _Bad(f"{node.keyword} requires exactly one argument")
    _flags(node, _NO_FLAGS)
    return node.args[0]


def _user(node: Node, common: dict) -> Instruction:
    return UserInstruction(user=_one_argument(node), **common)


def _workdir(node: Node, common: dict) -> Instruction:
    return WorkdirInstruction(path=_one_argument(node), **common)


def _stopsignal(node: Node, common: dict) -> Instruction:
    return StopSignalInstruction(signal=_one_argument(node), **common)


def _maintainer(node: Node, common: dict) -> Instruction:
    return MaintainerInstruction(maintainer=_one_argument(node), **common)


def _healthcheck(node: Node, common: dict) -> Instruction:
    args = node.args
    if not args:
        raise _Bad("HEALTHCHECK requires at least one argument")
    typ = args[0].upper()
    rest = args[1:]
    if typ == "NONE":
        if rest:
            raise _Bad("HEALTHCHECK NONE takes no arguments")
        _flags(node, _NO_FLAGS)
        return HealthcheckInstruction(test=["NONE"], **common)
    fl = _flags(node, {"interval": FlagKind.STRING, "timeout": FlagKind.STRING,
                       "start-period": FlagKind.STRING, "start-interval": FlagKind.STRING,
                       "retries": FlagKind.STRING})
    if typ != "CMD":
        raise _Bad(f"Unknown type \"{args[0]}\" in HEALTHCHECK (try CMD)")
    if not rest:
        raise _Bad("Missing command after HEALTHCHECK CMD")
    test = ["CMD", *rest] if node.json else ["CMD-SHELL", " ".join(rest)]
    return HealthcheckInstruction(
        test=test, interval=_duration("interval", fl.string("interval")),
        timeout=_duration("timeout", fl.string("timeout")),
        start_period=_duration("start-period", fl.string("start-period")),
        start_interval=_duration("start-interval", fl.string("start-interval")),
        retries=_retries(fl.string("retries")), **common)


def _retries(raw: str) -> int:
    if not raw:
        return 0
    try:
        retries = int(raw, 10)
    except ValueError:
        raise _Bad(f"HEALTHCHECK --retries={raw}: not an integer") from None
    if retries < 0:
        raise _Bad(f"HEALTHCHECK: --retries cannot be negative ({retries})")
    if retries > 0x7FFFFFFF:
        raise _Bad(f"HEALTHCHECK --retries={raw}: value out of range")
    return retries


def _onbuild(node: Node, common: dict) -> Instruction:
    _flags(node, _NO_FLAGS)
    sub = node.sub
    if sub is None:
        raise _Bad("ONBUILD requires at least one argument")
    trigger = sub.keyword
    if trigger == "ONBUILD":
        raise _Bad("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise _Bad(f"{trigger} isn't allowed as an ONBUILD trigger")
    inner = _build(sub, common["location"])
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original, count=1)
    for h in node.heredocs:
        expression += "\n" + h.content + h.name
    return OnbuildInstruction(expression=expression, trigger=inner, **common)


#: one function per keyword: (node, {"location", "original"}) -> the typed instruction
PARSERS: dict[str, Callable[[Node, dict], Instruction]] = {
    "FROM": _from, "RUN": _run, "CMD": _cmd, "ENTRYPOINT": _entrypoint, "SHELL": _shell, "COPY": _copy,
    "ADD": _add, "ENV": _env, "LABEL": _label, "ARG": _arg, "EXPOSE": _expose, "VOLUME": _volume,
    "USER": _user, "WORKDIR": _workdir, "STOPSIGNAL": _stopsignal, "MAINTAINER": _maintainer,
    "HEALTHCHECK": _healthcheck, "ONBUILD": _onbuild,
}


def _build(node: Node, loc: Location) -> Instruction:
    parser = PARSERS.get(node.keyword)
    if parser is None:
        hint = difflib.get_close_matches(node.keyword, INSTRUCTIONS, n=1)
        suffix = f" (did you mean {hint[0]}?)" if hint else ""
        raise _Bad(f"unknown instruction: {node.command}{suffix}")
    return parser(node, {"location": loc, "original": node.original})


def _check_chmod(chmod: str) -> None:
    """--chmod takes an octal mode; a symbolic one (u+x) is accepted as BuildKit does now."""
    if chmod == "" or "$" in chmod:
        return
    if re.fullmatch(r"[0-7]{1,4}", chmod):
        return
    if re.fullmatch(r"[ugoa]*[-+=][rwxXst]*(,[ugoa]*[-+=][rwxXst]*)*", chmod):
        return
    raise _Bad(f"invalid --chmod={chmod}: expected an octal mode like 0755 or a symbolic one like u+x")


def from_node(node: Node, file: str) -> Instruction:
    """The typed instruction for ``node``; raises DockerfileError naming ``file`` and line."""
    loc = Location(file, node.start_line, node.end_line)
    try:
        return _build(node, loc)
    except _Bad as exc:
        raise DockerfileError(file, node.start_line, str(exc), node.end_line) from None

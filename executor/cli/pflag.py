"""kaniko's command line is parsed by spf13/pflag; this is a faithful copy of its rules.

  * `--name value`, `--name=value`, `-n value`, `-nvalue`, `-n=value`;
  * a boolean never consumes the next word: `--cache true` leaves `true` as a positional argument;
    booleans take `--cache`, `--cache=<strconv.ParseBool spelling>`;
  * single-letter booleans group: `-fv debug` (warmer) is `-f -v debug`;
  * `--` ends the flags; a lone `-` is a positional argument;
  * unknown flags fail, naming the flag (with a suggestion when one is close).

A flag is a `FlagSpec`: its kind says how one occurrence updates the value (Go's scalar parsers are here:
strconv.ParseBool, strconv.ParseInt, time.ParseDuration); `scan` turns argv into values by `dest`.
Nothing here knows kaniko's flags: they are in `executor.cli.flags`.
"""
from __future__ import annotations

import csv
import difflib
import io
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from executor.dockerfile import durations

__all__ = ["FlagSpec", "HelpRequested", "Parsed", "UsageError", "VersionRequested", "format_usage",
           "parse_bool", "parse_duration", "parse_go_int", "scan", "set_multikv"]


class UsageError(Exception):
    """The command line is wrong; the message names the offending flag or value."""


class HelpRequested(Exception):
    """`-h`/`--help` was given; the message is the usage text."""


class VersionRequested(Exception):
    """The `version` subcommand was given."""



# --------------------------------------------------------------------------------------------
# Go-compatible scalar parsers


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_bool(text: str) -> bool:
    """strconv.ParseBool: exactly 1 t T TRUE true True / 0 f F FALSE false False."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


_GO_INT = re.compile(r"^[+-]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)$")


def parse_go_int(text: str) -> int:
    """strconv.ParseInt(text, 0, 64) as pflag's int flags use it (0x.., 0o.., 0b.., 0.. octal)."""
    if not _GO_INT.match(text) or "__" in text or text.rstrip("_") != text:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-").replace("_", "")
    if body[:2].lower() in ("0x", "0o", "0b"):
        value = int(body, 0)
    elif len(body) > 1 and body[0] == "0":
        value = int(body, 8)
    else:
        value = int(body, 10)
    value *= sign
    if not -(2**63) <= value < 2**63:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration ("336h", "1h30m", "1.5s", "-2m", "0"), in seconds (the Dockerfile front end's
    parser, which gives integer nanoseconds, is the one implementation)."""
    return durations.parse_duration(text) / 1e9


def _split_kv(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep:
        raise ValueError(f"invalid argument value. expect key=value, got {value}")
    return key, val


def _read_csv(value: str) -> list[str]:
    """pflag's stringSlice reads the value as one CSV record ("a,b", '"a,b",c')."""
    if value == "":
        return []
    try:
        rows = list(csv.reader(io.StringIO(value), strict=True))
    except csv.Error as exc:
        raise ValueError(str(exc)) from exc
    return rows[0] if rows else []


# --------------------------------------------------------------------------------------------
# Flag kinds: each knows how one occurrence updates the value.



def _set_bool(_cur: Any, value: str) -> bool:
    return parse_bool(value)


def _set_string(_cur: Any, value: str) -> str:
    return value


def _set_int(_cur: Any, value: str) -> int:
    return parse_go_int(value)


def _set_duration(_cur: Any, value: str) -> float:
    return parse_duration(value)


def _set_multi(cur: list[str], value: str) -> list[str]:
    return [*cur, value]


def _set_slice(cur: list[str] | None, value: str) -> list[str]:
    # pflag: the first Set replaces the default, later ones append.
    return [*(cur or []), *_read_csv(value)]


def _set_kv(cur: dict[str, str], value: str) -> dict[str, str]:
    key, val = _split_kv(value)
    out = dict(cur)
    out[key] = val
    return out


def _set_multikv(cur: dict[str, list[str]], value: str) -> dict[str, list[str]]:
    out = {k: list(v) for k, v in cur.items()}
    if value == "":
        return out
    for pair in value.split(";"):
        key, val = _split_kv(pair)
        out.setdefault(key, []).append(val)
    return out


def _set_choice(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    def setter(_cur: Any, value: str) -> str:
        if value not in choices:
            raise ValueError("must be either " + " or ".join(f'"{c}"' for c in choices))
        return value

    return setter


set_multikv = _set_multikv   # kaniko's env fallbacks (KANIKO_REGISTRY_MAP) read values the same way


_SETTERS: dict[str, Callable[[Any, str], Any]] = {
    "bool": _set_bool,
    "string": _set_string,
    "int": _set_int,
    "duration": _set_duration,
    "multi": _set_multi,
    "slice": _set_slice,
    "kv": _set_kv,
    "multikv": _set_multikv,
}


@dataclass(frozen=True)
class FlagSpec:
    """One flag: `kind` is bool, string, int, duration, multi (repeatable), slice (CSV, repeatable), kv,
    multikv or choice; a flag of a kind of its own gives `setter` (current value, text) -> new value."""
    name: str
    kind: str
    dest: str
    default: Any
    help: str
    short: str = ""
    choices: tuple[str, ...] = ()
    env: str = ""  # environment fallback, shown in the help
    deprecated: str = ""  # message printed when used
    hidden: bool = False
    custom: Callable[[Any, str], Any] | None = None   # kind "custom": how one occurrence updates the value
    metavar: str = ""                                  # the value's form in the help, e.g. "key=value"
    no_opt_value: str = ""    # pflag's NoOptDefVal: the value of `--name` given alone (it then takes no next word)

    @property
    def is_bool(self) -> bool:
        return self.kind == "bool"

    def setter(self) -> Callable[[Any, str], Any]:
        if self.custom is not None:
            return self.custom
        if self.kind == "choice":
            return _set_choice(self.choices)
        return _SETTERS[self.kind]


# --------------------------------------------------------------------------------------------
# The scanner

@dataclass
class Parsed:
    """What `scan` gives for one command line: every flag's value (defaults included), the flags given, the
    positional arguments, and whether help was asked."""
    values: dict[str, Any]
    changed: set[str]  # flag names given on the command line
    positionals: list[str]
    help: bool = False


def _initial(spec: FlagSpec) -> Any:
    d = spec.default
    if isinstance(d, list):
        return list(d)
    if isinstance(d, dict):
        return dict(d)
    return d


def _suggest(name: str, known: Mapping[str, FlagSpec]) -> str:
    visible = [n for n, s in known.items() if not s.hidden and not s.deprecated]

    def squash(text: str) -> str:
        return text.lower().replace("_", "").replace("-", "")

    exact = {squash(n): n for n in visible}.get(squash(name))
    close = [exact] if exact else difflib.get_close_matches(name, visible, n=1, cutoff=0.75)
    return f" (did you mean --{close[0]}?)" if close else ""


def scan(specs: Sequence[FlagSpec], argv: Sequence[str]) -> Parsed:
    by_name = {s.name: s for s in specs}
    by_short = {s.short: s for s in specs if s.short}
    values: dict[str, Any] = {}
    for s in specs:
        values.setdefault(s.dest, _initial(s))
    parsed = Parsed(values=values, changed=set(), positionals=[])

    def apply(spec: FlagSpec, value: str, shown: str) -> None:
        try:
            values[spec.dest] = spec.setter()(values[spec.dest], value)
        except ValueError as exc:
            raise UsageError(f'invalid argument "{value}" for "{shown}" flag: {exc}') from None
        parsed.changed.add(spec.name)

    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            parsed.positionals.extend(args[i:])
            break
        if not arg.startswith("-") or arg == "-":
            parsed.positionals.append(arg)
            continue
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            if not name or name.startswith("-") or name.startswith("="):
                raise UsageError(f"bad flag syntax: {arg}")
            spec = by_name.get(name)
            if spec is None:
                if name == "help":
                    parsed.help = True
                    continue
                raise UsageError(f"unknown flag: --{name}{_suggest(name, by_name)}")
            shown = f"--{name}"
            if has_value:
                apply(spec, value, shown)
            elif spec.is_bool or spec.no_opt_value:
                apply(spec, spec.no_opt_value or "true", shown)
            elif i < len(args):
                apply(spec, args[i], shown)
                i += 1
            else:
                raise UsageError(f"flag needs an argument: --{name}")
            continue
        # shorthand group: -abc, -fvalue, -f value, -f=value
        shorts = arg[1:]
        while shorts:
            letter, shorts = shorts[0], shorts[1:]
            spec = by_short.get(letter)
            if spec is None:
                if letter == "h":
                    parsed.help = True
                    continue
                raise UsageError(f"unknown shorthand flag: '{letter}' in -{arg[1:]}")
            shown = f"-{letter}, --{spec.name}"
            if shorts.startswith("="):
                apply(spec, shorts[1:], shown)
                shorts = ""
            elif spec.is_bool:
                apply(spec, "true", shown)
            elif shorts:
                apply(spec, shorts, shown)
                shorts = ""
            elif i < len(args):
                apply(spec, args[i], shown)
                i += 1
            else:
                raise UsageError(f"flag needs an argument: '{letter}' in -{arg[1:]}")
    return parsed


# --------------------------------------------------------------------------------------------
# Help

def format_usage(prog: str, specs: Sequence[FlagSpec], no_effect: Mapping[str, str] | None = None) -> str:
    """pflag's usage text; a flag named in `no_effect` shows why it changes nothing."""
    no_effect = no_effect or {}
    lines = [f"Usage:\n  {prog} [flags]\n", "Flags:"]
    rows: list[tuple[str, str]] = []
    for s in sorted(specs, key=lambda s: s.name.lower()):
        if s.hidden or s.deprecated:
            continue
        short = f"-{s.short}, " if s.short else "    "
        kind = "" if s.is_bool else " " + (s.metavar or {
            "multi": "stringArray", "kv": "key=value", "multikv": "key=value", "slice": "strings",
            "duration": "duration", "int": "int"}.get(s.kind, "string"))
        if s.no_opt_value and not s.is_bool:
            kind += f'[="{s.no_opt_value}"]'
        default = "" if s.default in ("", [], {}, None, False) or s.kind == "custom" else f" (default {s.default})"
        if s.kind == "duration":
            default = " (default 336h0m0s)"
        env = f" [env {s.env}]" if s.env else ""
        why = f" [no effect in kiln: {no_effect[s.name]}]" if s.name in no_effect else ""
        rows.append((f"  {short}--{s.name}{kind}", f"{s.help}{default}{env}{why}"))
    rows.append(("  -h, --help", f"help for {prog}"))
    width = max(len(r[0]) for r in rows) + 3
    lines.extend(f"{left.ljust(width)}{right}" for left, right in rows)
    return "\n".join(lines) + "\n"

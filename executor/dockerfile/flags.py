"""Instruction flags (``--from=x``, ``--link``, ``--mount=...`` repeated), as BuildKit's BFlags."""
from __future__ import annotations

import difflib
import enum
from dataclasses import dataclass, field

__all__ = ["FlagKind", "FlagError", "ParsedFlags", "parse_flags"]


class FlagKind(enum.Enum):
    BOOL = "bool"        # --link, --link=true, --link=false
    STRING = "string"    # --from=x (once)
    STRINGS = "strings"  # --mount=... (repeatable)


class FlagError(ValueError):
    """A flag that is unknown, repeated, missing its value or with a bad value."""


@dataclass
class ParsedFlags:
    """An instruction's flags as `parse_flags` read them (the value of each defined flag, and which were written);
    the instruction parsers read them by kind."""
    values: dict[str, str | bool | list[str]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    def string(self, name: str, default: str = "") -> str:
        value = self.values.get(name, default)
        assert isinstance(value, str)
        return value

    def boolean(self, name: str) -> bool:
        return bool(self.values.get(name, False))

    def strings(self, name: str) -> list[str]:
        value = self.values.get(name, [])
        assert isinstance(value, list)
        return value


def parse_flags(args: list[str], spec: dict[str, FlagKind], instruction: str) -> ParsedFlags:
    """Check ``args`` (``--name[=value]`` words) against ``spec``; raises FlagError."""
    out = ParsedFlags()
    for arg in args:
        if arg == "--":
            break
        if not arg.startswith("--"):
            raise FlagError(f"arg should start with -- : {arg}")
        flag_name, has_value, value = arg.partition("=")
        name = flag_name[2:]
        kind = spec.get(name)
        if kind is None:
            msg = f"unknown flag: {flag_name}"
            close = difflib.get_close_matches(name, list(spec), n=1)
            if close:
                msg += f" (did you mean {close[0]}?)"
            if not spec:
                msg += f" ({instruction} takes no flags)"
            raise FlagError(msg)
        if name in out.used and kind is not FlagKind.STRINGS:
            raise FlagError(f"duplicate flag specified: {flag_name}")
        out.used.add(name)
        if kind is FlagKind.BOOL:
            if has_value and value == "":
                raise FlagError(f"missing a value on flag: {flag_name}")
            low = value.lower()
            if low in ("true", ""):
                out.values[name] = True
            elif low == "false":
                out.values[name] = False
            else:
                raise FlagError(f"expecting boolean value for flag {flag_name}, not: {value}")
        elif kind is FlagKind.STRING:
            if not has_value:
                raise FlagError(f"missing a value on flag: {flag_name}")
            out.values[name] = value
        else:
            if not has_value:
                raise FlagError(f"missing a value on flag: {flag_name}")
            existing = out.values.setdefault(name, [])
            assert isinstance(existing, list)
            existing.append(value)
    return out

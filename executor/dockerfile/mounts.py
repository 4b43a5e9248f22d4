"""``RUN --mount=...`` specifications parsed into typed mounts (BuildKit's rules)."""
from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Mount", "MountError", "parse_mount", "MOUNT_TYPES", "SHARING_MODES"]

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
_ALL_KEYS = ("type", "from", "source", "target", "readonly", "id", "sharing", "required", "size",
             "mode", "uid", "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env")
_RAM = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_RAM_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


class MountError(ValueError):
    """A --mount value that cannot be used."""


@dataclass
class Mount:
    """One ``--mount``. ``type`` is bind (default), cache, tmpfs, secret or ssh.

    ``source``/``target`` as written (``src``/``dst``/``destination`` are aliases);
    ``id`` the cache or secret id; ``sharing`` one of shared/private/locked (cache only);
    ``size`` bytes (tmpfs only); ``mode``/``uid``/``gid`` for cache, secret and ssh;
    ``env`` the variable a secret is exposed as; ``readonly`` defaults to False for cache
    and tmpfs and True otherwise.
    """

    type: str = "bind"
    from_: str = ""
    source: str = ""
    target: str = ""
    readonly: bool = True
    size: int = 0
    id: str = ""
    sharing: str = ""
    required: bool = False
    env: str | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


def _parse_bool(key: str, value: str) -> bool:
    low = value.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise MountError(f"invalid value for {key}: {value}")


def _parse_uint(value: str, base: int, what: str) -> int:
    try:
        number = int(value, base)
    except ValueError:
        raise MountError(f"invalid value {value} for {what}") from None
    if number < 0 or number > 0xFFFFFFFF or not value.isascii() or "_" in value or value.startswith(("+", "-")):
        raise MountError(f"invalid value {value} for {what}")
    return number


def ram_in_bytes(value: str) -> int:
    """docker/go-units RAMInBytes: "64m" -> 67108864 (binary multiples)."""
    m = _RAM.match(value)
    if not m:
        raise MountError(f"invalid size: '{value}'")
    number = float(m.group(1)) if m.group(1).count(".") <= 1 else None
    if number is None:
        raise MountError(f"invalid size: '{value}'")
    unit = (m.group(2) or "").lower()
    return int(number * _RAM_UNITS.get(unit, 1))


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def parse_mount(spec: str, expand: Callable[[str], str] | None = None) -> Mount:
    """Parse one --mount value (CSV of ``key=value`` and bare ``ro``/``rw``/``required``).

    ``expand`` expands each value (the build passes the stage's environment). Without it
    (parse time) values are taken as written, except that values holding a ``$`` are left
    unset and the checks between fields are skipped when any value does (they run again
    after expansion). Raises MountError with a message naming the bad field.
    """
    deferred = False
    try:
        fields = next(csv.reader([spec]), [])
    except csv.Error as exc:
        raise MountError(f"failed to parse csv mounts: {exc}") from None
    m = Mount()
    ro_auto = True
    for fld in fields:
        key, has_value, value = fld.partition("=")
        key = key.lower()
        if not has_value:
            if key in ("readonly", "ro"):
                m.readonly, ro_auto = True, False
            elif key in ("readwrite", "rw"):
                m.readonly, ro_auto = False, False
            elif key == "required":
                if m.type not in ("secret", "ssh"):
                    raise MountError(f"unexpected key '{key}' for mount type '{m.type}'")
                m.required = True
            else:
                raise MountError(f"invalid field '{fld}' must be a key=value pair")
            continue
        if key == "from" and "$" in value[:-1]:
            raise MountError(f"'{key}' doesn't support variable expansion, define alias stage instead")
        if expand is not None:
            value = expand(value)
        elif "$" in value:
            deferred = True
            continue
        if key == "type":
            low = value.lower()
            if low not in MOUNT_TYPES:
                raise MountError(f'unsupported mount type "{value}"{_suggest(low, MOUNT_TYPES)}')
            m.type = low
        elif key == "from":
            m.from_ = value
        elif key in ("source", "src"):
            m.source = value
        elif key in ("target", "dst", "destination"):
            m.target = value
        elif key in ("readonly", "ro"):
            m.readonly, ro_auto = _parse_bool(key, value), False
        elif key in ("readwrite", "rw"):
            m.readonly, ro_auto = not _parse_bool(key, value), False
        elif key == "required":
            if m.type not in ("secret", "ssh"):
                raise MountError(f"unexpected key '{key}' for mount type '{m.type}'")
            m.required = _parse_bool(key, value)
        elif key == "size":
            if m.type != "tmpfs":
                raise MountError(f"unexpected key '{key}' for mount type '{m.type}'")
            m.size = ram_in_bytes(value)
        elif key == "id":
            m.id = value
        elif key == "sharing":
            low = value.lower()
            if low not in SHARING_MODES:
                raise MountError(f'unsupported sharing value "{value}"{_suggest(low, SHARING_MODES)}')
            m.sharing = low
        elif key == "mode":
            m.mode = _parse_uint(value, 8, "mode")
        elif key == "uid":
            m.uid = _parse_uint(value, 10, "uid")
        elif key == "gid":
            m.gid = _parse_uint(value, 10, "gid")
        elif key == "env":
            m.env = value
        else:
            raise MountError(f"unexpected key '{key}' in '{fld}'{_suggest(key, _ALL_KEYS)}")
    if deferred:
        if ro_auto:
            m.readonly = m.type not in ("cache", "tmpfs")
        return m
    if m.type not in ("secret", "ssh", "cache"):
        for name in ("mode", "uid", "gid"):
            if getattr(m, name) is not None:
                raise MountError(f'{name} not allowed for "{m.type}" type mounts')
    if ro_auto:
        m.readonly = m.type not in ("cache", "tmpfs")
    if m.type == "secret":
        if m.from_:
            raise MountError("secret mount should not have a from")
        if m.sharing:
            raise MountError("secret mount should not define sharing")
        if not m.source and not m.target and not m.id:
            raise MountError("invalid secret mount. one of source, target required")
        if m.source and m.id:
            raise MountError("both source and id can't be set")
    if m.sharing and m.type != "cache":
        raise MountError(f"invalid cache sharing set for {m.type} mount")
    return m

"""Go's ``time.ParseDuration`` (HEALTHCHECK --interval=1m30s), to integer nanoseconds."""
from __future__ import annotations

__all__ = ["parse_duration", "format_duration"]

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX = (1 << 63) - 1


def parse_duration(text: str) -> int:
    """Nanoseconds for a Go duration string ("300ms", "-1.5h", "2h45m"); ValueError if bad."""
    orig = text
    if text in ("0", "+0", "-0"):
        return 0
    if not text:
        raise ValueError(f'time: invalid duration "{orig}"')
    neg = text[0] == "-"
    if text[0] in "+-":
        text = text[1:]
    if not text:
        raise ValueError(f'time: invalid duration "{orig}"')
    total = 0
    pos = 0
    n = len(text)
    while pos < n:
        if not (text[pos].isascii() and (text[pos].isdigit() or text[pos] == ".")):
            raise ValueError(f'time: invalid duration "{orig}"')
        start = pos
        while pos < n and text[pos].isascii() and text[pos].isdigit():
            pos += 1
        whole = text[start:pos]
        frac = ""
        if pos < n and text[pos] == ".":
            pos += 1
            fstart = pos
            while pos < n and text[pos].isascii() and text[pos].isdigit():
                pos += 1
            frac = text[fstart:pos]
        if not whole and not frac:
            raise ValueError(f'time: invalid duration "{orig}"')
        ustart = pos
        while pos < n and text[pos] != "." and not (text[pos].isascii() and text[pos].isdigit()):
            pos += 1
        unit = text[ustart:pos]
        if unit == "":
            raise ValueError(f'time: missing unit in duration "{orig}"')
        if unit not in _UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{orig}"')
        scale = _UNITS[unit]
        value = int(whole or "0") * scale
        if frac:
            value += int(frac) * scale // (10 ** len(frac))
        total += value
        if total > _MAX:
            raise ValueError(f'time: invalid duration "{orig}"')
    return -total if neg else total


def format_duration(ns: int) -> str:
    """A short human form, e.g. 90s -> "1m30s" (for messages)."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    parts = []
    for unit, size in (("h", _UNITS["h"]), ("m", _UNITS["m"])):
        if ns >= size:
            parts.append(f"{ns // size}{unit}")
            ns %= size
    if ns or not parts:
        seconds = ns / 1e9
        parts.append(f"{seconds:g}s")
    return sign + "".join(parts)

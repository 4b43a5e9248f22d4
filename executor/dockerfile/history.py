"""`created_by` texts as BuildKit's Dockerfile frontend writes them, so `docker history` reads the same.

BuildKit suffixes the entries of steps that produce a filesystem change (RUN, COPY, ADD) with ` # buildkit`,
prefixes RUN with the build args in scope (`|2 A=1 B=2`), and prints lists and maps the way Go's fmt does.
"""
from __future__ import annotations

import json
from typing import Iterable, Mapping

COMMENT = "buildkit.dockerfile.v0"
SUFFIX = " # buildkit"


def go_quoted_list(items: Iterable[str]) -> str:
    """Go's `%q` of a []string: `["a" "b"]`."""
    return "[" + " ".join(json.dumps(i, ensure_ascii=False) for i in items) + "]"


def go_list(items: Iterable[str]) -> str:
    """Go's `%v` of a []string: `[a b]`."""
    return "[" + " ".join(items) + "]"


def go_set(keys: Iterable[str]) -> str:
    """Go's `%v` of a map[string]struct{}: `map[80/tcp:{} 443/tcp:{}]` (keys sorted)."""
    return "map[" + " ".join(f"{k}:{{}}" for k in sorted(keys)) + "]"


def run(argv: list[str], args: Mapping[str, str] | list[tuple[str, str]]) -> str:
    pairs = list(args.items()) if isinstance(args, Mapping) else list(args)
    prefix = ""
    if pairs:
        prefix = f"|{len(pairs)} " + " ".join(f"{k}={v}" for k, v in pairs) + " "
    return "RUN " + prefix + " ".join(argv) + SUFFIX


def copy(kind: str, sources: list[str], dest: str, chown: str = "", chmod: str = "", parents: bool = False,
         heredoc_names: Iterable[str] = ()) -> str:
    parts = [kind]
    if parents:
        parts.append("--parents")
    if chown:
        parts.append("--chown=" + chown)
    if chmod:
        parts.append("--chmod=" + chmod)
    parts.extend(sources)
    parts.extend("<<" + n for n in heredoc_names)
    parts.append(dest)
    return " ".join(parts) + SUFFIX


def key_values(kind: str, pairs: Iterable[tuple[str, str]]) -> str:
    """ENV and LABEL: `ENV A=1 B=2`."""
    return kind + "".join(f" {k}={v}" for k, v in pairs)


def arg(pairs: Iterable[tuple[str, str | None]]) -> str:
    return "ARG " + " ".join(k if v is None else f"{k}={v}" for k, v in pairs)


def exec_form(kind: str, argv: list[str]) -> str:
    """CMD and ENTRYPOINT: `CMD ["sh" "-c" "x"]`."""
    return f"{kind} {go_quoted_list(argv)}"


def expose(ports: Iterable[str]) -> str:
    return "EXPOSE " + go_set(ports)


def volume(paths: list[str]) -> str:
    return "VOLUME " + go_list(paths)


def shell(argv: list[str]) -> str:
    return "SHELL " + go_list(argv)


def healthcheck(test: list[str], interval: int, timeout: int, start_period: int, start_interval: int,
                retries: int) -> str:
    """Go's `%q` of *HealthcheckConfig: `&{["CMD" "x"] "30s" "5s" "0s" "0s" '\\x03'}`."""
    durations = " ".join(json.dumps(_go_duration(d)) for d in (interval, timeout, start_period, start_interval))
    return f"HEALTHCHECK &{{{go_quoted_list(test)} {durations} '\\x{retries:02x}'}}"


def _go_duration(ns: int) -> str:
    """Go's time.Duration String() for whole-ish values: 0s, 1.5s, 30s, 1m30s, 2h0m0s, 250ms."""
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return _trim(ns / size) + unit
    total_s = ns / 1_000_000_000
    hours, rem = divmod(total_s, 3600)
    minutes, seconds = divmod(rem, 60)
    out = ""
    if hours:
        out += f"{int(hours)}h"
    if hours or minutes:
        out += f"{int(minutes)}m"
    return out + _trim(seconds) + "s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"

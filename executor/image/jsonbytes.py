"""The one JSON encoding kiln writes: compact, keys in the order given, UTF-8."""
from __future__ import annotations

import json


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def loads(data: bytes, what: str) -> dict:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{what} is JSON but not an object")
    return obj

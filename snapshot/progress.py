"""How the engine shows the filesystem engine's long operations live (extraction, snapshot walks) without
the engine depending on anything: whoever wants to know sets `listener`, a callable
`(kind, name, done, total)`; `tick` calls it at most every `INTERVAL` seconds per operation (and always
with `final=True`), so an operation pays one time check per call when nobody listens."""
from __future__ import annotations

import time
from typing import Callable

Listener = Callable[[str, str, int, "int | None"], None]

listener: Listener | None = None
INTERVAL = 0.1
_last: dict[tuple[str, str], float] = {}


def tick(kind: str, name: str, done: int, total: int | None = None, final: bool = False) -> None:
    """Report that operation `kind` on `name` has done `done` units (bytes, entries) of `total` (None:
    unknown)."""
    fn = listener
    if fn is None:
        return
    now = time.monotonic()
    key = (kind, name)
    if not final and now - _last.get(key, 0.0) < INTERVAL:
        return
    if final:
        _last.pop(key, None)
    else:
        _last[key] = now
    try:
        fn(kind, name, done, total)
    except Exception:       # a display problem never breaks a build
        pass

"""Cache keys: one sha256 chain per stage.

A stage starts from the digest of its base image (or the final key of the stage it continues, or
"scratch"), the platform and the build settings that change layer bytes (compression, level, epoch).
Every instruction then moves the chain: key = sha256(parent key, the instruction without its line
numbers, the ARGs and ENV it can see, USER/WORKDIR/SHELL, and what its files come from). For COPY and
ADD that is the names, modes, ownership and content of exactly the sources after .dockerignore, and for
`--from` the key of that stage or the digest of that image as well; for `RUN --mount=type=bind` the same
for the mounted source. mtimes are left out on purpose (a fresh checkout or WORKDIR/VOLUME must not
break keys). Metadata instructions move the chain too, so a changed ENV invalidates what follows.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from typing import Any, Callable, Iterable

from executor.commands.copying import select_sources

#: bump when the key material or the cache image format changes
KEY_VERSION = "kiln-cache-v1"


class Hasher:
    """sha256 over length-prefixed fields, so that ("ab", "c") and ("a", "bc") differ."""

    def __init__(self, *fields: Any) -> None:
        self._h = hashlib.sha256()
        for f in fields:
            self.add(f)

    def add(self, value: Any) -> "Hasher":
        data = value if isinstance(value, bytes) else (
            value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)).encode()
        self._h.update(len(data).to_bytes(8, "big"))
        self._h.update(data)
        return self

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def stage_key(base: str, platform: str, settings: dict[str, Any]) -> str:
    """The key a stage starts from: its base (image digest, parent stage key or "scratch")."""
    return Hasher(KEY_VERSION, "stage", base, platform, settings).hexdigest()


def instruction_text(inst: Any) -> dict[str, Any]:
    """The instruction's parsed fields, without its location (moving a line keeps the key)."""
    fields = {}
    for f in dataclasses.fields(inst):
        if f.name in ("location",):
            continue
        fields[f.name] = getattr(inst, f.name)
    return json.loads(json.dumps({"keyword": inst.keyword, **fields}, default=_plain, sort_keys=True))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.name != "location"}
    return str(value)


def step_key(parent: str, inst: Any, visible_env: dict[str, str], config: dict[str, Any],
             sources: Iterable[str] = ()) -> str:
    """The key of one instruction, given its parent's key and what it can see."""
    h = Hasher(KEY_VERSION, "step", parent, instruction_text(inst), sorted(visible_env.items()), config)
    for s in sources:
        h.add(s)
    return h.hexdigest()


def chain_after(key: str, layer_diff_id: str) -> str:
    """The key after a step whose inputs cannot be known beforehand (ADD of a URL): its result counts."""
    return Hasher(KEY_VERSION, "result", key, layer_diff_id).hexdigest()


class FileDigests:
    """Content digests of files, remembered per (device, inode, size, mtime, ctime) for one build."""

    def __init__(self) -> None:
        self._memo: dict[tuple[int, int, int, int, int], str] = {}

    def of(self, host: str, st: os.stat_result) -> str:
        k = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        got = self._memo.get(k)
        if got is None:
            h = hashlib.sha256()
            with open(host, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            got = self._memo[k] = h.hexdigest()
        return got


def sources_digest(source_root: str, sources: list[str], excluded: Callable[[str], bool] | None,
                   files: FileDigests) -> str:
    """Names, modes, owners and contents of what `sources` (as written, expanded, wildcards allowed)
    select below `source_root`, minus what `excluded` (.dockerignore, context-relative) hides: the copier's
    own selection (`select_sources`), so the key covers exactly what COPY reads. A source that selects
    nothing contributes its own name only (COPY then fails or copies nothing, and the step runs)."""
    h = Hasher(KEY_VERSION, "sources")
    root = os.path.abspath(source_root)
    for written in sources:
        h.add(written)
        for name, host in select_sources(root, written, excluded):
            rel = os.path.relpath(host, root)
            h.add(f"source {name}")
            _hash_tree(h, host, "" if rel == "." else rel, excluded, files)
    return h.hexdigest()


def _hash_tree(h: Hasher, host: str, rel: str, excluded: Callable[[str], bool] | None,
               files: FileDigests) -> None:
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        return
    visible = excluded is None or rel in ("", ".") or not excluded(rel)
    if visible:
        h.add(f"{rel}\0{stat.S_IFMT(st.st_mode):o}\0{stat.S_IMODE(st.st_mode):o}\0{st.st_uid}\0{st.st_gid}")
        if stat.S_ISREG(st.st_mode):
            h.add(files.of(host, st))
        elif stat.S_ISLNK(st.st_mode):
            h.add(os.readlink(host))
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            h.add(str(st.st_rdev))
    if stat.S_ISDIR(st.st_mode):
        try:
            names = sorted(os.listdir(host))
        except OSError:
            return
        for name in names:
            child = f"{rel}/{name}" if rel not in ("", ".") else name
            _hash_tree(h, os.path.join(host, name), child, excluded, files)

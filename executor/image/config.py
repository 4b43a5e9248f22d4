"""The image configuration (application/vnd.oci.image.config.v1+json, Docker's container config).

The parsed JSON is kept whole in `data`, so fields kiln does not know survive a read/write round trip;
`to_bytes()` returns the original bytes while nothing was changed.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from . import digest as _digest
from . import jsonbytes
from .platform import Platform


def timestamp(epoch: int | None = None) -> str:
    """An RFC 3339 UTC time for `created` fields: `epoch` exactly (--reproducible, SOURCE_DATE_EPOCH) or now,
    with microseconds as Go's time.Time marshals them."""
    moment = datetime.fromtimestamp(epoch if epoch is not None else time.time(), tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if epoch is not None else f".{moment.microsecond:06d}Z")


@dataclass(frozen=True)
class HistoryEntry:
    """One entry of the image config's `history` (image-spec config.md): the build loop adds one for each step
    that writes history, `empty_layer` when it wrote no layer."""
    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False

    def to_dict(self) -> dict:
        d: dict = {}
        if self.created:
            d["created"] = self.created
        if self.created_by:
            d["created_by"] = self.created_by
        if self.author:
            d["author"] = self.author
        if self.comment:
            d["comment"] = self.comment
        if self.empty_layer:
            d["empty_layer"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "HistoryEntry":
        return cls(d.get("created", "") or "", d.get("created_by", "") or "", d.get("author", "") or "",
                   d.get("comment", "") or "", bool(d.get("empty_layer", False)))


@dataclass(frozen=True)
class Healthcheck:
    """The config's `Healthcheck`, as docker stores HEALTHCHECK: the test command and its durations in nanoseconds
    (fields left at 0 are omitted)."""
    test: tuple[str, ...]
    interval: int = 0       # nanoseconds, as docker stores them
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    def to_dict(self) -> dict:
        d: dict = {"Test": list(self.test)}
        for key, value in (("Interval", self.interval), ("Timeout", self.timeout),
                           ("StartPeriod", self.start_period), ("StartInterval", self.start_interval),
                           ("Retries", self.retries)):
            if value:
                d[key] = value
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Healthcheck":
        return cls(tuple(d.get("Test") or ()), int(d.get("Interval") or 0), int(d.get("Timeout") or 0),
                   int(d.get("StartPeriod") or 0), int(d.get("StartInterval") or 0), int(d.get("Retries") or 0))


def _list_prop(key: str):
    def get(self) -> list[str] | None:
        v = self.container_config.get(key)
        return list(v) if v is not None else None

    def set_(self, value: list[str] | None) -> None:
        self._set(key, list(value) if value is not None else None)

    return property(get, set_, doc=f"config.{key} (None when absent)")


def _str_prop(key: str):
    def get(self) -> str:
        return self.container_config.get(key) or ""

    def set_(self, value: str) -> None:
        self._set(key, value or None)

    return property(get, set_, doc=f"config.{key} ('' when absent)")


def _set_prop(key: str):
    """Docker stores ExposedPorts and Volumes as {"name": {}} maps; exposed here as sorted lists."""
    def get(self) -> list[str]:
        return list((self.container_config.get(key) or {}).keys())

    def set_(self, value: list[str]) -> None:
        self._set(key, {v: {} for v in value} if value else None)

    return property(get, set_, doc=f"config.{key} keys")


class ImageConfig:
    def __init__(self, data: dict | None = None, raw: bytes | None = None):
        self.data: dict = data if data is not None else {}
        self._raw = raw
        self._raw_data = copy.deepcopy(self.data) if raw is not None else None

    # ---- reading and writing -------------------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: bytes, where: str = "image config") -> "ImageConfig":
        return cls(jsonbytes.loads(data, where), raw=bytes(data))

    @classmethod
    def new(cls, platform: Platform, created: str = "1970-01-01T00:00:00Z") -> "ImageConfig":
        """An empty image's config (like `scratch`) for a platform."""
        d: dict = {"architecture": platform.architecture, "os": platform.os}
        if platform.variant:
            d["variant"] = platform.variant
        d["created"] = created
        d["config"] = {}
        d["rootfs"] = {"type": "layers", "diff_ids": []}
        d["history"] = []
        return cls(d)

    def to_bytes(self) -> bytes:
        if self._raw is not None and self.data == self._raw_data:
            return self._raw
        return jsonbytes.dumps(self.data)

    @property
    def digest(self) -> str:
        return _digest.of_bytes(self.to_bytes())

    def copy(self) -> "ImageConfig":
        clone = ImageConfig(copy.deepcopy(self.data))
        clone._raw, clone._raw_data = self._raw, self._raw_data
        return clone

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImageConfig) and self.data == other.data

    def __repr__(self) -> str:
        return f"ImageConfig({json.dumps(self.data)[:200]})"

    # ---- the container config ("config") -------------------------------------------------------
    @property
    def container_config(self) -> dict:
        c = self.data.get("config")
        return c if isinstance(c, dict) else {}

    def _set(self, key: str, value: Any) -> None:
        c = self.data.get("config")
        if not isinstance(c, dict):
            c = self.data["config"] = {}
        if value is None:
            c.pop(key, None)
        else:
            c[key] = value

    env = _list_prop("Env")
    cmd = _list_prop("Cmd")
    entrypoint = _list_prop("Entrypoint")
    on_build = _list_prop("OnBuild")
    shell = _list_prop("Shell")
    working_dir = _str_prop("WorkingDir")
    user = _str_prop("User")
    stop_signal = _str_prop("StopSignal")
    exposed_ports = _set_prop("ExposedPorts")
    volumes = _set_prop("Volumes")

    @property
    def args_escaped(self) -> bool:
        return bool(self.container_config.get("ArgsEscaped", False))

    @args_escaped.setter
    def args_escaped(self, value: bool) -> None:
        self._set("ArgsEscaped", True if value else None)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.container_config.get("Labels") or {})

    @labels.setter
    def labels(self, value: dict[str, str]) -> None:
        self._set("Labels", dict(value) if value else None)

    @property
    def healthcheck(self) -> Healthcheck | None:
        h = self.container_config.get("Healthcheck")
        return Healthcheck.from_dict(h) if h else None

    @healthcheck.setter
    def healthcheck(self, value: Healthcheck | None) -> None:
        self._set("Healthcheck", value.to_dict() if value else None)

    def env_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.env or []:
            k, _, v = item.partition("=")
            out[k] = v
        return out

    def set_env(self, key: str, value: str) -> None:
        """Set one variable, keeping its position if it exists (as docker does)."""
        env = self.env or []
        for i, item in enumerate(env):
            if item.partition("=")[0] == key:
                env[i] = f"{key}={value}"
                break
        else:
            env.append(f"{key}={value}")
        self.env = env

    # ---- top level ---------------------------------------------------------------------------
    @property
    def platform(self) -> Platform:
        return Platform(self.data.get("os", ""), self.data.get("architecture", ""), self.data.get("variant", "") or "",
                        self.data.get("os.version", "") or "")

    @property
    def created(self) -> str:
        return self.data.get("created", "") or ""

    @created.setter
    def created(self, value: str) -> None:
        self.data["created"] = value

    @property
    def author(self) -> str:
        return self.data.get("author", "") or ""

    @author.setter
    def author(self, value: str) -> None:
        if value:
            self.data["author"] = value
        else:
            self.data.pop("author", None)

    @property
    def diff_ids(self) -> list[str]:
        return list((self.data.get("rootfs") or {}).get("diff_ids") or [])

    @diff_ids.setter
    def diff_ids(self, value: list[str]) -> None:
        rootfs = self.data.setdefault("rootfs", {})
        rootfs["type"] = "layers"
        rootfs["diff_ids"] = list(value)

    @property
    def history(self) -> list[HistoryEntry]:
        return [HistoryEntry.from_dict(h) for h in self.data.get("history") or []]

    @history.setter
    def history(self, value: list[HistoryEntry]) -> None:
        self.data["history"] = [h.to_dict() for h in value]

    def append_history(self, entry: HistoryEntry) -> None:
        self.data.setdefault("history", []).append(entry.to_dict())

    def append_layer(self, diff_id: str, history: HistoryEntry | None = None) -> None:
        _digest.validate(diff_id, "diff_id")
        self.diff_ids = self.diff_ids + [diff_id]
        if history is not None:
            self.append_history(history)

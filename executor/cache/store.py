"""Where cached layers live: one tiny image per step, `<cache-repo>:<key>`, as kaniko does.

The image has zero or one layer (a step that changed nothing is cached too) and a config whose single
history entry holds the step's `created_by`; `created` is the real time of storing, for `--cache-ttl`.
`RegistryStore` keeps them in any registry (uploads in a background thread while the build goes on);
`LayoutStore` in an OCI image layout (`--cache-repo=oci:PATH`), one index entry per key.

A lookup that finds nothing is a miss; one that finds an expired, unreadable or corrupt entry is a
warning and a miss, so the step runs. A hit has its layer blob on local disk, verified.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Protocol

from executor.image import Descriptor, HistoryEntry, Image, ImageConfig, Layer, Manifest, Platform, timestamp
from executor.image import digest as _digest
from executor.image import mediatypes as mt
from executor.registry import NotFoundError, Reference, RegistryClient, RegistryError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheEntry:
    """A layer-cache entry found under a step's key: the step's layer (verified blob on local disk) and history
    text, from the cache repository or layout."""
    key: str
    created_by: str
    layer: Layer | None          # None: the step changed no file
    blob_path: str | None        # the verified compressed blob on local disk


class Store(Protocol):
    name: str

    def lookup(self, key: str) -> CacheEntry | None: ...
    def store(self, key: str, layer: Layer | None, created_by: str) -> None: ...
    def finish(self, cancel: bool = False) -> None: ...
    def source_of(self, layer: Layer) -> Layer: ...


def _age_seconds(created: str) -> float | None:
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)", created or "")
    if not m:
        return None
    moment = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return time.time() - moment.timestamp()


def cache_image(layer: Layer | None, created_by: str, platform: Platform) -> Image:
    fmt = mt.DOCKER if layer is not None and layer.media_type.startswith("application/vnd.docker.") else mt.OCI
    image = Image.empty(platform, fmt=fmt, created=timestamp())
    entry = HistoryEntry(created=timestamp(), created_by=created_by, comment="kiln cache",
                         empty_layer=layer is None)
    if layer is not None:
        image.append_layer(layer, entry)
    else:
        image.append_history(entry)
    return image


def _read_entry(key: str, image: Image, ttl: float, where: str) -> tuple[str, Layer | None] | None:
    """(created_by, layer) of a cache image, or None (with a warning) when it is expired or malformed."""
    age = _age_seconds(image.config.created)
    if age is None:
        log.warning("cache entry %s in %s has no creation time; ignoring it", key, where)
        return None
    if age > ttl:
        log.warning("cache entry %s in %s expired (%.0fh old, --cache-ttl %.0fh); running the step",
                    key, where, age / 3600, ttl / 3600)
        return None
    history = image.config.history
    if len(history) != 1 or len(image.layers) > 1 or (not image.layers) != bool(history[0].empty_layer):
        log.warning("cache entry %s in %s is not a kiln cache image; ignoring it", key, where)
        return None
    return history[0].created_by, (image.layers[0] if image.layers else None)


class RegistryStore:
    """Cache images in a registry repository. Stores go up in a background thread."""

    def __init__(self, client: RegistryClient, repo: str, ttl: float, platform: Platform, push: bool = True):
        self.client = client
        self.repo = Reference.parse(repo.rstrip("/") + ":latest")
        self.name = f"{self.repo.registry}/{self.repo.repository}"
        self.ttl = ttl
        self.platform = platform
        self.push = push
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kiln-cache-push")
        self._pending: list[Future] = []
        self._lock = threading.Lock()
        self._unreachable = False

    def _ref(self, key: str) -> Reference:
        return Reference(self.repo.registry, self.repo.repository, key, None)

    def lookup(self, key: str) -> CacheEntry | None:
        ref = self._ref(key)
        if self._unreachable:
            return None
        try:
            image = self.client.pull(ref)
        except NotFoundError:
            log.info("cache miss: %s", ref)
            return None
        except RegistryError as e:
            if e.status == 404:
                log.info("cache miss: %s", ref)
            elif e.status is None:
                # no answer at all (after the client's retries): asking again per step only costs time
                self._unreachable = True
                log.warning("cache repository %s is unreachable (%s); no more lookups in this build",
                            self.name, e)
            else:
                log.warning("cache lookup of %s failed (%s); running the step", ref, e)
            return None
        except Exception as e:  # a malformed cache image is not fatal
            log.warning("cache entry %s is unreadable (%s); running the step", ref, e)
            return None
        read = _read_entry(key, image, self.ttl, self.name)
        if read is None:
            return None
        created_by, layer = read
        path = None
        if layer is not None:
            try:
                with layer.open_blob() as f:          # downloads and verifies digest, size, diff_id
                    path = getattr(f, "name", None)
            except Exception as e:
                log.warning("cache layer %s of %s is unusable (%s); running the step", layer.digest, ref, e)
                return None
            if not path:
                log.warning("cache layer %s of %s has no local file; running the step", layer.digest, ref)
                return None
        log.info("cache hit: %s", ref)
        return CacheEntry(key, created_by, layer, path)

    def store(self, key: str, layer: Layer | None, created_by: str) -> None:
        if not self.push:
            return
        image = cache_image(layer, created_by, self.platform)
        ref = self._ref(key)

        def upload() -> None:
            try:
                self.client.push(image, [ref])
                log.info("pushed cache layer %s", ref)
            except Exception as e:
                log.warning("pushing cache layer %s failed: %s", ref, e)

        self._pending.append(self._pool.submit(upload))

    def finish(self, cancel: bool = False) -> None:
        """Wait for the background uploads (their failures were warnings); `cancel` drops queued ones."""
        if cancel:
            dropped = sum(f.cancel() for f in self._pending)
            if dropped:
                log.info("build cancelled: %d cache uploads dropped", dropped)
        for f in self._pending:
            if not f.cancelled():
                f.result()
        self._pending.clear()
        self._pool.shutdown(wait=True)

    def source_of(self, layer: Layer) -> Layer:
        """The layer, marked as held by the cache repository (the final push mounts it from there)."""
        return replace(layer, source=self.name)


class LayoutStore:
    """Cache images in an OCI image layout (`oci:PATH`), tagged by key in index.json."""

    def __init__(self, path: str, ttl: float, platform: Platform, push: bool = True):
        self.path = path
        self.name = f"oci:{path}"
        self.ttl = ttl
        self.platform = platform
        self.push = push
        self._lock = threading.Lock()

    def _blob(self, digest: str) -> str:
        return os.path.join(self.path, "blobs", _digest.algorithm_of(digest), _digest.hex_of(digest))

    def _index(self) -> dict:
        try:
            with open(os.path.join(self.path, "index.json"), "rb") as f:
                return json.load(f)
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}

    def lookup(self, key: str) -> CacheEntry | None:
        try:
            entries = [m for m in self._index().get("manifests", [])
                       if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == key]
        except ValueError as e:
            log.warning("cache layout %s: index.json is unreadable (%s)", self.path, e)
            return None
        if not entries:
            log.info("cache miss: %s:%s", self.name, key)
            return None
        try:
            desc = Descriptor.from_dict(entries[-1])
            manifest = Manifest.from_bytes(self._read_verified(desc.digest), desc.media_type)
            config = ImageConfig.from_bytes(self._read_verified(manifest.config.digest))
            layers = []
            for d, diff_id in zip(manifest.layers, config.diff_ids):
                path = self._blob(d.digest)
                got, size = _digest.of_file(path)
                if got != d.digest or size != d.size:
                    raise ValueError(f"layer blob {d.digest} hashes to {got} ({size} bytes)")
                layers.append(Layer.from_file(path, d.media_type, diff_id, d.digest, d.size))
            image = Image.from_parts(manifest, config, layers)
        except (OSError, ValueError) as e:
            log.warning("cache entry %s in %s is unusable (%s); running the step", key, self.name, e)
            return None
        read = _read_entry(key, image, self.ttl, self.name)
        if read is None:
            return None
        created_by, layer = read
        log.info("cache hit: %s:%s", self.name, key)
        return CacheEntry(key, created_by, layer, layer.path if layer is not None else None)

    def _read_verified(self, digest: str) -> bytes:
        return _digest.read_verified(self._blob(digest), digest)   # DigestMismatch is a ValueError

    def _write_blob(self, digest: str, opener) -> None:
        dest = self._blob(digest)
        if os.path.exists(dest):
            return
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=os.path.dirname(dest))
        with os.fdopen(fd, "wb") as out, opener() as src:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(tmp, dest)

    def store(self, key: str, layer: Layer | None, created_by: str) -> None:
        if not self.push:
            return
        image = cache_image(layer, created_by, self.platform)
        with self._lock:
            os.makedirs(self.path, exist_ok=True)
            layout = os.path.join(self.path, "oci-layout")
            if not os.path.exists(layout):
                with open(layout, "w") as f:
                    json.dump({"imageLayoutVersion": "1.0.0"}, f)
            for l in image.layers:
                self._write_blob(l.digest, l.open_blob)
            config = image.config_bytes()
            self._write_blob(image.config_descriptor().digest, lambda: _BytesReader(config))
            data = image.manifest_bytes()
            desc = image.descriptor()
            self._write_blob(desc.digest, lambda: _BytesReader(data))
            index = self._index()
            entry = desc.to_dict()
            entry["annotations"] = {"org.opencontainers.image.ref.name": key}
            index["manifests"] = [m for m in index.get("manifests", [])
                                  if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != key]
            index["manifests"].append(entry)
            tmp = os.path.join(self.path, ".index.json.tmp")
            with open(tmp, "w") as f:
                json.dump(index, f)
            os.replace(tmp, os.path.join(self.path, "index.json"))
        log.info("stored cache layer %s:%s", self.name, key)

    def finish(self, cancel: bool = False) -> None:
        pass

    def source_of(self, layer: Layer) -> Layer:
        return layer


class _BytesReader:
    def __init__(self, data: bytes):
        import io
        self._io = io.BytesIO(data)

    def __enter__(self):
        return self._io

    def __exit__(self, *exc) -> None:
        self._io.close()

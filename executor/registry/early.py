"""Blobs sent to the destinations while the build goes on (issue 17: push while building).

The build loop hands over each layer of the result as soon as it is written (and the base's layers as the
result's stage starts); each goes to every destination repository in the background: HEAD, a cross-repository
mount, or an upload, the very `ensure_blob` of the final push. The final push then skips the blobs confirmed
here and does the rest itself, so a failed early upload costs nothing but the try: the push sends that blob
again, with its retries, and reports its error. Nothing is tagged early: only blobs move before the build ends,
and the manifests follow once every blob is confirmed, as before.

A blob offered for a stage that turns out not to be in the result (a layer later removed... never, in a
Dockerfile build: layers are only appended) would only cost an unreferenced blob; kiln offers the final stage's
layers only. Threads are daemon threads bounded by --push-jobs-like `jobs`; a cancelled build stops waiting at
once (their late arrivals are logged at debug, as `executor.registry.parallel` explains).
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from typing import BinaryIO, Callable

from executor.image import Descriptor

from . import push as _push
from .parallel import _worker
from .reference import Reference

log = logging.getLogger(__name__)


class EarlyUploads:
    def __init__(self, transport_for: Callable[[str], object], destinations: list[Reference], chunk_size: int | None,
                 jobs: int) -> None:
        self._transport_for = transport_for
        self._repos: list[tuple[str, str]] = []
        for ref in destinations:
            if (ref.registry, ref.repository) not in self._repos:
                self._repos.append((ref.registry, ref.repository))
        self._chunk_size = chunk_size
        self._jobs = max(1, jobs)
        self._queue: deque[tuple[str, str, _push.Blob]] = deque()
        self._offered: set[tuple[str, str, str]] = set()
        self.confirmed: dict[tuple[str, str], dict[str, str]] = {repo: {} for repo in self._repos}
        self.stats = _push.PushStats()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._running = 0
        self._stop = threading.Event()

    def offer(self, descriptor: Descriptor, opener: Callable[[], BinaryIO], source: str | None = None) -> None:
        """Send this blob to every destination repository, in the background."""
        blob = _push.Blob(descriptor, opener, source)
        with self._lock:
            if self._stop.is_set():
                return
            for registry, repo in self._repos:
                key = (registry, repo, descriptor.digest)
                if key in self._offered:
                    continue
                self._offered.add(key)
                self._queue.append((registry, repo, blob))
            while self._queue and self._running < self._jobs:
                self._running += 1
                threading.Thread(target=self._work, name="kiln-early-push", daemon=True).start()

    def _work(self) -> None:
        _worker.stop = self._stop
        while True:
            with self._lock:
                if self._stop.is_set() or not self._queue:
                    self._running -= 1
                    self._idle.notify_all()
                    return
                registry, repo, blob = self._queue.popleft()
            try:
                how = _push.ensure_blob(self._transport_for(registry), repo, blob, self._chunk_size, self.stats)
            except Exception as e:  # noqa: BLE001 - the final push sends it again and reports its own error
                log.debug("early upload of %s to %s/%s failed (%s); the push sends it again",
                          blob.descriptor.digest, registry, repo, e)
                continue
            with self._lock:
                self.confirmed[(registry, repo)][blob.descriptor.digest] = how

    def finish(self, cancel: bool = False) -> dict[tuple[str, str], dict[str, str]]:
        """Wait for the uploads under way (`cancel`: drop the queued ones, wait for none); the digests each
        repository confirmed, and how ("existed", "mounted", "uploaded")."""
        with self._lock:
            if cancel:
                self._stop.set()
                self._queue.clear()
                return self.confirmed
            while self._running:
                self._idle.wait()
        if self.stats.uploaded or self.stats.mounted:
            log.info("while building: %d blobs uploaded, %d mounted, %d already there", self.stats.uploaded,
                     self.stats.mounted, self.stats.existed)
        return self.confirmed

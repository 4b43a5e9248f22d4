"""Pulling: manifests by tag or digest, blobs streamed to disk and verified before anyone uses them."""
from __future__ import annotations

import io
import logging
import os
import queue
import tempfile
import threading
from typing import BinaryIO

import urllib3

from executor import progress
from executor.image import Descriptor, LayerError, verify_blob
from executor.image import digest as _digest
from executor.image import mediatypes as mt

from .errors import RegistryError
from .reference import Reference
from .transport import Transport, repository_scope

log = logging.getLogger(__name__)

_MAX_MANIFEST = 4 << 20   # distribution's own limit for manifests
_MAX_CONFIG = 64 << 20


def get_manifest(t: Transport, ref: Reference) -> tuple[bytes, str, str]:
    """(bytes, media type, digest) of the manifest or index `ref` names; by digest it is verified."""
    repo = ref.repository
    resp = t.request("GET", f"/v2/{repo}/manifests/{ref.identifier}", phase="manifest GET", repository=repo,
                     scopes=[repository_scope(repo, "pull")], expect=[200],
                     headers={"Accept": ", ".join(mt.ACCEPT_MANIFEST)})
    data = resp.content
    if len(data) > _MAX_MANIFEST:
        raise RegistryError(t.registry, repo, "manifest GET", f"manifest {ref.identifier} is {len(data)} bytes, "
                            f"more than the {_MAX_MANIFEST} allowed")
    media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
    digest = _digest.of_bytes(data)
    if ref.digest and ref.digest != digest:
        raise RegistryError(t.registry, repo, "manifest GET",
                            f"manifest {ref.digest} has content that hashes to {digest}", resp.status_code)
    header = resp.headers.get("Docker-Content-Digest")
    if header and header.startswith("sha256:") and header != digest:
        raise RegistryError(t.registry, repo, "manifest GET",
                            f"manifest {ref.identifier}: Docker-Content-Digest {header} but content hashes to {digest}")
    return data, media_type, digest


def get_blob_bytes(t: Transport, repo: str, desc: Descriptor, limit: int = _MAX_CONFIG) -> bytes:
    """A small blob (the config) in memory, checked against its descriptor's size and digest."""
    if desc.size > limit:
        raise RegistryError(t.registry, repo, "blob GET", f"blob {desc.digest} is {desc.size} bytes, over {limit}")
    retries = max(0, t.options.transport_retries)
    for attempt in range(retries + 1):
        resp = t.request("GET", f"/v2/{repo}/blobs/{desc.digest}", phase="blob GET", repository=repo,
                         scopes=[repository_scope(repo, "pull")], expect=[200], stream=True)
        try:
            data = resp.raw.read(desc.size + 1, decode_content=False) if resp.raw else resp.content
            break
        except (OSError, urllib3.exceptions.HTTPError) as e:   # reset or timeout mid-body
            if attempt >= retries:
                raise RegistryError(t.registry, repo, "blob GET", f"blob {desc.digest}: download broke off, "
                                    f"{attempt + 1} times: {e}") from None
            t._sleep(attempt, None, "blob GET", f"blob {desc.digest} broke off ({e})")
        finally:
            resp.close()
    if len(data) != desc.size:
        raise RegistryError(t.registry, repo, "blob GET",
                            f"blob {desc.digest} is {len(data) if len(data) <= desc.size else 'more than ' + str(desc.size)}"
                            f" bytes, the manifest says {desc.size}", resp.status_code)
    got = _digest.of_bytes(data)
    if got != desc.digest:
        raise RegistryError(t.registry, repo, "blob GET", f"blob {desc.digest} has content that hashes to {got}",
                            resp.status_code)
    return data


def download_layer(t: Transport, repo: str, desc: Descriptor, diff_id: str | None, dest: str) -> None:
    """Stream a layer blob to `dest`, verifying digest, size, compression and diff_id on the way.

    The file appears under `dest` only when every check passed; a mismatch raises RegistryError naming
    the blob. A body that breaks off mid-layer (connection reset, read timeout) restarts the layer from
    its first byte, up to the transport's retry budget.
    """
    os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
    retries = max(0, t.options.transport_retries)
    for attempt in range(retries + 1):
        try:
            _download_once(t, repo, desc, diff_id, dest)
            return
        except _BrokenOff as e:
            if attempt >= retries:
                raise RegistryError(t.registry, repo, "blob GET",
                                    f"blob {desc.digest}: download broke off after {e.count} of {desc.size} "
                                    f"bytes, {attempt + 1} times: {e.cause}") from None
            t._sleep(attempt, None, "blob GET", f"blob {desc.digest} broke off after {e.count} bytes ({e.cause})")


class _BrokenOff(Exception):
    def __init__(self, count: int, cause: Exception, status: int):
        self.count, self.cause, self.status = count, cause, status


def _download_once(t: Transport, repo: str, desc: Descriptor, diff_id: str | None, dest: str) -> None:
    resp = t.request("GET", f"/v2/{repo}/blobs/{desc.digest}", phase="blob GET", repository=repo,
                     scopes=[repository_scope(repo, "pull")], expect=[200], stream=True)
    fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=os.path.dirname(dest) or ".")
    try:
        with os.fdopen(fd, "wb") as out, progress.Task("pull", desc.digest, desc.size) as task:
            tee = _Tee(resp.raw, out, desc.size, task)
            try:
                verify_blob(tee, desc, diff_id)
            except Exception as e:
                if tee.error is not None:   # the connection failed (reset, timeout), not the blob; urllib3's
                    raise _BrokenOff(tee.count, tee.error, resp.status_code) from None  # errors are no OSError
                if isinstance(e, LayerError):
                    raise RegistryError(t.registry, repo, "blob GET", str(e), resp.status_code) from None
                raise
        os.replace(tmp, dest)
        tmp = ""
    finally:
        resp.close()
        if tmp:
            os.unlink(tmp)


class _Tee:
    """Reads the HTTP body, copying every byte to a file; stops reading a little past the declared size."""

    def __init__(self, raw, out: BinaryIO, size: int, task: progress.Task | None = None):
        self.raw = raw
        self.task = task
        self.out = out
        self.count = 0
        self.limit = size + 1  # one byte more is enough to notice an oversized blob
        self.error: Exception | None = None  # what broke the connection, when it broke

    def read(self, n: int = -1) -> bytes:
        left = self.limit - self.count
        if left <= 0:
            return b""
        n = left if n is None or n < 0 else min(n, left)
        try:
            data = self.raw.read(n, decode_content=False)
        except (OSError, urllib3.exceptions.HTTPError) as e:   # reset, timeout, incomplete read
            self.error = e
            raise
        self.count += len(data)
        self.out.write(data)
        if self.task is not None:
            self.task.update(self.count)
        return data


# ---- streaming downloads: extraction follows the bytes as they arrive --------------------------------
_CHUNK = 1 << 20   # bytes per read from the socket; see docs/performance.md for the measurement


class BlobDownload:
    """One layer blob downloading into `dest` in a background thread while a reader follows it.

    The bytes go to a hidden `.partial-` file next to `dest`, are hashed (the compressed digest) as they
    arrive, and `open()` hands out a reader that blocks until the next bytes are there: an extraction can
    start with the first megabyte. The blob appears under `dest` only once its size and digest were
    confirmed. A body that breaks off (reset, read timeout) is resumed from the byte it reached, with a
    Range request (or, when the registry answers 200 to it, by skipping what was already read), up to the
    transport's retry budget. The verdict (`result()`) is a RegistryError naming the blob and the image.
    `finish()` then checks what only the reader saw: the compression against the media type, the
    diff_id against the config.
    """

    def __init__(self, t: Transport, repo: str, desc: Descriptor, diff_id: str | None, dest: str, image: str):
        self.t, self.repo, self.desc, self.diff_id, self.dest, self.image = t, repo, desc, diff_id, dest, image
        self.received = 0
        self._cond = threading.Condition()
        self._done = False
        self._error: RegistryError | None = None
        self._cancelled = False
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=".partial-", dir=os.path.dirname(dest) or ".")
        self._fd: int | None = fd
        self._read_fd: int | None = os.open(self._tmp, os.O_RDONLY | os.O_CLOEXEC)  # valid after rename

    @property
    def name(self) -> str:
        return f"layer blob {self.desc.digest} of image {self.image}"

    # ---- the downloading thread ------------------------------------------------------------------
    def run(self) -> None:
        """Download, verify and move the blob into place; the verdict goes to `result()`."""
        error: RegistryError | None = None
        try:
            self._download()
            os.replace(self._tmp, self.dest)
            self._tmp = ""
        except RegistryError as e:
            error = self._naming(e)
        except Exception as e:  # noqa: BLE001 - a full disk, say: the reader is told
            error = RegistryError(self.t.registry, self.repo, "blob GET", f"{self.name}: {e}")
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._tmp:
                _unlink(self._tmp)
            with self._cond:
                self._error = error
                self._done = True
                self._cond.notify_all()

    def _naming(self, e: RegistryError) -> RegistryError:
        """`e` with this blob and its image named after the request's `PHASE REGISTRY/REPO: ` (a 404 of
        the blob, say, names the layer but not which image wanted it)."""
        text = str(e)
        if self.name in text:
            return e
        where = f"{e.registry}/{e.repository}" if e.repository else e.registry
        prefix = f"{e.phase} {where}: "
        rest = text[len(prefix):] if text.startswith(prefix) else text
        return e.with_message(f"{prefix}{self.name}: {rest}")

    def refuse(self, problem: str) -> RegistryError:
        """The reader found the bytes unusable (they are what the manifest names, but no layer: a gzip
        stream cut short, a tar that breaks off): the error naming the blob and the image, which this
        download's later users get too; the blob is not kept."""
        error = RegistryError(self.t.registry, self.repo, "blob GET", f"{self.name}: {problem}")
        with self._cond:
            if self._done and self._error is None:
                self._error = error
                _unlink(self.dest)
        return error

    def cancel(self) -> None:
        """Stop at the next chunk (the reader gave up); the verdict is then an error."""
        self._cancelled = True

    def _download(self) -> None:
        t, desc = self.t, self.desc
        retries = max(0, t.options.transport_retries)
        hasher = _BackgroundHash(_digest.hasher(desc.digest))
        with progress.Task("pull", desc.digest, desc.size) as task, hasher:
            attempt = 0
            while True:
                try:
                    self._receive(hasher, task)
                    break
                except _BrokenOff as e:
                    if attempt >= retries:
                        raise RegistryError(t.registry, self.repo, "blob GET",
                                            f"blob {desc.digest}: download broke off after {e.count} of {desc.size} "
                                            f"bytes, {attempt + 1} times: {e.cause}") from None
                    t._sleep(attempt, None, "blob GET", f"blob {desc.digest} broke off after {e.count} bytes "
                             f"({e.cause}); resuming")
                    attempt += 1
        if self.received != desc.size:
            size = self.received if self.received <= desc.size else f"more than {desc.size}"
            raise RegistryError(t.registry, self.repo, "blob GET",
                                f"{self.name} is {size} bytes, the manifest says {desc.size}")
        got = f"{_digest.algorithm_of(desc.digest)}:{hasher.hexdigest()}"
        if got != desc.digest:
            raise RegistryError(t.registry, self.repo, "blob GET", f"{self.name}: content hashes to {got}")

    def _receive(self, hasher, task: progress.Task) -> None:
        """From byte `received` to the end of the body (one byte past the declared size at most)."""
        t, desc, repo = self.t, self.desc, self.repo
        offset = self.received
        headers = {"Range": f"bytes={offset}-"} if offset else None
        resp = t.request("GET", f"/v2/{repo}/blobs/{desc.digest}", phase="blob GET", repository=repo,
                         scopes=[repository_scope(repo, "pull")], expect=[200, 206], stream=True, headers=headers)
        try:
            skip = 0
            if offset and not (resp.status_code == 206 and
                               resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-")):
                skip = offset   # the whole body again: what was read already is dropped
            raw = resp.raw
            fd = self._fd
            assert fd is not None
            limit = desc.size + 1          # one byte more is enough to notice an oversized blob
            while self.received < limit:
                if self._cancelled:
                    raise RegistryError(t.registry, repo, "blob GET", f"{self.name}: download cancelled")
                want = _CHUNK if skip == 0 else min(_CHUNK, skip)
                try:
                    # read1: what the socket has (up to a chunk), so a reader follows closely and a break
                    # loses no byte already received
                    data = raw.read1(min(want, limit - self.received + skip), decode_content=False)
                except (OSError, urllib3.exceptions.HTTPError) as e:   # reset, timeout, incomplete read
                    raise _BrokenOff(self.received, e, resp.status_code) from None
                if not data:
                    break
                if skip:
                    skip -= len(data)
                    continue
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                hasher.update(data)
                with self._cond:
                    self.received += len(data)
                    self._cond.notify_all()
                task.update(self.received)
        finally:
            resp.close()

    # ---- the reader's side -------------------------------------------------------------------------
    def open(self) -> "_Follower":
        """The blob's bytes as they arrive (one reader per download)."""
        fd, self._read_fd = self._read_fd, None
        if fd is None:     # a second extraction of the same blob (a layer twice in one image): the file
            return open(self.result(), "rb", buffering=0)  # type: ignore[return-value]
        return _Follower(self, fd)

    def _wait(self, pos: int, timeout: float) -> tuple[int, bool]:
        with self._cond:
            if self.received <= pos and not self._done:
                self._cond.wait(timeout)
            return self.received, self._done

    def result(self) -> str:
        """Wait for the download to end: the blob's path, or the RegistryError that ended it."""
        with self._cond:
            while not self._done:
                self._cond.wait(0.2)
            if self._error is not None:
                raise self._error
        return self.dest

    @property
    def failed(self) -> bool:
        with self._cond:
            return self._done and self._error is not None

    def finish(self, compression: str, diff_id: str | None) -> str:
        """The download's verdict, then what the reader saw checked against the manifest and config: the
        compression its bytes had and the sha256 of the tar they held. Returns the blob's path."""
        path = self.result()
        declared = mt.layer_compression(self.desc.media_type)
        problem = ""
        if compression != declared:
            problem = f"media type {self.desc.media_type} says {declared} but the bytes are {compression}"
        elif self.diff_id is not None and diff_id is not None and diff_id != self.diff_id:
            problem = f"uncompressed content hashes to {diff_id}, the config's diff_id is {self.diff_id}"
        if problem:
            _unlink(path)   # never kept for another use
            error = RegistryError(self.t.registry, self.repo, "blob GET", f"{self.name}: {problem}")
            with self._cond:
                self._error = error     # a later use of this download fails alike (or downloads anew)
            raise error
        return path


class _BackgroundHash:
    """A hashlib object fed from another thread: the socket reads and the file writes of a download go on
    while the previous chunks are hashed (hashlib releases the GIL over large buffers, so on two cores the
    sha256 no longer adds to the receiving loop; measured in bench/pipeline.py). At most `depth` chunks
    wait."""

    def __init__(self, inner, depth: int = 8) -> None:
        self._inner = inner
        self._queue: queue.Queue[bytes | None] = queue.Queue(depth)
        self._thread = threading.Thread(target=self._run, name="kiln-pull-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            self._inner.update(data)

    def update(self, data: bytes) -> None:
        self._queue.put(data)

    def hexdigest(self) -> str:
        self.close()
        return self._inner.hexdigest()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def __enter__(self) -> "_BackgroundHash":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Follower(io.RawIOBase):
    """Reads a download's file as it grows; at its end, EOF when the download succeeded, else its error."""

    def __init__(self, download: BlobDownload, fd: int):
        super().__init__()
        self._dl = download
        self._fd = fd
        self._pos = 0
        self.size = download.desc.size

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def readinto(self, b) -> int:  # type: ignore[override]
        while True:
            received, done = self._dl._wait(self._pos, 0.2)
            if received > self._pos:
                n = os.preadv(self._fd, [memoryview(b)[:received - self._pos]], self._pos)
                self._pos += n
                return n
            if done:
                self._dl.result()   # raises when the download failed
                return 0

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

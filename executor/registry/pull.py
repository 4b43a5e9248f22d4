"""Pulling: manifests by tag or digest, blobs streamed to disk and verified before anyone uses them."""
from __future__ import annotations

import logging
import os
import tempfile
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

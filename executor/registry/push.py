"""Pushing: blobs first (HEAD to skip, cross-repository mount, monolithic or chunked upload), then the manifest
with exactly the bytes that were hashed. A manifest goes up only when every blob it names is confirmed."""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import BinaryIO, Callable
from urllib.parse import quote

from executor import progress
from executor.image import Descriptor
from executor.image import digest as _digest

from .errors import NotFoundError, RegistryError, UnauthorizedError
from .parallel import abandoned, run_parallel
from .reference import Reference
from .transport import Transport, repository_scope

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Blob:
    """A blob to push: its descriptor, how to read it, and a repository of the same registry that holds it (a
    cross-repository mount is tried first)."""
    descriptor: Descriptor
    opener: Callable[[], BinaryIO]
    #: "registry/repository" already holding the blob, for a cross-repository mount
    source: str | None = None


@dataclass
class PushStats:
    """Blobs of a push that the registry already had, that were mounted and that were uploaded (counts and bytes);
    reported in the `push.done` event and the log."""
    existed: int = 0
    mounted: int = 0
    uploaded: int = 0
    bytes_existed: int = 0
    bytes_mounted: int = 0
    bytes_uploaded: int = 0

    def count(self, what: str, size: int = 0) -> None:
        with _STATS_LOCK:
            setattr(self, what, getattr(self, what) + 1)
            setattr(self, f"bytes_{what}", getattr(self, f"bytes_{what}") + size)


_STATS_LOCK = threading.Lock()


def _report(message: str, *args: object) -> None:
    """A blob's arrival, at info level; at debug level once the build that wanted it was cancelled (its
    "nothing was pushed" line already said so: the blob is in the repository, untagged, and no manifest
    follows)."""
    if abandoned():
        log.debug(message + " (after the build was cancelled: untagged, no manifest names it)", *args)
    else:
        log.info(message, *args)


def _push_scopes(repo: str) -> list[str]:
    return [repository_scope(repo, "pull,push")]


def blob_exists(t: Transport, repo: str, desc: Descriptor, push: bool = True) -> bool:
    resp = t.request("HEAD", f"/v2/{repo}/blobs/{desc.digest}", phase="blob HEAD", repository=repo,
                     scopes=_push_scopes(repo) if push else [repository_scope(repo, "pull")], expect=[200, 404])
    resp.close()
    if resp.status_code != 200:
        return False
    length = resp.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) != desc.size:
        raise RegistryError(t.registry, repo, "blob HEAD", f"blob {desc.digest} exists with {length} bytes, "
                            f"the manifest says {desc.size}", resp.status_code)
    return True


def ensure_blob(t: Transport, repo: str, blob: Blob, chunk_size: int | None, stats: PushStats) -> str:
    """Make sure `repo` holds the blob; return only once the registry confirmed it, saying how: "existed",
    "mounted" or "uploaded"."""
    desc = blob.descriptor
    # A HEAD first, even with a repository to mount from: a mount of a blob the repository already holds
    # rewrites its link, and Docker's registry (distribution 2.x, filesystem storage) truncates and rewrites
    # that file in place, so builds pushing the same base to one repository at once saw "blob unknown" on
    # their manifest PUT (tests/faults/test_load.py). The HEAD costs a round trip per base layer.
    if blob_exists(t, repo, desc):
        _report("blob %s already in %s/%s", desc.digest, t.registry, repo)
        stats.count("existed", desc.size)
        return "existed"
    location = None
    source_repo = _mount_source(t, repo, blob)
    if source_repo:
        try:
            resp = t.request("POST", f"/v2/{repo}/blobs/uploads/?mount={quote(desc.digest)}&from={quote(source_repo)}",
                             phase="upload POST", repository=repo,
                             scopes=_push_scopes(repo) + [repository_scope(source_repo, "pull")],
                             expect=[201, 202], headers={"Content-Length": "0"})
        except UnauthorizedError:
            resp = None  # no pull right on the source: upload instead
            log.info("cannot mount %s from %s into %s: not allowed; uploading", desc.digest, source_repo, repo)
        if resp is not None:
            resp.close()
            if resp.status_code == 201:
                _confirm(t, repo, desc, resp.headers.get("Docker-Content-Digest"), "upload POST")
                _report("mounted blob %s from %s/%s", desc.digest, t.registry, source_repo)
                stats.count("mounted", desc.size)
                return "mounted"
            location = resp.headers.get("Location")
    try:
        _upload(t, repo, blob, chunk_size, location)
    except NotFoundError as e:
        # The registry no longer knows the upload session: most often an answer lost after the registry
        # completed a PUT (the session is closed) or a PATCH (its state token moved on), so the retry met a
        # stale session. The blob may be there already; otherwise start one new session.
        if blob_exists(t, repo, desc):
            _report("blob %s is in %s/%s although its upload answered %s", desc.digest, t.registry, repo, e)
        else:
            log.warning("upload of %s to %s/%s lost its session (%s); starting it again", desc.digest,
                        t.registry, repo, e)
            _upload(t, repo, blob, chunk_size, None)
    stats.count("uploaded", desc.size)
    return "uploaded"


def _upload(t: Transport, repo: str, blob: Blob, chunk_size: int | None, location: str | None) -> None:
    """Upload the blob through the session at `location`, or a new one."""
    desc = blob.descriptor
    if location is None:
        spare = t.take_spare_upload(repo)
        if spare:
            try:
                _upload(t, repo, blob, chunk_size, spare)
                return
            except NotFoundError as e:
                # the session opened by the push permission check is gone (purged, or a registry that drops
                # idle sessions): nothing of this blob went through it; a new session as usual
                log.debug("spare upload session for %s/%s unknown (%s): starting a new one", t.registry, repo, e)
    if location is None:
        resp = t.request("POST", f"/v2/{repo}/blobs/uploads/", phase="upload POST", repository=repo,
                         scopes=_push_scopes(repo), expect=[202], headers={"Content-Length": "0"})
        resp.close()
        location = resp.headers.get("Location")
    if not location:
        raise RegistryError(t.registry, repo, "upload POST", f"blob {desc.digest}: no Location in the answer")
    with progress.Task("upload", desc.digest, desc.size) as task:
        counted = Blob(desc, lambda: progress.CountingReader(blob.opener(), task), blob.source) \
            if progress.listening() else blob
        if chunk_size:
            upload_chunked(t, repo, location, counted, chunk_size)
        else:
            upload_monolithic(t, repo, location, counted)


def _mount_source(t: Transport, repo: str, blob: Blob) -> str | None:
    if not blob.source:
        return None
    registry, _, source_repo = blob.source.partition("/")
    if registry != t.registry or not source_repo or source_repo == repo:
        return None
    return source_repo


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + "digest=" + quote(digest)


def upload_monolithic(t: Transport, repo: str, location: str, blob: Blob) -> None:
    desc = blob.descriptor
    resp = t.request("PUT", _with_digest(location, desc.digest), phase="upload PUT", repository=repo,
                     scopes=_push_scopes(repo), expect=[201],
                     headers={"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)},
                     body=blob.opener)
    resp.close()
    _confirm(t, repo, desc, resp.headers.get("Docker-Content-Digest"), "upload PUT")
    _report("uploaded blob %s (%d bytes) to %s/%s", desc.digest, desc.size, t.registry, repo)


def _range_end(value: str | None) -> int | None:
    """The last byte the registry holds, from a `Range: 0-N` header (None if it holds nothing)."""
    m = re.match(r"^(?:bytes=)?0-(\d+)$", (value or "").strip())
    return int(m.group(1)) if m else None


def upload_status(t: Transport, repo: str, location: str) -> tuple[int, str]:
    """(bytes the registry holds, new location) of an upload session (GET on its location)."""
    resp = t.request("GET", location, phase="upload PATCH", repository=repo, scopes=_push_scopes(repo), expect=[204])
    resp.close()
    end = _range_end(resp.headers.get("Range"))
    return (end + 1 if end is not None else 0), resp.headers.get("Location") or location


def upload_chunked(t: Transport, repo: str, location: str, blob: Blob, chunk_size: int, start: int = 0) -> None:
    """PATCH the blob in chunks with Content-Range; after a 416 ask the registry where it is and go on."""
    desc = blob.descriptor
    offset = start
    resyncs = 0
    with blob.opener() as f:
        while offset < desc.size:
            f.seek(offset)
            chunk = f.read(min(chunk_size, desc.size - offset))
            if not chunk:
                raise RegistryError(t.registry, repo, "upload PATCH",
                                    f"blob {desc.digest}: local file ends at {offset}, expected {desc.size} bytes")
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(chunk)),
                       "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
            resp = t.request("PATCH", location, phase="upload PATCH", repository=repo, scopes=_push_scopes(repo),
                             expect=[202, 416], headers=headers, body=chunk)
            resp.close()
            if resp.status_code == 416:
                resyncs += 1
                if resyncs > 5:
                    raise RegistryError(t.registry, repo, "upload PATCH",
                                        f"blob {desc.digest}: registry keeps refusing range {headers['Content-Range']}",
                                        416)
                held, location = upload_status(t, repo, resp.headers.get("Location") or location)
                log.info("upload of %s out of step at %d; registry holds %d bytes, resuming", desc.digest, offset, held)
                offset = held
                continue
            location = resp.headers.get("Location") or location
            end = _range_end(resp.headers.get("Range"))
            offset = end + 1 if end is not None else offset + len(chunk)
    resp = t.request("PUT", _with_digest(location, desc.digest), phase="upload PUT", repository=repo,
                     scopes=_push_scopes(repo), expect=[201], headers={"Content-Length": "0"}, body=b"")
    resp.close()
    _confirm(t, repo, desc, resp.headers.get("Docker-Content-Digest"), "upload PUT")
    _report("uploaded blob %s in chunks of %d to %s/%s", desc.digest, chunk_size, t.registry, repo)


def _confirm(t: Transport, repo: str, desc: Descriptor, header: str | None, phase: str) -> None:
    if header and header != desc.digest:
        raise RegistryError(t.registry, repo, phase, f"registry stored blob {desc.digest} as {header}")


def put_manifest(t: Transport, ref: Reference, data: bytes, media_type: str) -> str:
    """PUT the manifest bytes under the reference's tag (or digest); return the digest of those bytes."""
    repo = ref.repository
    digest = _digest.of_bytes(data)
    target = ref.tag or ref.digest or digest
    if ref.digest and ref.digest != digest and not ref.tag:
        raise RegistryError(t.registry, repo, "manifest PUT",
                            f"reference {ref} names digest {ref.digest} but the manifest is {digest}")
    resp = t.request("PUT", f"/v2/{repo}/manifests/{target}", phase="manifest PUT", repository=repo,
                     scopes=_push_scopes(repo), expect=[201, 200], headers={"Content-Type": media_type}, body=data)
    resp.close()
    header = resp.headers.get("Docker-Content-Digest")
    if header and header != digest:
        raise RegistryError(t.registry, repo, "manifest PUT", f"registry stored the manifest as {header}, "
                            f"kiln hashed {digest}", resp.status_code)
    return digest


def push_blobs_and_manifest(t: Transport, ref: Reference, blobs: list[Blob], manifest: bytes, media_type: str,
                            chunk_size: int | None, jobs: int = 1,
                            known: dict[str, str] | None = None) -> tuple[str, PushStats]:
    """Every blob confirmed (in `jobs` parallel streams), then the manifest. `known`: digest -> how the repository
    got it earlier in this run (sent while the build went on: "existed", "mounted", "uploaded"), not asked for
    again and counted as it happened."""
    stats = PushStats()
    unique: dict[str, Blob] = {}
    earlier: dict[str, Blob] = {}
    for blob in blobs:
        if blob.descriptor.digest in (known or {}):
            earlier.setdefault(blob.descriptor.digest, blob)
        else:
            unique.setdefault(blob.descriptor.digest, blob)
    for digest, blob in earlier.items():
        stats.count((known or {})[digest], blob.descriptor.size)
    # the first failure is raised; the manifest is never PUT then. A signal stops waiting at once.
    run_parallel(lambda b: ensure_blob(t, ref.repository, b, chunk_size, stats), unique.values(), jobs,
                 name="kiln-push")
    return put_manifest(t, ref, manifest, media_type), stats


__all__ = ["Blob", "PushStats", "blob_exists", "ensure_blob", "upload_monolithic", "upload_chunked",
           "upload_status", "put_manifest", "push_blobs_and_manifest"]

"""RegistryClient: pull an Image (resolving an index to a platform), push an Image to references."""
from __future__ import annotations

import io
import json
import logging
import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import BinaryIO, Iterable

from executor import progress
from executor.image import Descriptor, Image, ImageConfig, Index, Layer, Manifest, Platform, host_platform
from executor.image import digest as _digest
from executor.image import mediatypes as mt

from . import pull as _pull
from . import push as _push
from .errors import NotFoundError, RegistryError, UnreachableError
from .options import RegistryOptions
from .parallel import run_parallel
from .reference import Reference
from .transport import Transport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pulled:
    """What a reference resolved to."""
    reference: Reference       # where it was found (a mirror, or the original registry)
    manifest_digest: str
    index_digest: str | None   # the index it was selected from, if any
    platform: Platform | None


class RegistryClient:
    def __init__(self, options: RegistryOptions | None = None, blob_dir: str | None = None):
        self.options = options or RegistryOptions()
        self._blob_dir = blob_dir
        self._transports: dict[tuple[str, bool], Transport] = {}
        self._lock = threading.Lock()
        self._blob_locks: dict[str, threading.Lock] = {}
        #: (reference, platform) pulled -> what it resolved to (with the index digest, for provenance)
        self.origins: dict[tuple[str, str], Pulled] = {}
        #: layer digest -> (where it lives, its descriptor, its diff_id, the image named), for streaming
        self._remote: dict[str, tuple[Reference, Descriptor, str, str]] = {}
        self._downloads: dict[str, _pull.BlobDownload] = {}
        self._download_queue: queue.Queue[_pull.BlobDownload] = queue.Queue()
        self._download_workers = 0
        self._fetching: dict[str, int] = {}   # layer digest -> fetches under way outside a BlobDownload

    # ---- plumbing ----------------------------------------------------------------------------
    def transport(self, registry: str, push: bool = False) -> Transport:
        key = (registry, push)
        with self._lock:
            if key not in self._transports:
                new = Transport(registry, self.options, push)
                other = self._transports.get((registry, not push))
                if other is not None:
                    new.learn_from(other)       # one ping per registry when pull and push agree on TLS
                self._transports[key] = new
            return self._transports[key]

    @property
    def blob_dir(self) -> str:
        if self._blob_dir is None:
            self._blob_dir = tempfile.mkdtemp(prefix="kiln-blobs-")
        os.makedirs(self._blob_dir, exist_ok=True)
        return self._blob_dir

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blob_dir, _digest.algorithm_of(digest), _digest.hex_of(digest))

    # ---- pull --------------------------------------------------------------------------------
    def get_manifest(self, ref: Reference | str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of what `ref` names: a manifest or an index."""
        ref = _as_ref(ref)
        return _pull.get_manifest(self.transport(ref.registry), ref)

    def resolve(self, ref: Reference | str, platform: Platform | None = None) -> tuple[Reference, Manifest, Pulled]:
        """Find the image manifest of `ref` for `platform` (default: the host's), trying mirrors for docker.io."""
        ref = _as_ref(ref)
        errors: list[str] = []
        candidates = self.options.pull_registries(ref.registry)
        for candidate in candidates:
            registry, _, prefix = candidate.partition("/")
            where = Reference(registry, f"{prefix}/{ref.repository}" if prefix else ref.repository, ref.tag, ref.digest)
            if candidate != ref.registry:
                log.info("Retrieving image %s from mapped registry %s", where, registry)
            try:
                return self._resolve_at(where, platform)
            except RegistryError as e:
                if candidates == [ref.registry]:
                    raise
                errors.append(str(e))
                log.warning("pulling %s from %s failed: %s; trying the next registry", ref, where, e)
        fallback = "" if ref.registry in candidates else " (--skip-default-registry-fallback: not asked)"
        raise RegistryError(ref.registry, ref.repository, "manifest GET",
                            f"not found on any mapped registry nor {ref.registry}{fallback}: " + " | ".join(errors))

    def _resolve_at(self, ref: Reference, platform: Platform | None) -> tuple[Reference, Manifest, Pulled]:
        t = self.transport(ref.registry)
        try:
            data, media_type, digest = _pull.get_manifest(t, ref)
        except NotFoundError as e:
            # the user named this tag or digest: "image not found in HOST (manifest unknown)"; the request
            # and the registry's whole answer are in the debug log (transport)
            raise e.image_not_found() from None
        except UnreachableError as e:
            raise e.for_reference(str(ref)) from None       # "... for HOST/REPO:TAG", the tag included
        index_digest = None
        body_type = _peek_media_type(data) or media_type
        if mt.is_index(body_type) or (not body_type and b'"manifests"' in data):
            index = Index.from_bytes(data, media_type, where=f"index {ref}")
            want = platform or host_platform()
            desc = index.select(want, where=f"index {ref}")
            index_digest = digest
            entry = ref.with_digest(desc.digest)
            try:
                data, media_type, digest = _pull.get_manifest(t, entry)
            except NotFoundError as e:
                raise e.with_message(f"index {ref} names manifest {desc.digest} for {want}, which "
                                     f"{ref.registry} does not have ({e.reason or f'HTTP {e.status}'})") from None
            ref = entry
        try:
            manifest = Manifest.from_bytes(data, media_type, where=f"manifest {ref}")
        except ValueError as e:
            raise RegistryError(ref.registry, ref.repository, "manifest GET", str(e)) from None
        return ref, manifest, Pulled(ref.with_digest(digest), digest, index_digest, platform)

    def pull(self, ref: Reference | str, platform: Platform | None = None, fetch_layers: bool = False) -> Image:
        """The image `ref` names (an index resolved to `platform`). Config verified now; layers are
        downloaded and verified on first open, or now with `fetch_layers=True`."""
        ref = _as_ref(ref)
        attempts = max(0, self.options.image_download_retry) + 1
        for attempt in range(attempts):
            try:
                return self._pull_once(ref, platform, fetch_layers)
            except RegistryError as e:
                if attempt + 1 >= attempts or e.status in (401, 403, 404) or isinstance(e, NotFoundError):
                    raise
                wait = self.options.retry_backoff * (2 ** attempt)
                log.warning("pulling %s failed (%s); retry %d of %d in %.1fs", ref, e, attempt + 1, attempts - 1, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _pull_once(self, ref: Reference, platform: Platform | None, fetch_layers: bool) -> Image:
        where, manifest, pulled = self.resolve(ref, platform)
        t = self.transport(where.registry)
        repo = where.repository
        if mt.is_foreign(manifest.config.media_type) or manifest.config.media_type not in (mt.OCI_CONFIG, mt.DOCKER_CONFIG):
            log.warning("%s: config media type %s is not an image config", where, manifest.config.media_type)
        config = ImageConfig.from_bytes(_pull.get_blob_bytes(t, repo, manifest.config),
                                        where=f"config {manifest.config.digest} of {where}")
        diff_ids = config.diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise RegistryError(where.registry, repo, "blob GET",
                                f"config {manifest.config.digest} lists {len(diff_ids)} diff_ids but manifest "
                                f"{pulled.manifest_digest} has {len(manifest.layers)} layers")
        if platform and not platform.matches(config.platform):
            log.warning("%s is %s, not the %s asked for", where, config.platform, platform)
        for desc in manifest.layers:
            if not mt.is_layer(desc.media_type):
                raise RegistryError(where.registry, repo, "manifest GET",
                                    f"manifest {pulled.manifest_digest} names blob {desc.digest} of media type "
                                    f"{desc.media_type!r}, which is not a container image layer")
        layers = [self._remote_layer(where, desc, diff_id, str(ref)) for desc, diff_id in zip(manifest.layers, diff_ids)]
        image = Image.from_parts(manifest, config, layers)
        with self._lock:
            self.origins[(str(ref), str(platform) if platform else "")] = pulled
        if fetch_layers:
            self.fetch_layers(image)
        return image

    def _remote_layer(self, ref: Reference, desc: Descriptor, diff_id: str, image: str) -> Layer:
        source = f"{ref.registry}/{ref.repository}"
        with self._lock:
            self._remote.setdefault(desc.digest, (ref, desc, diff_id, image))

        def opener() -> BinaryIO:
            return open(self._fetch(ref, desc, diff_id), "rb")

        return Layer(desc, diff_id, opener, path=None, source=source)

    def _fetch(self, ref: Reference, desc: Descriptor, diff_id: str | None) -> str:
        path = self.blob_path(desc.digest)
        with self._lock:
            lock = self._blob_locks.setdefault(desc.digest, threading.Lock())
            streaming = self._downloads.get(desc.digest)
        if streaming is not None:
            try:
                return streaming.result()   # a download an extraction follows: the same bytes, once
            except RegistryError:
                pass                        # it failed: download anew below
        with self._lock:
            # (while this fetch runs, an extraction reads the file it leaves rather than starting a second
            # download of the same blob: see stream_layer)
            self._fetching[desc.digest] = self._fetching.get(desc.digest, 0) + 1
        try:
            with lock:
                if not os.path.exists(path):
                    if mt.is_foreign(desc.media_type) and desc.urls:
                        raise RegistryError(ref.registry, ref.repository, "blob GET",
                                            f"foreign layer {desc.digest} lives at {desc.urls[0]}; fetching "
                                            "foreign layers is not supported")
                    _pull.download_layer(self.transport(ref.registry), ref.repository, desc, diff_id, path)
        finally:
            with self._lock:
                self._fetching[desc.digest] -= 1
        return path

    def fetch_layers(self, image: Image) -> list[str]:
        """Download (and verify) every layer of a pulled image; the paths of the blobs, in order."""
        def fetch(layer: Layer) -> str:
            with layer.open_blob() as f:
                return f.name if hasattr(f, "name") else ""

        return run_parallel(fetch, image.layers, self.options.jobs, name="kiln-pull")

    # ---- streaming pulls: extraction while downloading -------------------------------------------
    def stream_layer(self, layer: Layer) -> _pull.BlobDownload | None:
        """The download of a layer this client pulled, started now (queued behind at most `jobs` others)
        unless under way already; None when its blob is a file already, or the layer is not remote."""
        with self._lock:
            found = self._remote.get(layer.digest)
        if found is None or layer.path is not None:
            return None
        ref, desc, diff_id, image = found
        transport = self.transport(ref.registry)
        path = self.blob_path(desc.digest)
        with self._lock:
            current = self._downloads.get(desc.digest)
            if current is not None and not current.failed:
                return current
            if os.path.exists(path) or (mt.is_foreign(desc.media_type) and desc.urls) or \
                    self._fetching.get(desc.digest):
                return None     # the blob is here, or will be: the extraction reads the file
            download = _pull.BlobDownload(transport, ref.repository, desc, diff_id, path, image)
            self._downloads[desc.digest] = download
            self._download_queue.put(download)
            if self._download_workers < max(1, self.options.jobs):
                self._download_workers += 1
                threading.Thread(target=self._download_worker, name="kiln-pull-stream", daemon=True).start()
            return download

    def prefetch(self, layers: Iterable[Layer]) -> None:
        """Start the downloads of these layers (in order, `jobs` at a time) for extractions to follow."""
        for layer in layers:
            self.stream_layer(layer)

    def _download_worker(self) -> None:
        # daemon threads (a cancelled build exits without waiting for them, see parallel.py); each ends
        # when no download waits
        while True:
            with self._lock:
                try:
                    download = self._download_queue.get_nowait()
                except queue.Empty:
                    self._download_workers -= 1
                    return
            download.run()

    # ---- push --------------------------------------------------------------------------------
    def early_uploads(self, destinations: Iterable[Reference | str]):
        """An `EarlyUploads` to these destinations' repositories: blobs sent while the build goes on."""
        from .early import EarlyUploads

        return EarlyUploads(lambda registry: self.transport(registry, push=True),
                            [_as_ref(d) for d in destinations], self.options.chunk_size, self.options.jobs)

    def push(self, image: Image, refs: Iterable[Reference | str],
             confirmed: dict[tuple[str, str], dict[str, str]] | None = None) -> str:
        """Push `image` to every reference (tag or digest); returns the image digest.

        Each destination gets its blobs first (HEAD-skip, mount, upload) and its manifest last. A later
        destination on the same registry mounts the blobs from the repository pushed before it.
        """
        data = image.manifest_bytes()
        digest = _digest.of_bytes(data)
        config_bytes = image.config_bytes()
        blobs = [_push.Blob(l.descriptor, l.open_blob, l.source) for l in image.layers if not l.foreign]
        blobs.append(_push.Blob(image.config_descriptor(), lambda: io.BytesIO(config_bytes)))
        pushed_to: dict[str, str] = {}   # registry -> a repository that now holds every blob
        for ref in refs:
            ref = _as_ref(ref)
            earlier = pushed_to.get(ref.registry)
            ref_blobs = [b if not earlier or (b.source or "").startswith(ref.registry + "/")
                         else _push.Blob(b.descriptor, b.opener, f"{ref.registry}/{earlier}") for b in blobs]
            attempts = max(0, self.options.push_retry) + 1
            for attempt in range(attempts):
                try:
                    t = self.transport(ref.registry, push=True)
                    known = (confirmed or {}).get((ref.registry, ref.repository))
                    _, stats = _push.push_blobs_and_manifest(t, ref, ref_blobs, data, image.media_type,
                                                             self.options.chunk_size, self.options.jobs, known)
                    log.info("pushed %s@%s (%d blobs uploaded, %d mounted, %d already there)", ref.kaniko_name,
                             digest, stats.uploaded, stats.mounted, stats.existed)
                    _pushed(ref, digest, stats)
                    break
                except RegistryError as e:
                    if self.options.push_ignore_immutable_tag_errors and is_immutable_tag_error(e):
                        log.info("Immutable tag error ignored for %s@%s: %s", ref.kaniko_name, digest, e)
                        break
                    if attempt + 1 >= attempts:
                        raise
                    wait = self.options.retry_backoff * (2 ** attempt)
                    log.warning("push to %s failed (%s); retry %d of %d in %.1fs", ref, e, attempt + 1,
                                attempts - 1, wait)
                    time.sleep(wait)
            pushed_to.setdefault(ref.registry, ref.repository)
        return digest

    def push_artifact(self, manifest: bytes, media_type: str, blobs: dict[str, bytes],
                      refs: Iterable[Reference | str]) -> str:
        """Push a manifest whose blobs are small byte strings (an attestation manifest: its config and
        in-toto statements) into each destination repository, by digest; returns the manifest digest."""
        digest = _digest.of_bytes(manifest)
        pending = [_push.Blob(Descriptor("application/octet-stream", d, len(b)), (lambda b=b: io.BytesIO(b)))
                   for d, b in blobs.items()]
        for ref in refs:
            ref = _as_ref(ref)
            t = self.transport(ref.registry, push=True)
            _, stats = _push.push_blobs_and_manifest(t, Reference(ref.registry, ref.repository, None, digest),
                                                     pending, manifest, media_type, self.options.chunk_size,
                                                     self.options.jobs)
            _pushed(ref, digest, stats)
        return digest

    def copy_manifest(self, source: Reference, dest: Reference) -> None:
        """Make the manifest `source` (by digest) exist in `dest`'s repository under its digest, its blobs not
        uploaded again where the registry can avoid it: nothing when the repository has them, a cross-repository
        mount on the same registry, a copy (download, then upload) only from another registry."""
        data, media_type, digest = self.get_manifest(source)
        if source.registry == dest.registry and source.repository == dest.repository:
            return
        manifest = Manifest.from_bytes(data, media_type, where=f"manifest {source}")
        origin = f"{source.registry}/{source.repository}"
        blobs = [_push.Blob(d, (lambda d=d: open(self._fetch(source, d, None), "rb")), origin)
                 for d in (manifest.config, *manifest.layers) if not (mt.is_foreign(d.media_type) and d.urls)]
        t = self.transport(dest.registry, push=True)
        _, stats = _push.push_blobs_and_manifest(t, Reference(dest.registry, dest.repository, None, digest), blobs,
                                                 data, media_type, self.options.chunk_size, self.options.jobs)
        log.info("copied %s into %s/%s (%d blobs uploaded, %d mounted, %d already there)", source, dest.registry,
                 dest.repository, stats.uploaded, stats.mounted, stats.existed)

    def push_index(self, index: Index, refs: Iterable[Reference | str]) -> str:
        """PUT an index whose manifests are already in each destination repository."""
        data = index.to_bytes()
        for ref in refs:
            ref = _as_ref(ref)
            t = self.transport(ref.registry, push=True)
            for desc in index.manifests:
                resp = t.request("HEAD", f"/v2/{ref.repository}/manifests/{desc.digest}", phase="manifest HEAD",
                                 repository=ref.repository, scopes=[f"repository:{ref.repository}:pull,push"],
                                 expect=[200, 404], headers={"Accept": desc.media_type})
                resp.close()
                if resp.status_code != 200:
                    raise RegistryError(ref.registry, ref.repository, "manifest PUT",
                                        f"index entry {desc.digest} is not in the repository; push it first", 404)
            _push.put_manifest(t, ref, data, index.media_type)
        return _digest.of_bytes(data)

    def check_push_permission(self, ref: Reference | str) -> None:
        """Fail before a build that cannot be pushed (kaniko's push permission check): start a blob
        upload in the destination repository. go-containerregistry leaves that session to the registry's purge
        (cancelling it would need the `delete` action few tokens grant); kiln keeps it for the first blob it
        uploads to that repository, which then needs no POST of its own."""
        ref = _as_ref(ref)
        t = self.transport(ref.registry, push=True)
        repo = ref.repository
        resp = t.request("POST", f"/v2/{repo}/blobs/uploads/", phase="upload POST", repository=repo,
                         scopes=[f"repository:{repo}:pull,push"], expect=[202], headers={"Content-Length": "0"})
        resp.close()
        location = resp.headers.get("Location")
        if location:
            t.keep_spare_upload(repo, location)

    def close(self) -> None:
        for t in self._transports.values():
            t.session.close()

    def blob_exists(self, ref: Reference | str, digest: str) -> bool:
        ref = _as_ref(ref)
        t = self.transport(ref.registry)
        resp = t.request("HEAD", f"/v2/{ref.repository}/blobs/{digest}", phase="blob HEAD", repository=ref.repository,
                         scopes=[f"repository:{ref.repository}:pull"], expect=[200, 404])
        resp.close()
        return resp.status_code == 200


#: what registries answer when a tag may not be overwritten (kaniko's errTagImmutable)
IMMUTABLE_TAG_ERRORS = (
    "The repository has enabled tag immutability",            # Google Artifact Registry
    "cannot be overwritten because the tag is immutable",     # Amazon ECR
)


def is_immutable_tag_error(error: RegistryError) -> bool:
    """--push-ignore-immutable-tag-errors: a manifest PUT refused because the tag is immutable."""
    return error.phase == "manifest PUT" and any(text in str(error) for text in IMMUTABLE_TAG_ERRORS)


def _pushed(ref: Reference, digest: str, stats: _push.PushStats) -> None:
    progress.emit("push.done", destination=str(ref), repository=f"{ref.registry}/{ref.repository}", digest=digest,
                  uploaded=stats.uploaded,
                  mounted=stats.mounted, existed=stats.existed, bytes_uploaded=stats.bytes_uploaded,
                  bytes_mounted=stats.bytes_mounted, bytes_existed=stats.bytes_existed)


def _as_ref(ref: Reference | str) -> Reference:
    return ref if isinstance(ref, Reference) else Reference.parse(ref)


def _peek_media_type(data: bytes) -> str:
    try:
        d = json.loads(data)
    except ValueError:
        return ""
    return d.get("mediaType", "") if isinstance(d, dict) else ""

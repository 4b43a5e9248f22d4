"""An independent judge of images kiln produces (and of our base images).

It never imports kiln's ``executor`` or ``snapshot`` packages. Registry images are fetched with
skopeo (``inspect --raw``, ``inspect --config``, ``copy ... dir:`` which is byte-exact), then a strict
checker of ours looks at every blob: digest and size, real compression against the media type,
uncompressed sha256 against the config's diff_id, tar well-formedness (Python's tarfile and GNU
``tar -t``), history against layers. Finally ``umoci unpack`` must accept an OCI copy.
Any failed check raises :class:`JudgeError` naming the blob and what is wrong.
"""
from __future__ import annotations

import atexit
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import zstandard

from .registry import Registry

log = logging.getLogger(__name__)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)

# layer media type -> compression its bytes must have
LAYER_TYPES: dict[str, dict[str, str]] = {
    "oci": {
        "application/vnd.oci.image.layer.v1.tar": "none",
        "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    },
    "docker": {
        "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
        "application/vnd.docker.image.rootfs.diff.tar.zstd": "zstd",
        "application/vnd.docker.image.rootfs.diff.tar": "none",   # go-containerregistry's uncompressed type
    },
}
CONFIG_TYPES = {"oci": OCI_CONFIG, "docker": DOCKER_CONFIG}

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

_TAR_TYPES = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file",
              tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink",
              tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo"}


class JudgeError(Exception):
    """An image failed one of the judge's checks; the message names the blob and the fault."""


# --- report --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TarMember:
    name: str                  # as stored in the tar (no normalisation)
    type: str                  # file | dir | symlink | hardlink | char | block | fifo
    mode: int                  # permission bits incl. setuid/setgid/sticky (e.g. 0o1777)
    uid: int
    gid: int
    size: int
    linkname: str
    mtime: float
    xattrs: dict[str, str]     # from PAX SCHILY.xattr.* records
    uname: str = ""
    gname: str = ""
    devmajor: int = 0
    devminor: int = 0

    @property
    def path(self) -> str:
        """The normalised path: no leading './' or '/', no trailing '/'."""
        return normalise(self.name)


def normalise(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


@dataclass
class LayerReport:
    index: int
    media_type: str | None     # None in a docker load tarball (no media types there)
    digest: str                # of the blob as stored
    size: int
    compression: str           # gzip | zstd | none, as sniffed from the bytes
    diff_id: str               # sha256 of the uncompressed tar (checked against the config)
    members: list[TarMember]
    tar_path: str              # the uncompressed tar, kept for reads until the process ends

    def names(self) -> list[str]:
        return [m.path for m in self.members]

    def member(self, path: str) -> TarMember:
        path = normalise(path)
        found = [m for m in self.members if m.path == path]
        if not found:
            raise KeyError(f"layer {self.index} ({self.digest}) has no entry {path!r}")
        return found[-1]

    def read(self, path: str) -> bytes:
        member = self.member(path)
        with tarfile.open(self.tar_path, "r:") as tf:
            f = tf.extractfile(member.name)
            if f is None:
                raise KeyError(f"layer {self.index} entry {path!r} is a {member.type}, not a file")
            return f.read()


@dataclass
class ImageReport:
    reference: str | None
    manifest: dict                        # the image manifest (or the manifest.json entry of a tarball)
    manifest_digest: str | None           # sha256 of the manifest bytes (None for a docker tarball)
    manifest_media_type: str | None
    config: dict
    config_digest: str
    layers: list[LayerReport]
    index: dict | None = None             # the index/manifest list the manifest was chosen from
    index_digest: str | None = None
    repo_tags: list[str] = field(default_factory=list)   # docker tarball only
    unpacked_rootfs: str | None = None    # umoci's unpacked rootfs, when unpacking was asked for

    def filesystem(self) -> dict[str, tuple[int, TarMember]]:
        """The merged view of all layers: path -> (layer index, member), whiteouts applied."""
        view: dict[str, tuple[int, TarMember]] = {}
        for layer in self.layers:
            for m in layer.members:
                path = m.path
                parent, _, base = path.rpartition("/")
                if base == ".wh..wh..opq":
                    prefix = parent + "/" if parent else ""
                    for p in [p for p, (i, _) in view.items() if p.startswith(prefix) and i < layer.index]:
                        del view[p]
                elif base.startswith(".wh."):
                    target = (parent + "/" if parent else "") + base[4:]
                    for p in [p for p in view if p == target or p.startswith(target + "/")]:
                        del view[p]
                elif path:
                    view[path] = (layer.index, m)
        return view

    def read(self, path: str) -> bytes:
        """Contents of a regular file in the merged view."""
        path = normalise(path)
        entry = self.filesystem().get(path)
        if entry is None:
            raise KeyError(f"{self.reference or 'image'} has no {path!r} in its merged filesystem")
        return self.layers[entry[0]].read(path)


# --- work directories ----------------------------------------------------------------------------
_WORKDIRS: list[str] = []


@atexit.register
def _cleanup() -> None:
    for d in _WORKDIRS:
        shutil.rmtree(d, ignore_errors=True)


def _workdir(workdir: str | None) -> str:
    if workdir:
        os.makedirs(workdir, exist_ok=True)
        return tempfile.mkdtemp(prefix="judge-", dir=workdir)
    d = tempfile.mkdtemp(prefix="kiln-judge-")
    _WORKDIRS.append(d)
    return d


def _run(argv: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, **kwargs)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) else proc.stderr
        raise JudgeError(f"{what}: {' '.join(argv)} failed with status {proc.returncode}: {err.strip()}")
    return proc


# --- blob checks ---------------------------------------------------------------------------------
def file_digest(path: str) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def check_blob(path: str, digest: str, size: int | None, what: str) -> None:
    """The file at ``path`` exists, hashes to ``digest`` and is ``size`` bytes."""
    if not digest.startswith("sha256:") or not _HEX64.match(digest[7:]):
        raise JudgeError(f"{what}: digest {digest!r} is not a sha256 digest")
    if not os.path.isfile(path):
        raise JudgeError(f"{what}: blob {digest} is missing ({path})")
    actual, actual_size = file_digest(path)
    if actual != digest:
        raise JudgeError(f"{what}: blob {digest} hashes to {actual}")
    if size is not None and actual_size != size:
        raise JudgeError(f"{what}: blob {digest} is {actual_size} bytes but its descriptor says {size}")


def sniff_compression(path: str) -> str:
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head == ZSTD_MAGIC:
        return "zstd"
    return "none"


def _decompress_to(path: str, compression: str, out_path: str, what: str) -> str:
    """Write the uncompressed stream to out_path; return its sha256 digest."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as raw, open(out_path, "wb") as out:
            if compression == "gzip":
                stream = gzip.GzipFile(fileobj=raw)
            elif compression == "zstd":
                stream = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            else:
                stream = raw
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
            if compression == "zstd":
                _check_zstd_complete(path, what)
    except (EOFError, OSError, zlib.error, zstandard.ZstdError) as e:
        raise JudgeError(f"{what}: {compression} stream is corrupt or truncated: {e}") from e
    return "sha256:" + h.hexdigest()


def _check_zstd_complete(path: str, what: str) -> None:
    """zstandard's stream reader stops quietly at a cut frame; the zstd CLI does not."""
    proc = subprocess.run(["zstd", "-q", "-t", path], capture_output=True, text=True)
    if proc.returncode != 0:
        raise JudgeError(f"{what}: zstd stream is corrupt or truncated: {proc.stderr.strip()}")


def _member(ti: tarfile.TarInfo) -> TarMember:
    xattrs = {k[len("SCHILY.xattr."):]: v for k, v in ti.pax_headers.items() if k.startswith("SCHILY.xattr.")}
    return TarMember(name=ti.name, type=_TAR_TYPES.get(ti.type, f"unknown({ti.type!r})"), mode=ti.mode,
                     uid=ti.uid, gid=ti.gid, size=ti.size, linkname=ti.linkname, mtime=ti.mtime,
                     xattrs=xattrs, uname=ti.uname, gname=ti.gname, devmajor=ti.devmajor,
                     devminor=ti.devminor)


def check_tar(tar_path: str, what: str) -> list[TarMember]:
    """tarfile and GNU tar both read the whole archive; it ends with the end-of-archive blocks."""
    members: list[TarMember] = []
    try:
        with tarfile.open(tar_path, "r:", errorlevel=2) as tf:
            for ti in tf:
                if ti.type not in _TAR_TYPES:
                    raise JudgeError(f"{what}: tar entry {ti.name!r} has unsupported type {ti.type!r}")
                members.append(_member(ti))
            end = tf.offset
    except tarfile.TarError as e:
        raise JudgeError(f"{what}: not a well-formed tar: {e}") from e
    total = os.path.getsize(tar_path)
    with open(tar_path, "rb") as f:
        f.seek(end)
        trailer = f.read()
    if total - end < 1024 or trailer.strip(b"\0"):
        raise JudgeError(f"{what}: tar lacks its end-of-archive marker (two zero blocks) after byte {end} "
                         f"of {total}")
    for m in members:
        parts = m.path.split("/")
        if m.name.startswith("/") or ".." in parts:
            raise JudgeError(f"{what}: tar entry {m.name!r} is absolute or climbs out with '..'")
    proc = subprocess.run(["tar", "--quoting-style=escape", "-tf", tar_path], capture_output=True, text=True)
    if proc.returncode != 0 or proc.stderr.strip():
        raise JudgeError(f"{what}: GNU tar -t rejects the layer (status {proc.returncode}): {proc.stderr.strip()}")
    listed = len(proc.stdout.splitlines())
    if listed != len(members):
        raise JudgeError(f"{what}: GNU tar lists {listed} entries but Python's tarfile reads {len(members)}")
    return members


def check_layer(blob_path: str, index: int, digest: str, size: int | None, media_type: str | None,
                expected_compression: str | None, diff_id: str | None, workdir: str, what: str) -> LayerReport:
    check_blob(blob_path, digest, size, what)
    compression = sniff_compression(blob_path)
    if expected_compression is not None and compression != expected_compression:
        raise JudgeError(f"{what}: blob {digest} is {_describe(compression)} but its media type "
                         f"{media_type} says {_describe(expected_compression)}")
    tar_path = os.path.join(workdir, f"layer-{index}-{digest[7:19]}.tar")
    actual_diff_id = _decompress_to(blob_path, compression, tar_path, f"{what}: blob {digest}")
    if diff_id is not None and actual_diff_id != diff_id:
        raise JudgeError(f"{what}: blob {digest} uncompresses to {actual_diff_id} but the config's "
                         f"diff_id at position {index} is {diff_id}")
    members = check_tar(tar_path, f"{what}: blob {digest}")
    return LayerReport(index=index, media_type=media_type, digest=digest, size=os.path.getsize(blob_path),
                       compression=compression, diff_id=actual_diff_id, members=members, tar_path=tar_path)


def _describe(compression: str) -> str:
    return {"none": "an uncompressed tar", "gzip": "gzip-compressed", "zstd": "zstd-compressed"}[compression]


def check_config(config: dict, n_layers: int, what: str) -> list[str]:
    """Config sanity; returns its diff_ids."""
    for key in ("architecture", "os"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise JudgeError(f"{what}: config lacks {key!r}")
    rootfs = config.get("rootfs") or {}
    if rootfs.get("type") != "layers":
        raise JudgeError(f"{what}: config rootfs.type is {rootfs.get('type')!r}, not 'layers'")
    diff_ids = rootfs.get("diff_ids") or []
    if len(diff_ids) != n_layers:
        raise JudgeError(f"{what}: config has {len(diff_ids)} diff_ids but the image has {n_layers} layers")
    history = config.get("history")
    if history:
        non_empty = sum(1 for h in history if not h.get("empty_layer"))
        if non_empty != n_layers:
            raise JudgeError(f"{what}: config history has {non_empty} entries that are not empty_layer "
                             f"but the image has {n_layers} layers")
    return diff_ids


def check_manifest_blobs(manifest: dict, blob_path: Callable[[str], str], workdir: str,
                         what: str) -> tuple[dict, list[LayerReport]]:
    """Every blob an image manifest names, strictly; returns (config, layers)."""
    if manifest.get("schemaVersion") != 2:
        raise JudgeError(f"{what}: manifest schemaVersion is {manifest.get('schemaVersion')!r}, not 2")
    media_type = manifest.get("mediaType")
    config_desc = manifest.get("config") or {}
    family = "docker" if media_type == DOCKER_MANIFEST or config_desc.get("mediaType") == DOCKER_CONFIG else "oci"
    if media_type not in (None, OCI_MANIFEST, DOCKER_MANIFEST):
        raise JudgeError(f"{what}: manifest mediaType {media_type!r} is not an image manifest")
    if family == "docker" and media_type != DOCKER_MANIFEST:
        raise JudgeError(f"{what}: config media type {config_desc.get('mediaType')} is Docker's but the "
                         f"manifest mediaType is {media_type!r}")
    if config_desc.get("mediaType") != CONFIG_TYPES[family]:
        raise JudgeError(f"{what}: config media type {config_desc.get('mediaType')!r} does not belong in a "
                         f"{family} manifest (expected {CONFIG_TYPES[family]})")
    config_digest = config_desc.get("digest", "")
    path = blob_path(config_digest)
    check_blob(path, config_digest, config_desc.get("size"), f"{what}: config")
    try:
        with open(path, "rb") as f:
            config = json.load(f)
    except ValueError as e:
        raise JudgeError(f"{what}: config blob {config_digest} is not JSON: {e}") from e
    layers_desc = manifest.get("layers") or []
    diff_ids = check_config(config, len(layers_desc), f"{what}: config {config_digest}")
    layers = []
    for i, desc in enumerate(layers_desc):
        lt = desc.get("mediaType")
        if lt not in LAYER_TYPES[family]:
            raise JudgeError(f"{what}: layer {i} ({desc.get('digest')}) has media type {lt!r}, not a "
                             f"{family} layer type")
        layers.append(check_layer(blob_path(desc["digest"]), i, desc["digest"], desc.get("size"), lt,
                                  LAYER_TYPES[family][lt], diff_ids[i], workdir, f"{what}: layer {i}"))
    return config, layers


# --- platform selection --------------------------------------------------------------------------
def parse_platform(platform: str | None) -> dict[str, str]:
    parts = (platform or "linux/amd64").split("/")
    if len(parts) not in (2, 3):
        raise ValueError(f"platform {platform!r} is not os/arch[/variant]")
    return {"os": parts[0], "architecture": parts[1], **({"variant": parts[2]} if len(parts) == 3 else {})}


def select_manifest(index: dict, platform: str | None, what: str) -> dict:
    want = parse_platform(platform)
    if index.get("schemaVersion") != 2:
        raise JudgeError(f"{what}: index schemaVersion is {index.get('schemaVersion')!r}, not 2")
    for desc in index.get("manifests") or []:
        p = desc.get("platform") or {}
        if p.get("os") == want["os"] and p.get("architecture") == want["architecture"] and \
                ("variant" not in want or p.get("variant") == want["variant"]):
            return desc
    have = [f"{(d.get('platform') or {}).get('os')}/{(d.get('platform') or {}).get('architecture')}"
            for d in index.get("manifests") or []]
    raise JudgeError(f"{what}: index has no manifest for {platform or 'linux/amd64'} (has {have})")


def _has_zstd(layers: list[LayerReport]) -> bool:
    return any(layer.compression == "zstd" for layer in layers)


# --- umoci ---------------------------------------------------------------------------------------
def _umoci_unpack(src: str, src_args: list[str], workdir: str, what: str, recompress: bool = False) -> str:
    """skopeo copies the image into an OCI layout (recompressing zstd to gzip, which umoci 0.4.7
    cannot read, when asked), then umoci unpacks it, checking sizes, digests and diff_ids again."""
    layout = os.path.join(workdir, "oci")
    extra = ["--dest-compress", "--dest-compress-format", "gzip"] if recompress else []
    _run(["skopeo", "copy", "-q", *src_args, *extra, src, f"oci:{layout}:judge"], f"{what}: copy to an OCI layout")
    bundle = os.path.join(workdir, "bundle")
    _run(["umoci", "unpack", "--image", f"{layout}:judge", bundle], f"{what}: umoci unpack")
    return os.path.join(bundle, "rootfs")


# --- registry images -----------------------------------------------------------------------------
def _inspect_raw(registry: Registry, ref: str) -> bytes:
    return _run(["skopeo", "inspect", "--raw", *registry.skopeo_args(""), f"docker://{ref}"],
                f"{ref}: fetching the manifest").stdout


def judge_registry_image(registry: Registry, ref: str, platform: str | None = None, unpack: bool = True,
                         workdir: str | None = None) -> ImageReport:
    """Fetch ``ref`` (HOST/repo:tag or @digest) from ``registry`` with skopeo and check every blob."""
    work = _workdir(workdir)
    repo = _repository(ref)
    raw = _inspect_raw(registry, ref)
    top = _parse_json(raw, f"{ref}: manifest")
    index = index_digest = None
    target = ref
    if top.get("mediaType") in INDEX_TYPES or ("manifests" in top and "layers" not in top):
        index, index_digest = top, "sha256:" + hashlib.sha256(raw).hexdigest()
        desc = select_manifest(index, platform, f"{ref}: index {index_digest}")
        children = {}
        for entry in index.get("manifests") or []:   # every entry must exist with its digest and size
            child = _inspect_raw(registry, f"{repo}@{entry.get('digest')}")
            got = "sha256:" + hashlib.sha256(child).hexdigest()
            if got != entry.get("digest") or len(child) != entry.get("size"):
                raise JudgeError(f"{ref}: index entry {entry.get('digest')} (size {entry.get('size')}) but the "
                                 f"registry serves a manifest of {got} ({len(child)} bytes)")
            children[got] = child
        target = f"{repo}@{desc['digest']}"
        raw = children[desc["digest"]]
    manifest = _parse_json(raw, f"{target}: manifest")
    if "layers" not in manifest:
        raise JudgeError(f"{target}: manifest has no 'layers' (mediaType {manifest.get('mediaType')!r})")
    manifest_digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    config_via_skopeo = _parse_json(
        _run(["skopeo", "inspect", "--config", "--raw", *registry.skopeo_args(""), f"docker://{target}"],
             f"{target}: fetching the config").stdout, f"{target}: config")
    blobs = os.path.join(work, "dir")
    proc = subprocess.run(["skopeo", "copy", "-q", *registry.skopeo_args("src"), f"docker://{target}",
                           f"dir:{blobs}"], capture_output=True, text=True)
    if proc.returncode != 0:
        _diagnose_remote(registry, repo, manifest, target)
        raise JudgeError(f"{target}: skopeo copy to dir: failed: {proc.stderr.strip()}")
    with open(os.path.join(blobs, "manifest.json"), "rb") as f:
        if f.read() != raw:
            raise JudgeError(f"{target}: skopeo's dir: copy changed the manifest bytes")
    config, layers = check_manifest_blobs(manifest, lambda d: os.path.join(blobs, d.split(":", 1)[-1]),
                                          work, target)
    if config != config_via_skopeo:
        raise JudgeError(f"{target}: skopeo inspect --config differs from config blob {manifest['config']['digest']}")
    rootfs = None
    if unpack:
        rootfs = _umoci_unpack(f"docker://{target}", registry.skopeo_args("src"), work, target,
                               recompress=_has_zstd(layers))
    return ImageReport(reference=ref, manifest=manifest, manifest_digest=manifest_digest,
                       manifest_media_type=manifest.get("mediaType"), config=config,
                       config_digest=manifest["config"]["digest"], layers=layers, index=index,
                       index_digest=index_digest, unpacked_rootfs=rootfs)


def _repository(ref: str) -> str:
    """``HOST/name:tag`` or ``HOST/name@digest`` -> ``HOST/name``."""
    ref = ref.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else ref


def _parse_json(raw: bytes, what: str) -> dict:
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise JudgeError(f"{what} is not JSON: {e}") from e
    if not isinstance(value, dict):
        raise JudgeError(f"{what} is not a JSON object")
    return value


def _diagnose_remote(registry: Registry, repo: str, manifest: dict, target: str) -> None:
    """skopeo could not copy: find the blob at fault over HTTP and raise a JudgeError naming it."""
    from .regclient import RigClient   # local: only needed on failures

    client = RigClient(registry)
    name = repo.split("/", 1)[1]
    blobs = [("config", manifest.get("config") or {})] + \
        [(f"layer {i}", d) for i, d in enumerate(manifest.get("layers") or [])]
    for what, desc in blobs:
        digest = desc.get("digest", "")
        resp = client.get_blob(name, digest)
        if resp.status_code == 404:
            raise JudgeError(f"{target}: {what} blob {digest} is missing from repository {name} (404)")
        if resp.status_code != 200:
            raise JudgeError(f"{target}: {what} blob {digest} cannot be fetched: {resp.status_code}")
        actual = "sha256:" + hashlib.sha256(resp.content).hexdigest()
        if actual != digest:
            raise JudgeError(f"{target}: {what} blob {digest} hashes to {actual}")
        if len(resp.content) != desc.get("size"):
            raise JudgeError(f"{target}: {what} blob {digest} is {len(resp.content)} bytes but its "
                             f"descriptor says {desc.get('size')}")


# --- OCI layouts ---------------------------------------------------------------------------------
def judge_oci_layout(path: str, ref: str | None = None, platform: str | None = None, unpack: bool = True,
                     workdir: str | None = None) -> ImageReport:
    """Check an OCI image layout; ``ref`` picks index.json's entry by org.opencontainers.image.ref.name."""
    work = _workdir(workdir)
    what = f"OCI layout {path}"
    try:
        with open(os.path.join(path, "oci-layout")) as f:
            version = json.load(f).get("imageLayoutVersion")
    except (OSError, ValueError) as e:
        raise JudgeError(f"{what}: oci-layout file missing or not JSON: {e}") from e
    if version != "1.0.0":
        raise JudgeError(f"{what}: oci-layout says imageLayoutVersion {version!r}, not '1.0.0'")
    try:
        with open(os.path.join(path, "index.json"), "rb") as f:
            top = _parse_json(f.read(), f"{what}: index.json")
    except OSError as e:
        raise JudgeError(f"{what}: index.json missing: {e}") from e

    def blob_path(digest: str) -> str:
        algorithm, _, hexpart = digest.partition(":")
        return os.path.join(path, "blobs", algorithm, hexpart)

    entries = top.get("manifests") or []
    if ref is not None:
        chosen = [d for d in entries if (d.get("annotations") or {}).get("org.opencontainers.image.ref.name") == ref]
        if not chosen:
            names = [(d.get("annotations") or {}).get("org.opencontainers.image.ref.name") for d in entries]
            raise JudgeError(f"{what}: index.json has no entry named {ref!r} (names: {names})")
    else:
        chosen = entries
        if len(chosen) != 1:
            raise JudgeError(f"{what}: index.json has {len(chosen)} entries; pass ref= to pick one")
    desc = chosen[-1]
    index = index_digest = None
    while desc.get("mediaType") in INDEX_TYPES:
        check_blob(blob_path(desc["digest"]), desc["digest"], desc.get("size"), f"{what}: index")
        with open(blob_path(desc["digest"]), "rb") as f:
            index = _parse_json(f.read(), f"{what}: index {desc['digest']}")
        index_digest = desc["digest"]
        for entry in index.get("manifests") or []:
            check_blob(blob_path(entry.get("digest", "")), entry.get("digest", ""), entry.get("size"),
                       f"{what}: index {index_digest} entry")
        desc = select_manifest(index, platform, f"{what}: index {index_digest}")
    check_blob(blob_path(desc.get("digest", "")), desc.get("digest", ""), desc.get("size"), f"{what}: manifest")
    with open(blob_path(desc["digest"]), "rb") as f:
        manifest = _parse_json(f.read(), f"{what}: manifest {desc['digest']}")
    if desc.get("mediaType") and manifest.get("mediaType") and desc["mediaType"] != manifest["mediaType"]:
        raise JudgeError(f"{what}: descriptor says {desc['mediaType']} but manifest {desc['digest']} says "
                         f"{manifest['mediaType']}")
    config, layers = check_manifest_blobs(manifest, blob_path, work, f"{what}: manifest {desc['digest']}")
    rootfs = None
    if unpack:
        # a private layout holding just this manifest, so skopeo and umoci see exactly it
        single = os.path.join(work, "single")
        os.makedirs(os.path.join(single, "blobs"))
        shutil.copytree(os.path.join(path, "blobs"), os.path.join(single, "blobs"), dirs_exist_ok=True)
        shutil.copyfile(os.path.join(path, "oci-layout"), os.path.join(single, "oci-layout"))
        with open(os.path.join(single, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": [
                {**{k: v for k, v in desc.items() if k != "annotations"},
                 "mediaType": desc.get("mediaType") or manifest.get("mediaType") or OCI_MANIFEST,
                 "annotations": {"org.opencontainers.image.ref.name": "judge"}}]}, f)
        if manifest.get("mediaType") == DOCKER_MANIFEST or _has_zstd(layers):
            # umoci reads only OCI manifests and skopeo's oci: source skips Docker descriptors, so
            # hand skopeo a dir: copy to convert (digests change, fine for unpacking)
            rootfs = _umoci_unpack(f"dir:{_as_skopeo_dir(manifest, blob_path, desc['digest'], work)}", [],
                                   work, what, recompress=_has_zstd(layers))
        else:
            bundle = os.path.join(work, "bundle")
            _run(["umoci", "unpack", "--image", f"{single}:judge", bundle], f"{what}: umoci unpack")
            rootfs = os.path.join(bundle, "rootfs")
    return ImageReport(reference=ref, manifest=manifest, manifest_digest=desc["digest"],
                       manifest_media_type=manifest.get("mediaType"), config=config,
                       config_digest=manifest["config"]["digest"], layers=layers, index=index,
                       index_digest=index_digest, unpacked_rootfs=rootfs)


def _as_skopeo_dir(manifest: dict, blob_path: Callable[[str], str], manifest_digest: str, work: str) -> str:
    """skopeo's dir: transport layout (version, manifest.json, blobs named by hex) for one image."""
    d = os.path.join(work, "skopeo-dir")
    os.makedirs(d)
    with open(os.path.join(d, "version"), "w") as f:
        f.write("Directory Transport Version: 1.1\n")
    shutil.copyfile(blob_path(manifest_digest), os.path.join(d, "manifest.json"))
    for desc in [manifest["config"], *manifest["layers"]]:
        target = os.path.join(d, desc["digest"].split(":", 1)[1])
        if not os.path.exists(target):
            os.symlink(blob_path(desc["digest"]), target)
    return d


# --- docker load tarballs ------------------------------------------------------------------------
def judge_docker_tar(path: str, unpack: bool = True, workdir: str | None = None, image: int = 0) -> ImageReport:
    """Check a ``docker load`` tarball: manifest.json, RepoTags, config, layers (gzip or plain)."""
    work = _workdir(workdir)
    what = f"docker tarball {path}"
    extracted = os.path.join(work, "tar")
    try:
        with tarfile.open(path, "r:") as tf:
            names = tf.getnames()
            tf.extractall(extracted, filter="data")
    except (tarfile.TarError, OSError) as e:
        raise JudgeError(f"{what}: not a readable tar: {e}") from e
    if "manifest.json" not in [normalise(n) for n in names]:
        raise JudgeError(f"{what}: has no manifest.json (entries: {names[:10]})")
    with open(os.path.join(extracted, "manifest.json"), "rb") as f:
        entries = json.loads(f.read())
    if not isinstance(entries, list) or len(entries) <= image:
        raise JudgeError(f"{what}: manifest.json is not a list with an entry {image}")
    entry = entries[image]
    repo_tags = entry.get("RepoTags") or []
    if not isinstance(repo_tags, list) or not all(isinstance(t, str) and ":" in t for t in repo_tags):
        raise JudgeError(f"{what}: RepoTags {repo_tags!r} is not a list of name:tag strings")

    def member(name: str, role: str) -> str:
        p = os.path.join(extracted, normalise(name))
        if not name or not os.path.isfile(p):
            raise JudgeError(f"{what}: {role} {name!r} named by manifest.json is not in the tarball")
        return p

    config_name = entry.get("Config", "")
    config_path = member(config_name, "config")
    config_digest, _ = file_digest(config_path)
    named = _hex_in_name(config_name)
    if named and named != config_digest[7:]:
        raise JudgeError(f"{what}: config {config_name} hashes to {config_digest}")
    with open(config_path, "rb") as f:
        config = _parse_json(f.read(), f"{what}: config {config_name}")
    layer_names = entry.get("Layers") or []
    diff_ids = check_config(config, len(layer_names), f"{what}: config {config_name}")
    layers = []
    for i, name in enumerate(layer_names):
        p = member(name, f"layer {i}")
        digest, size = file_digest(p)
        report = check_layer(p, i, digest, size, None, None, diff_ids[i], work, f"{what}: layer {i} ({name})")
        named = _hex_in_name(name)
        if named and named not in (digest[7:], report.diff_id[7:]):
            raise JudgeError(f"{what}: layer {i} file {name} is named for sha256:{named} but hashes to "
                             f"{digest} (uncompressed {report.diff_id})")
        layers.append(report)
    # skopeo must read it too (it is what `docker load` compatible tools parse)
    _run(["skopeo", "inspect", "--raw", f"docker-archive:{path}"], f"{what}: skopeo inspect")
    rootfs = None
    if unpack:
        rootfs = _umoci_unpack(f"docker-archive:{path}", [], work, what, recompress=_has_zstd(layers))
    return ImageReport(reference=repo_tags[0] if repo_tags else None, manifest=entry, manifest_digest=None,
                       manifest_media_type=None, config=config, config_digest=config_digest, layers=layers,
                       repo_tags=repo_tags, unpacked_rootfs=rootfs)


def _hex_in_name(name: str) -> str | None:
    base = os.path.basename(name)
    base = base.split(":", 1)[1] if base.startswith("sha256:") else base
    for suffix in (".tar.gz", ".tar.zst", ".tar", ".json", ".gz"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base if _HEX64.match(base) else None

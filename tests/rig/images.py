"""Base images for tests, made from Debian packages by independent tools, never by kiln.

busybox: GNU tar makes the layer from the installed busybox-static (amd64) and the arm64 .deb
(``apt-get download`` with a private apt state; cached under /var/cache/kiln-tests), ``gzip -n`` /
``zstd`` compress, the OCI JSON is written by hand, skopeo pushes. debian: mmdebstrap + umoci,
cached as an OCI layout tarball. Broken images are pushed over plain HTTP (skopeo refuses them).
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field

from .registry import Registry
from .regclient import RigClient, sha256_digest

log = logging.getLogger(__name__)

CACHE_DIR = os.environ.get("KILN_TEST_CACHE", "/var/cache/kiln-tests")
EPOCH = 1704067200                       # 2024-01-01T00:00:00Z: every mtime in the base images
CREATED = "2024-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBIAN_MIRROR = os.environ.get("KILN_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
          "app:x:1000:1000:app:/home/app:/bin/sh\n")
GROUP = ("root:x:0:\n"
         "staff:x:50:app\n"           # app's supplementary group
         "app:x:1000:\n"
         "nogroup:x:65534:\n")

BROKEN_KINDS = ("wrong-diffid", "wrong-size", "truncated", "wrong-compression", "missing-blob")


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, **kwargs)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace") if isinstance(proc.stderr, bytes) else proc.stderr
        raise RuntimeError(f"{' '.join(argv)} failed with status {proc.returncode}: {err.strip()}")
    return proc


# --- the arm64 busybox binary --------------------------------------------------------------------
@contextlib.contextmanager
def _cache_lock(cache_dir: str, name: str):
    """Serialise cache fills between concurrent test sessions on the same machine."""
    os.makedirs(cache_dir, exist_ok=True)
    with open(os.path.join(cache_dir, f".{name}.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def arm64_busybox_deb(cache_dir: str = CACHE_DIR) -> str:
    """Path of busybox-static_*_arm64.deb, downloaded once with a private apt state and cached."""
    debs = os.path.join(cache_dir, "debs")
    pattern = os.path.join(debs, "busybox-static_*_arm64.deb")
    found = sorted(glob.glob(pattern))
    if found:
        return found[-1]
    with _cache_lock(cache_dir, "busybox-arm64"):
        found = sorted(glob.glob(pattern))
        if found:
            return found[-1]
        os.makedirs(debs, exist_ok=True)
        apt = tempfile.mkdtemp(prefix="apt-arm64-", dir=cache_dir)
        try:
            for d in ("lists/partial", "cache/archives/partial", "parts", "download"):
                os.makedirs(os.path.join(apt, d), exist_ok=True)
            with open(os.path.join(apt, "sources.list"), "w") as f:
                f.write(f"deb [arch=arm64 signed-by={KEYRING}] {DEBIAN_MIRROR} bookworm main\n")
            opts = ["-q", "-o", f"Dir::State::Lists={apt}/lists", "-o", f"Dir::Cache={apt}/cache",
                    "-o", f"Dir::Etc::SourceList={apt}/sources.list", "-o", f"Dir::Etc::SourceParts={apt}/parts",
                    "-o", "APT::Architectures::=arm64", "-o", "Debug::NoLocking=1",
                    "-o", "Acquire::Languages=none", "-o", "APT::Sandbox::User=root"]
            try:
                _run(["apt-get", *opts, "update"])
                _run(["apt-get", *opts, "download", "busybox-static:arm64"], cwd=os.path.join(apt, "download"))
            except RuntimeError as e:
                raise RuntimeError(f"could not download busybox-static:arm64 from {DEBIAN_MIRROR} (needs "
                                   f"Debian's archive once; later runs use the copy cached in {debs}): {e}") from e
            downloaded = glob.glob(os.path.join(apt, "download", "busybox-static_*_arm64.deb"))
            if not downloaded:
                raise RuntimeError(f"apt-get download left no busybox-static_*_arm64.deb in {apt}/download")
            final = os.path.join(debs, os.path.basename(downloaded[0]))
            os.replace(downloaded[0], final)     # atomic: other sessions never see a partial .deb
            return final
        finally:
            shutil.rmtree(apt, ignore_errors=True)


def _extract_busybox(deb: str, workdir: str) -> str:
    out = os.path.join(workdir, "deb-arm64")
    try:
        _run(["dpkg-deb", "-x", deb, out])
    except RuntimeError as e:
        raise RuntimeError(f"{e}\n(the cached {deb} may be damaged: delete it and it will be downloaded again)") from e
    path = os.path.join(out, "bin", "busybox")
    if not os.path.isfile(path):
        raise RuntimeError(f"{deb} holds no bin/busybox")
    return path


# --- layers, blobs, layout -----------------------------------------------------------------------
def make_busybox_rootfs(stage: str, busybox: str, applets: list[str]) -> None:
    """The staging tree: /bin/busybox + applet symlinks, /etc/passwd and group, /root, /home/app, /tmp."""
    os.makedirs(os.path.join(stage, "bin"))
    shutil.copyfile(busybox, os.path.join(stage, "bin", "busybox"))
    os.chmod(os.path.join(stage, "bin", "busybox"), 0o755)
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", os.path.join(stage, "bin", applet))
    os.makedirs(os.path.join(stage, "etc"))
    for name, text in (("passwd", PASSWD), ("group", GROUP)):
        with open(os.path.join(stage, "etc", name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(stage, "etc", name), 0o644)
    for d, mode, owner in (("root", 0o700, 0), ("home", 0o755, 0), ("home/app", 0o755, 1000),
                           ("tmp", 0o1777, 0)):
        os.makedirs(os.path.join(stage, d), exist_ok=True)
        os.chmod(os.path.join(stage, d), mode)
        os.chown(os.path.join(stage, d), owner, owner)
    for d in ("bin", "etc"):
        os.chmod(os.path.join(stage, d), 0o755)
    os.chmod(stage, 0o755)


def tar_dir(stage: str, out: str) -> None:
    """GNU tar, reproducible: sorted names, fixed mtimes, numeric owners, no './' prefix."""
    entries = sorted(os.listdir(stage))
    _run(["tar", "--sort=name", f"--mtime=@{EPOCH}", "--numeric-owner", "--format=gnu",
          "-C", stage, "-cf", out, *entries])


@dataclass
class Layout:
    """An OCI image layout we write by hand (blobs + index.json with ref names)."""

    path: str
    refs: dict[str, dict] = field(default_factory=dict)   # ref name -> descriptor

    def __post_init__(self) -> None:
        os.makedirs(os.path.join(self.path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(self.path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)

    def add_blob(self, data: bytes) -> tuple[str, int]:
        digest = sha256_digest(data)
        with open(os.path.join(self.path, "blobs", "sha256", digest[7:]), "wb") as f:
            f.write(data)
        return digest, len(data)

    def add_file_blob(self, src: str) -> tuple[str, int]:
        h = hashlib.sha256()
        with open(src, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = "sha256:" + h.hexdigest()
        shutil.copyfile(src, os.path.join(self.path, "blobs", "sha256", digest[7:]))
        return digest, os.path.getsize(src)

    def add_json(self, obj: dict) -> tuple[str, int]:
        return self.add_blob(json.dumps(obj, separators=(",", ":"), sort_keys=True).encode())

    def tag(self, name: str, descriptor: dict) -> None:
        self.refs[name] = {**descriptor, "annotations": {"org.opencontainers.image.ref.name": name}}
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(self.refs.values())}, f)


def _compress(tar_path: str, compression: str) -> str:
    if compression == "gzip":
        out = tar_path + ".gz"
        with open(out, "wb") as f:
            subprocess.run(["gzip", "-n", "-6", "-c", tar_path], stdout=f, check=True)
    elif compression == "zstd":
        out = tar_path + ".zst"
        _run(["zstd", "-q", "-3", "-f", "-o", out, tar_path])
    else:
        raise ValueError(f"unknown compression {compression!r}")
    return out


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def add_image(layout: Layout, tar_path: str, arch: str, compression: str = "gzip",
              variant: str | None = None, comment: str = "") -> dict:
    """One single-layer image from an uncompressed tar; returns the manifest descriptor."""
    blob = _compress(tar_path, compression)
    layer_digest, layer_size = layout.add_file_blob(blob)
    config = {"created": CREATED, "architecture": arch, "os": "linux",
              "config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": [_file_sha256(tar_path)]},
              "history": [{"created": CREATED, "created_by": f"kiln test rig: {comment} (GNU tar)"}]}
    if variant:
        config["variant"] = variant
    config_digest, config_size = layout.add_json(config)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
                "layers": [{"mediaType": LAYER_GZIP if compression == "gzip" else LAYER_ZSTD,
                            "digest": layer_digest, "size": layer_size}]}
    digest, size = layout.add_json(manifest)
    platform = {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": size, "platform": platform}


def build_busybox_layout(workdir: str) -> Layout:
    """Layout with refs amd64, arm64, zstd (amd64, zstd layer) and latest (index amd64 + arm64/v8)."""
    os.makedirs(workdir, exist_ok=True)
    host_busybox = shutil.which("busybox") or "/bin/busybox"
    applets = sorted(set(_run([host_busybox, "--list"], text=True).stdout.split()))
    arm64_binary = _extract_busybox(arm64_busybox_deb(), workdir)
    layout = Layout(os.path.join(workdir, "busybox-layout"))
    descriptors = {}
    for arch, binary, variant in (("amd64", host_busybox, None), ("arm64", arm64_binary, "v8")):
        stage = os.path.join(workdir, f"stage-{arch}")
        make_busybox_rootfs(stage, binary, applets)
        tar_path = os.path.join(workdir, f"busybox-{arch}.tar")
        tar_dir(stage, tar_path)
        descriptors[arch] = add_image(layout, tar_path, arch, "gzip", variant, f"busybox-static {arch}")
        layout.tag(arch, descriptors[arch])
        if arch == "amd64":
            layout.tag("zstd", add_image(layout, tar_path, arch, "zstd", None, "busybox-static amd64 zstd"))
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptors["amd64"], descriptors["arm64"]]}
    digest, size = layout.add_json(index)
    layout.tag("latest", {"mediaType": OCI_INDEX, "digest": digest, "size": size})
    return layout


# --- pushing -------------------------------------------------------------------------------------
def skopeo_copy(src: str, dest: str, *args: str) -> None:
    _run(["skopeo", "copy", "-q", "--retry-times=2", *args, src, dest])


def push_busybox(layout: Layout, registry: Registry) -> dict[str, str]:
    refs = {"busybox_index": registry.ref("base/busybox:latest"),
            "busybox_amd64": registry.ref("base/busybox:amd64"),
            "busybox_arm64": registry.ref("base/busybox:arm64"),
            "busybox_zstd": registry.ref("base/busybox:zstd"),
            "busybox_docker": registry.ref("base/busybox:docker"),
            "busybox_docker_list": registry.ref("base/busybox:docker-list")}
    dest = registry.skopeo_args("dest")
    skopeo_copy(f"oci:{layout.path}:latest", f"docker://{refs['busybox_index']}", "--all",
                "--preserve-digests", *dest)
    for tag in ("amd64", "arm64", "zstd"):
        skopeo_copy(f"oci:{layout.path}:{tag}", f"docker://{refs['busybox_' + tag]}", "--preserve-digests", *dest)
    skopeo_copy(f"oci:{layout.path}:amd64", f"docker://{refs['busybox_docker']}", "--format", "v2s2", *dest)
    skopeo_copy(f"oci:{layout.path}:latest", f"docker://{refs['busybox_docker_list']}", "--all", "--format", "v2s2",
                *dest)
    return refs


def push_broken(registry: Registry, workdir: str) -> dict[str, str]:
    """One image per kind of damage in BROKEN_KINDS, pushed over HTTP; returns kind -> reference."""
    stage = os.path.join(workdir, "stage-broken")
    os.makedirs(os.path.join(stage, "etc"), exist_ok=True)
    with open(os.path.join(stage, "etc", "broken"), "w") as f:
        f.write("this image is broken on purpose\n" * 200)
    tar_path = os.path.join(workdir, "broken.tar")
    tar_dir(stage, tar_path)
    with open(tar_path, "rb") as f:
        tar_bytes = f.read()
    with open(_compress(tar_path, "gzip"), "rb") as f:
        gz = f.read()
    with open(_compress(tar_path, "zstd"), "rb") as f:
        zst = f.read()
    diff_id = sha256_digest(tar_bytes)
    client = RigClient(registry)
    refs: dict[str, str] = {}
    for kind in BROKEN_KINDS:
        repo = f"broken/{kind}"
        blob, media_type, layer_diff_id, size_delta = gz, LAYER_GZIP, diff_id, 0
        if kind == "wrong-diffid":
            layer_diff_id = sha256_digest(b"not the layer")
        elif kind == "wrong-size":
            size_delta = 7
        elif kind == "truncated":
            blob = gz[: len(gz) // 2]
        elif kind == "wrong-compression":
            blob = zst
        config = {"created": CREATED, "architecture": "amd64", "os": "linux", "config": {"Env": [PATH_ENV]},
                  "rootfs": {"type": "layers", "diff_ids": [layer_diff_id]},
                  "history": [{"created": CREATED, "created_by": f"kiln test rig: broken ({kind})"}]}
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = client.upload_blob(repo, config_bytes)
        layer_digest = client.upload_blob(repo, blob)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
                    "layers": [{"mediaType": media_type, "digest": layer_digest, "size": len(blob) + size_delta}]}
        client.put_manifest(repo, "latest", json.dumps(manifest, sort_keys=True).encode(), OCI_MANIFEST)
        if kind == "missing-blob":
            client.delete_blob(repo, layer_digest)   # the manifest now names a blob the repository lacks
        refs[kind] = registry.ref(f"{repo}:latest")
    return refs


@dataclass
class BaseImages:
    """Full references of the session's base images on the plain registry."""

    registry: Registry
    layout_path: str               # the OCI layout they were pushed from (refs amd64, arm64, zstd, latest)
    busybox_index: str             # OCI index: linux/amd64 + linux/arm64/v8
    busybox_amd64: str             # the amd64 OCI manifest alone
    busybox_arm64: str             # the arm64/v8 OCI manifest alone
    busybox_zstd: str              # amd64, zstd layer
    busybox_docker: str            # amd64 as Docker schema 2
    busybox_docker_list: str       # the index as a Docker manifest list of two schema 2 manifests
    broken: dict[str, str]         # kind -> reference (see BROKEN_KINDS)

    def copy_image(self, src_ref: str, registry: Registry, repo_tag: str) -> str:
        """skopeo copy --all from the plain registry to ``registry``; returns the new full reference."""
        return copy_image(src_ref, self.registry, registry, repo_tag)


def copy_image(src_ref: str, src_registry: Registry, registry: Registry, repo_tag: str) -> str:
    dest = registry.ref(repo_tag)
    skopeo_copy(f"docker://{src_ref}", f"docker://{dest}", "--all", "--preserve-digests",
                *src_registry.skopeo_args("src"), *registry.skopeo_args("dest"))
    return dest


def make_base_images(registry: Registry, workdir: str) -> BaseImages:
    t0 = time.monotonic()
    os.makedirs(workdir, exist_ok=True)
    layout = build_busybox_layout(workdir)
    refs = push_busybox(layout, registry)
    broken = push_broken(registry, workdir)
    log.info("base images ready in %.1fs", time.monotonic() - t0)
    return BaseImages(registry=registry, layout_path=layout.path, broken=broken, **refs)


# --- debian:bookworm -----------------------------------------------------------------------------
def debian_layout_tarball(cache_dir: str = CACHE_DIR) -> str:
    """An OCI layout (ref "bookworm") of ``mmdebstrap --variant=minbase bookworm``, as a cached tarball."""
    cached = os.path.join(cache_dir, "debian-bookworm-minbase.oci.tar")
    if os.path.exists(cached):
        return cached
    with _cache_lock(cache_dir, "debian-bookworm"):
        if os.path.exists(cached):
            return cached
        _build_debian_layout_tarball(cache_dir, cached)
    return cached


def _build_debian_layout_tarball(cache_dir: str, cached: str) -> None:
    work = os.path.join(cache_dir, f"debian-build-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    try:
        rootfs_tar = os.path.join(work, "rootfs.tar")
        try:
            _run(["mmdebstrap", "--quiet", "--variant=minbase", "--mode=root", "--format=tar",
                  "bookworm", rootfs_tar, DEBIAN_MIRROR], env={**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)})
        except RuntimeError as e:
            raise RuntimeError(f"mmdebstrap could not build debian:bookworm from {DEBIAN_MIRROR} "
                               f"(needs Debian's archive once; cached afterwards as {cached}): {e}") from e
        layout = os.path.join(work, "layout")
        _run(["umoci", "init", "--layout", layout])
        _run(["umoci", "new", "--image", f"{layout}:bookworm"])
        _run(["umoci", "raw", "add-layer", "--image", f"{layout}:bookworm",
              "--history.created", CREATED, "--history.created_by", "mmdebstrap --variant=minbase bookworm",
              rootfs_tar])
        _run(["umoci", "config", "--image", f"{layout}:bookworm", "--created", CREATED, "--no-history",
              "--config.env", PATH_ENV, "--config.cmd", "bash", "--architecture", "amd64", "--os", "linux"])
        _run(["umoci", "gc", "--layout", layout])
        tmp = cached + f".{os.getpid()}.tmp"
        with tarfile.open(tmp, "w") as tf:
            tf.add(layout, arcname="layout")
        os.replace(tmp, cached)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def push_debian(registry: Registry, workdir: str) -> str:
    tarball = debian_layout_tarball()
    os.makedirs(workdir, exist_ok=True)
    try:
        with tarfile.open(tarball) as tf:
            tf.extractall(workdir, filter="tar")
    except (tarfile.TarError, OSError) as e:
        raise RuntimeError(f"cannot read the cached debian layout {tarball}: {e} (delete it and it will be "
                           "rebuilt with mmdebstrap)") from e
    ref = registry.ref("base/debian:bookworm")
    skopeo_copy(f"oci:{os.path.join(workdir, 'layout')}:bookworm", f"docker://{ref}", *registry.skopeo_args("dest"))
    return ref

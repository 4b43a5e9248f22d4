"""Helpers for the tests that build kiln's executor image WITH KILN and run it under runc as a pod would.

* ``kiln_built_image(plain_registry, target)``: ``python -m executor`` on the host (scratch root, sandboxed: the
  machine's / read-only) builds ``Containerfile`` (``--target executor`` or ``debug``) from the builder base of
  ``scripts/executor-image/make-builder-base.sh``, pushes it to the rig's plain registry, copies it to an OCI
  layout cached under /var/cache/kiln-tests/kiln-selfbuilt/KEY (KEY: a hash of every input: Containerfile,
  scripts/executor-image, pyproject.toml, executor/, snapshot/, the builder base's digest), and unpacks it with
  umoci. Memoised per session and target.
* ``Pod``: a runc bundle made from ``runc spec`` and edited (image env/cwd/entrypoint from the unpacked image,
  args, env, bind mounts, an exact capability set, the host's network), run as PID 1 on a fresh copy of the
  image's root file system; ``start()``/``wait()``/``kill()``/``run()``; always ``runc delete --force``d.
  Hardened (``Pod.hardened(...)``, what deploy/kubernetes/build-job-hardened.yaml asks of a cluster): a user
  namespace mapping container ids 0..65535 to host ids 100000..165535 (``hostUsers: false``; runc 1.1 cannot
  idmap the root file system, so the pod runs on a copy of the image chowned into that range, shared by the
  session's pods as the lower layer of an overlay; read-write bind mounts are chowned into it as the kubelet
  makes volumes the pod's), containers-common's default seccomp profile converted for the pod's capability
  set (``seccompProfile: RuntimeDefault``; tests/rig/seccomp.py), no_new_privs as allowPrivilegeEscalation says.

The runc state lives under /run/runc-kiln-tests (runc's default /run/runc is shared with other work).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MAKE_BASE = os.path.join(REPO, "scripts", "executor-image", "make-builder-base.sh")
CACHE = os.path.join(os.environ.get("KILN_CACHE_DIR", "/var/cache/kiln-tests"), "kiln-selfbuilt")
RUNC_ROOT = "/run/runc/kiln-tests"
# A pod with `hostUsers: false`: its ids 0..65535 are host ids 100000..165535, which no host account owns.
HOST_ID_BASE = 100000
ID_RANGE = 65536

# Docker's and containerd's default container capabilities (what kaniko gets in a pod without a securityContext).
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


def run(cmd, **kw):
    kw.setdefault("check", True)
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    try:
        return subprocess.run(cmd, **kw)
    except subprocess.CalledProcessError as e:
        raise AssertionError(f"{cmd[:4]}... failed ({e.returncode}):\n{e.stdout[-4000:]}\n{e.stderr[-4000:]}")


# ---------------------------------------------------------------------------------------------- the image


def _inputs_hash(builder_digest: str) -> str:
    h = hashlib.sha256(b"kiln-selfbuilt v1\n" + builder_digest.encode() + b"\n")
    files = [os.path.join(REPO, "Containerfile"), os.path.join(REPO, "pyproject.toml")]
    for top in ("scripts/executor-image", "executor", "snapshot"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, top)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            files += [os.path.join(dirpath, n) for n in sorted(filenames) if not n.endswith(".pyc")]
    for f in files:
        h.update(os.path.relpath(f, REPO).encode() + b"\0")
        with open(f, "rb") as fh:
            h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()[:20]


@dataclass
class KilnImage:
    target: str
    layout: str            # OCI layout (cached), tag = target
    bundle: str            # umoci unpack of it (rootfs + config.json)
    manifest: dict
    built_now: bool        # False: taken from the cache (built by this very kiln source in an earlier session)
    build_seconds: float
    build_log: str

    @property
    def compressed(self) -> int:
        return sum(layer["size"] for layer in self.manifest["layers"])

    @property
    def unpacked(self) -> int:
        total = 0
        for dirpath, _, filenames in os.walk(os.path.join(self.bundle, "rootfs")):
            total += sum(os.lstat(os.path.join(dirpath, n)).st_size for n in filenames)
        return total

    def image_config(self) -> dict:
        with open(os.path.join(self.bundle, "config.json")) as f:
            return json.load(f)


_BUILT: dict[tuple[str, str], KilnImage] = {}
_BASE: dict[str, tuple[str, str]] = {}


def builder_base(plain_registry) -> tuple[str, str]:
    """(ref, manifest digest) of the builder base on the plain registry (make-builder-base.sh; cached layout)."""
    if plain_registry.host not in _BASE:
        ref = run([MAKE_BASE, plain_registry.host]).stdout.strip().splitlines()[-1]
        digest = json.loads(run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"]).stdout)["Digest"]
        _BASE[plain_registry.host] = (ref, digest)
    return _BASE[plain_registry.host]


def kiln_build_containerfile(plain_registry, target: str, destination: str, workdir: str,
                             timeout: float = 900) -> tuple[subprocess.CompletedProcess, float]:
    """kiln on the host, scratch root, / read-only: builds Containerfile --target TARGET and pushes it."""
    from tests.rig.sandbox import run_sandboxed

    ref, _ = builder_base(plain_registry)
    root = tempfile.mkdtemp(prefix=f"root-{target}-", dir=workdir)
    kdir = tempfile.mkdtemp(prefix=f"kaniko-{target}-", dir=workdir)
    argv = [sys.executable, "-m", "executor", "--root", root, "--kaniko-dir", kdir, "--context", REPO,
            "--dockerfile", "Containerfile", "--build-arg", f"BUILDER_IMAGE={ref}", "--target", target,
            "--destination", destination, "--insecure-registry", plain_registry.host, "--log-format", "text"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_REGISTRY", "DOCKER_CONFIG"))}
    env["PYTHONPATH"] = REPO
    t0 = time.monotonic()
    try:
        proc = run_sandboxed(argv, writable=[root, kdir], env=env, cwd=REPO, timeout=timeout)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(kdir, ignore_errors=True)
    return proc, time.monotonic() - t0


def _prune(target: str, keep: str, newest: int = 4) -> None:
    """Every source change makes a new cache entry (~25 MB): keep the newest few per target."""
    entries = [os.path.join(CACHE, n) for n in os.listdir(CACHE) if n.startswith(target + "-")]
    entries.sort(key=lambda p: os.stat(p).st_mtime, reverse=True)
    for old in entries[newest:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def kiln_built_image(plain_registry, target: str, workdir: str) -> KilnImage:
    """The executor image (TARGET executor or debug) built by kiln, cached by the hash of its inputs. The first
    call builds both targets at once (two kiln processes; the suite needs both, the machine has two cores)."""
    key = (plain_registry.host, target)
    if key not in _BUILT:
        from concurrent.futures import ThreadPoolExecutor

        builder_base(plain_registry)
        targets = [t for t in ("executor", "debug") if (plain_registry.host, t) not in _BUILT]
        with ThreadPoolExecutor(len(targets)) as pool:
            for f in [pool.submit(_kiln_built_image, plain_registry, t, str(workdir)) for t in targets]:
                f.result()
    return _BUILT[key]


def _kiln_built_image(plain_registry, target: str, workdir: str) -> KilnImage:
    key = (plain_registry.host, target)
    _, base_digest = builder_base(plain_registry)
    h = _inputs_hash(base_digest)
    cached = os.path.join(CACHE, f"{target}-{h}")
    built_now, seconds, log = False, 0.0, ""
    if os.environ.get("KILN_REBUILD_EXECUTOR_IMAGE") == "1" or not os.path.exists(os.path.join(cached, "index.json")):
        dest = plain_registry.ref(f"kiln/executor-selfbuilt:{target}-{h[:12]}")
        proc, seconds = kiln_build_containerfile(plain_registry, target, dest, workdir)
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"kiln failed to build its own Containerfile (--target {target}):\n{log[-6000:]}"
        os.makedirs(CACHE, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".layout-", dir=CACHE)
        run(["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{dest}", f"oci:{tmp}/l:{target}"])
        with open(os.path.join(tmp, "l", "kiln-build.log"), "w") as f:
            f.write(log)
        shutil.rmtree(cached, ignore_errors=True)
        os.rename(os.path.join(tmp, "l"), cached)
        shutil.rmtree(tmp, ignore_errors=True)
        built_now = True
        _prune(target, keep=cached)
    else:
        with open(os.path.join(cached, "kiln-build.log")) as f:
            log = f.read()
    with open(os.path.join(cached, "index.json")) as f:
        (desc,) = json.load(f)["manifests"]
    with open(os.path.join(cached, "blobs", "sha256", desc["digest"].split(":")[1])) as f:
        manifest = json.load(f)
    bundle = tempfile.mkdtemp(prefix=f"kiln-image-{target}-", dir=workdir)
    os.rmdir(bundle)
    run(["umoci", "unpack", "--image", f"{cached}:{target}", bundle])
    img = KilnImage(target, cached, bundle, manifest, built_now, seconds, log)
    _BUILT[key] = img
    print(f"\nkiln-built {target} image: {'built in %.0fs' % seconds if built_now else 'from cache ' + cached}; "
          f"{img.compressed / 1e6:.1f} MB compressed, {img.unpacked / 1e6:.1f} MB unpacked")
    return img


# ---------------------------------------------------------------------------------------------- runc


@dataclass
class Mount:
    source: str
    destination: str
    rw: bool = False
    owner: tuple[int, int] | None = None     # the volume's owner in the container (a pod's fsGroup); None: root


def _shift(path: str, st: os.stat_result, base: int, owner: tuple[int, int] | None) -> None:
    """One entry's owner moved into the pod's host range, or made `owner` (its setuid/setgid bits, which chown
    clears, kept)."""
    if owner is not None:
        uid, gid = owner[0] + base, owner[1] + base
    elif st.st_uid >= HOST_ID_BASE and st.st_gid >= HOST_ID_BASE:
        return
    else:
        uid, gid = st.st_uid % HOST_ID_BASE + base, st.st_gid % HOST_ID_BASE + base
    os.lchown(path, uid, gid)
    if not os.path.islink(path) and st.st_mode & 0o6000:
        os.chmod(path, st.st_mode & 0o7777)


def shift_tree(top: str, owner: tuple[int, int] | None = None, base: int = HOST_ID_BASE) -> None:
    """chown -R of a test's own directory (or file) into the pod's host id range (base 0: no user namespace),
    every entry to `owner` when given."""
    _shift(top, os.lstat(top), base, owner)
    if os.path.isdir(top) and not os.path.islink(top):
        for dirpath, dirnames, filenames in os.walk(top):
            for n in dirnames + filenames:
                path = os.path.join(dirpath, n)
                _shift(path, os.lstat(path), base, owner)


def traversable(path: str) -> None:
    """runc 1.1 mounts a user-namespaced pod's root and volumes from inside its user namespace, as host uid
    100000: every directory above them must let others pass (pytest's base directories are 0700; o+x only,
    nothing becomes listable)."""
    path = os.path.abspath(path)
    while path != "/":
        path = os.path.dirname(path)
        mode = os.stat(path).st_mode
        if not mode & 0o001:
            os.chmod(path, (mode & 0o7777) | 0o001)


_SHIFTED: dict[str, str] = {}


def shifted_rootfs(image: KilnImage) -> str:
    """The image's root file system owned by the pod's host id range (container root = host 100000): runc 1.1
    cannot idmap a root file system, so the session's user-namespaced pods share this copy as their lower layer."""
    if image.bundle not in _SHIFTED:
        dest = image.bundle + "-userns-rootfs"
        shutil.rmtree(dest, ignore_errors=True)
        run(["cp", "-a", os.path.join(image.bundle, "rootfs"), dest])
        shift_tree(dest)
        _SHIFTED[image.bundle] = dest
    return _SHIFTED[image.bundle]


@dataclass
class Pod:
    """One container: a runc bundle from `runc spec`, edited; PID 1 = args (default: the image's entrypoint)."""
    image: KilnImage
    workdir: str
    args: list[str] | None = None                 # full argv; None: the image's entrypoint + extra_args
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)   # added to the image's environment
    mounts: list[Mount] = field(default_factory=list)
    caps: list[str] = field(default_factory=lambda: list(DEFAULT_CAPS))
    cwd: str | None = None
    no_new_privileges: bool = False
    kubelet_files: bool = True                    # /etc/hosts, /etc/resolv.conf, /etc/hostname as kubelet mounts
    # the root file system: an overlay mount over the unpacked image (as containerd's overlayfs snapshotter
    # gives a pod; no copy) instead of a copy of it
    overlay_rootfs: bool = False
    userns: bool = False                          # hostUsers: false (see the module's docstring)
    seccomp: bool = False                         # seccompProfile: RuntimeDefault (containers-common's profile)
    readonly_rootfs: bool = False                 # readOnlyRootFilesystem: true
    user: tuple[int, int] = (0, 0)                # runAsUser, runAsGroup
    cid: str = field(default_factory=lambda: "kiln-t-" + uuid.uuid4().hex[:10])
    proc: subprocess.Popen | None = None
    bundle: str = ""

    def prepare(self) -> str:
        self.bundle = tempfile.mkdtemp(prefix="pod-", dir=self.workdir)
        rootfs = os.path.join(self.bundle, "rootfs")
        lower = shifted_rootfs(self.image) if self.userns else os.path.join(self.image.bundle, "rootfs")
        if self.userns:
            traversable(rootfs)
            traversable(lower)
        if self.overlay_rootfs:
            upper, work = os.path.join(self.bundle, "upper"), os.path.join(self.bundle, "work")
            for d in (rootfs, upper, work):
                os.makedirs(d)
            st = os.stat(lower)      # the overlay's / takes the upper directory's owner and mode
            os.chown(upper, st.st_uid, st.st_gid)
            os.chmod(upper, st.st_mode & 0o7777)
            run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper},workdir={work}", rootfs])
        else:
            run(["cp", "-a", lower, rootfs])
        run(["runc", "spec", "--bundle", self.bundle])
        with open(os.path.join(self.bundle, "config.json")) as f:
            cfg = json.load(f)
        img = self.image.image_config()["process"]
        env = dict(e.split("=", 1) for e in img["env"])
        env.update(self.env)
        p = cfg["process"]
        p["terminal"] = False
        p["args"] = list(self.args) if self.args is not None else list(img["args"]) + list(self.extra_args)
        p["env"] = [f"{k}={v}" for k, v in env.items()]
        p["cwd"] = self.cwd or img.get("cwd") or "/"
        p["user"] = {"uid": self.user[0], "gid": self.user[1]}
        caps = [c if c.startswith("CAP_") else "CAP_" + c for c in self.caps]
        # as containerd/CRI-O give them: a non-root user's effective and permitted sets are empty
        p["capabilities"] = {"bounding": caps, "effective": caps if self.user[0] == 0 else [],
                             "permitted": caps if self.user[0] == 0 else []}
        p["noNewPrivileges"] = self.no_new_privileges
        cfg["root"] = {"path": "rootfs", "readonly": self.readonly_rootfs}
        if self.seccomp:
            from tests.rig.seccomp import default_profile
            cfg["linux"]["seccomp"] = default_profile(caps)
        if self.userns:
            cfg["linux"]["namespaces"].append({"type": "user"})
            cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_ID_BASE, "size": ID_RANGE}]
            cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_ID_BASE, "size": ID_RANGE}]
            for m in cfg["mounts"]:
                if m["destination"] == "/sys":   # sysfs needs its own network namespace; the pod shares the host's
                    m.update({"type": "none", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
        cfg["hostname"] = self.cid
        # The host's network namespace (127.0.0.1 registries, Debian's archive), as --network host.
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"]
        # Docker's default device rule: mknod of any device node is allowed (base images hold /dev entries).
        cfg["linux"]["resources"]["devices"] = [{"allow": False, "access": "rwm"},
                                                 {"allow": True, "type": "c", "access": "m"},
                                                 {"allow": True, "type": "b", "access": "m"}]
        mounts = list(self.mounts)
        if self.kubelet_files:
            etc = os.path.join(self.bundle, "kubelet")
            os.makedirs(etc)
            shutil.copy("/etc/resolv.conf", os.path.join(etc, "resolv.conf"))
            with open(os.path.join(etc, "hosts"), "w") as f:
                f.write("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
            with open(os.path.join(etc, "hostname"), "w") as f:
                f.write(self.cid + "\n")
            mounts += [Mount(os.path.join(etc, n), f"/etc/{n}", rw=True) for n in ("hosts", "resolv.conf", "hostname")]
        for i, m in enumerate(mounts):
            source = str(m.source)
            if self.userns:     # the kubelet makes a user-namespaced pod's volumes its own (idmapped mounts)
                if not m.rw:    # a copy: the rig's shared files stay as they are
                    copy = os.path.join(self.bundle, "volumes", str(i))
                    os.makedirs(os.path.dirname(copy), exist_ok=True)
                    run(["cp", "-a", source, copy])
                    source = copy
                shift_tree(source, m.owner)
                traversable(source)
            elif m.owner is not None:
                shift_tree(source, m.owner, base=0)
            cfg["mounts"].append({"destination": m.destination, "type": "bind", "source": source,
                                  "options": ["rbind", "rw" if m.rw else "ro"]})
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        return self.bundle

    def start(self) -> "Pod":
        if not self.bundle:
            self.prepare()
        os.makedirs(RUNC_ROOT, exist_ok=True)
        self.out = open(os.path.join(self.bundle, "stdout"), "w+")
        self.err = open(os.path.join(self.bundle, "stderr"), "w+")
        self.proc = subprocess.Popen(["runc", "--root", RUNC_ROOT, "run", "--bundle", self.bundle, self.cid],
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err)
        return self

    def state(self) -> dict | None:
        p = subprocess.run(["runc", "--root", RUNC_ROOT, "state", self.cid], capture_output=True, text=True)
        return json.loads(p.stdout) if p.returncode == 0 else None

    def pids(self) -> list[int]:
        p = subprocess.run(["runc", "--root", RUNC_ROOT, "ps", "--format", "json", self.cid],
                           capture_output=True, text=True)
        return json.loads(p.stdout or "null") or [] if p.returncode == 0 else []

    def signal(self, sig: str = "TERM") -> None:
        run(["runc", "--root", RUNC_ROOT, "kill", self.cid, sig])

    def wait(self, timeout: float) -> subprocess.CompletedProcess:
        assert self.proc is not None
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.delete()
            raise
        self.out.seek(0)
        self.err.seek(0)
        return subprocess.CompletedProcess(self.proc.args, rc, self.out.read(), self.err.read())

    def delete(self) -> None:
        subprocess.run(["runc", "--root", RUNC_ROOT, "delete", "--force", self.cid], capture_output=True)
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self) -> None:
        self.delete()
        for f in (getattr(self, "out", None), getattr(self, "err", None)):
            if f:
                f.close()
        if self.overlay_rootfs and self.bundle:
            rootfs = os.path.join(self.bundle, "rootfs")
            if os.path.ismount(rootfs):
                run(["umount", rootfs])
            for d in ("upper", "work"):
                shutil.rmtree(os.path.join(self.bundle, d), ignore_errors=True)
        shutil.rmtree(os.path.join(self.bundle, "rootfs"), ignore_errors=True)
        shutil.rmtree(os.path.join(self.bundle, "volumes"), ignore_errors=True)

    def run(self, timeout: float = 300) -> subprocess.CompletedProcess:
        """Start, wait, and always delete the container; -> returncode, stdout, stderr."""
        try:
            self.start()
            return self.wait(timeout)
        finally:
            self.cleanup()


def docker_config_dir(workdir: str, auths: dict[str, tuple[str, str]]) -> str:
    """A directory holding only config.json with these auths (what the secret volume holds)."""
    import base64
    d = tempfile.mkdtemp(prefix="docker-config-", dir=workdir)
    os.chmod(d, 0o755)     # as the kubelet makes a secret volume: readable by the pod's user, whoever it is
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"auths": {h: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()}
                             for h, (u, p) in auths.items()}}, f)
    return d


def context_dir(workdir: str, files: dict[str, str]) -> str:
    d = tempfile.mkdtemp(prefix="ctx-", dir=workdir)
    for name, text in files.items():
        path = os.path.join(d, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    return d

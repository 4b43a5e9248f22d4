"""End to end: the executor image (Containerfile) built by buildah from a builder base made of Debian
packages, pushed to a real registry, unpacked by umoci and run by runc as PID 1 in an otherwise empty root.

Slow: 80-200 s measured on the 2-core machine (depending on its load), most of it two buildah builds, plus
~30-45 s of mmdebstrap the first time (the builder base is cached under /var/cache/kiln-tests). Needs PyPI
and Debian's archive. Skipped only when KILN_SKIP_SLOW=1.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
import uuid
import zipfile

import pytest

from tests.test_executor_image.kilnimage import run

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MAKE_BASE = os.path.join(REPO, "scripts", "executor-image", "make-builder-base.sh")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("KILN_SKIP_SLOW") == "1", reason="KILN_SKIP_SLOW=1"),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("executor-image")


@pytest.fixture(scope="module")
def registry(plain_registry):
    """The rig's plain registry (127.0.0.1, its own config, stopped by PID at the end of the session)."""
    return plain_registry.host


@pytest.fixture(scope="module")
def builder_base(registry):
    ref = run([MAKE_BASE, registry]).stdout.strip().splitlines()[-1]
    yield ref
    # buildah keeps what it pulled (tagged with this run's registry port): drop it.
    subprocess.run(["buildah", "rmi", "--storage-driver", "vfs", ref], capture_output=True)


def build_and_unpack(registry, builder_base, work, target):
    """buildah bud --target TARGET, push, skopeo copy to an OCI layout, umoci unpack. -> (manifest, bundle)."""
    tag = f"{registry}/kiln/executor:{target}-{uuid.uuid4().hex[:8]}"
    common = ["--storage-driver", "vfs"]
    t0 = time.monotonic()
    run(["buildah", "bud", *common, "--isolation", "chroot", "--tls-verify=false", "--pull-always",
         "--build-arg", f"BUILDER_IMAGE={builder_base}", "--target", target, "-t", tag,
         "-f", os.path.join(REPO, "Containerfile"), REPO])
    try:
        run(["buildah", "push", *common, "--tls-verify=false", tag])
    finally:
        subprocess.run(["buildah", "rmi", *common, tag], capture_output=True)
    manifest = json.loads(run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{tag}"]).stdout)
    layout, bundle = work / f"oci-{target}", work / f"bundle-{target}"
    run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{tag}", f"oci:{layout}:{target}"])
    run(["umoci", "unpack", "--image", f"{layout}:{target}", str(bundle)])
    print(f"{target}: built, pushed and unpacked in {time.monotonic() - t0:.0f}s")
    return manifest, bundle


@pytest.fixture(scope="module")
def executor_image(registry, builder_base, work):
    return build_and_unpack(registry, builder_base, work, "executor")


@pytest.fixture(scope="module")
def debug_image(registry, builder_base, work):
    return build_and_unpack(registry, builder_base, work, "debug")


@pytest.fixture(scope="module")
def foreign_root(builder_base, work):
    """A real Debian root (the builder base: glibc, libssl, a python3.11 of its own) with hostile extras: an
    /etc/ld.so.preload naming a real library, and a user site-packages that would shadow zstandard."""
    bundle = work / "foreign-bundle"
    layout = work / "foreign-oci"
    run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{builder_base}", f"oci:{layout}:base"])
    run(["umoci", "unpack", "--image", f"{layout}:base", str(bundle)])
    src, root = bundle / "rootfs", work / "foreign"
    root.mkdir()
    for name in ("bin", "lib", "lib64", "sbin", "etc", "root"):
        p = src / name
        if p.is_symlink():
            os.symlink(os.readlink(p), root / name)
        elif p.is_dir():
            shutil.copytree(p, root / name, symlinks=True)
    for sub in ("usr/lib/x86_64-linux-gnu", "usr/lib/python3.11", "usr/bin", "usr/lib/locale", "usr/lib/ssl"):
        shutil.copytree(src / sub, root / sub, symlinks=True)
    (root / "etc/ld.so.preload").write_text("/usr/lib/x86_64-linux-gnu/libz.so.1\n")
    # An NSS module glibc does not have built in, present in the root as a loadable ELF object: name
    # resolution after the swap must not dlopen it from /lib (it would show in /proc/self/maps).
    (root / "etc/nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files myhostname dns\n")
    shutil.copy2(root / "usr/lib/x86_64-linux-gnu/libz.so.1", root / "usr/lib/x86_64-linux-gnu/libnss_myhostname.so.2")
    # A python311.zip in the root's /lib (getpath() walks up from /kaniko/bin looking for one), with an os.py
    # that fails.
    zipfile.ZipFile(root / "usr/lib/python311.zip", "w").writestr("os.py", "raise SystemExit('foreign os')\n")
    # An OpenSSL configuration (Debian: /usr/lib/ssl/openssl.cnf -> /etc/ssl/openssl.cnf) that would show:
    # TLS 1.3 as every context's minimum. Read from the root, it could as well load provider modules.
    (root / "etc/ssl/openssl.cnf").write_text(
        "openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n[ssl_sect]\n"
        "system_default = system_default_sect\n[system_default_sect]\nMinProtocol = TLSv1.3\n")
    hosts = root / "etc/hosts"
    if not hosts.exists() or "localhost" not in hosts.read_text():
        hosts.write_text("127.0.0.1 localhost\n")
    evil = root / "root/.local/lib/python3.11/site-packages/zstandard"
    evil.mkdir(parents=True)
    (evil / "__init__.py").write_text("raise ImportError('user site-packages of the build root was loaded')\n")
    shutil.rmtree(bundle)
    return root


# The capabilities Docker and containerd give a container by default (what kaniko runs with in a pod).
DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


def runc_run(bundle, args, mounts=(), env=None, timeout=300, pod_like=False):
    """Runs ARGS as PID 1 in the unpacked image (config.json from umoci: the image's env, cwd, user).
    pod_like: the default container capabilities and the host's network (to reach the loopback registry)."""
    cfg_path = bundle / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["process"]["args"] = list(args)
    cfg["process"]["terminal"] = False
    if env is not None:
        cfg["process"]["env"] = env
    cfg["root"]["readonly"] = False
    if not hasattr(runc_run, "_orig"):
        runc_run._orig = {}
    orig = runc_run._orig.setdefault(str(bundle), (cfg["process"]["capabilities"], cfg["linux"]["namespaces"]))
    caps, namespaces = json.loads(json.dumps(orig))
    if pod_like:
        caps = {k: list(DEFAULT_CAPS) for k in caps}
        namespaces = [n for n in namespaces if n["type"] != "network"]
    cfg["process"]["capabilities"], cfg["linux"]["namespaces"] = caps, namespaces
    base_mounts = [m for m in cfg["mounts"] if not m.get("_kiln")]
    # umoci turns an image VOLUME into an empty noexec tmpfs; Docker and containerd (Kubernetes) fill a new
    # volume with the image's content at that path. Do as they do: a bind mount of a copy of the content.
    for m in base_mounts:
        if m["type"] == "tmpfs" and m["source"] == "none":
            content = bundle / ("volume" + m["destination"].replace("/", "-"))
            if not content.exists():
                shutil.copytree(bundle / "rootfs" / m["destination"].lstrip("/"), content, symlinks=True)
            m.update({"type": "bind", "source": str(content), "options": ["rbind", "rw"]})
    for mount in mounts:
        src, dst, mode = (*mount, "ro")[:3]
        base_mounts.append({"destination": dst, "type": "bind", "source": str(src),
                            "options": ["rbind", mode], "_kiln": True})
    cfg["mounts"] = base_mounts
    cfg_path.write_text(json.dumps(cfg))
    state = bundle.parent / "runc-state"
    cid = "kiln-exe-" + uuid.uuid4().hex[:10]
    try:
        return subprocess.run(["runc", "--root", str(state), "run", "--bundle", str(bundle), cid],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    finally:
        subprocess.run(["runc", "--root", str(state), "delete", "--force", cid], capture_output=True)


def rootfs_bytes(bundle) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(bundle / "rootfs"):
        for n in filenames:
            total += os.lstat(os.path.join(dirpath, n)).st_size
    return total


def test_image_config_is_kanikos(executor_image):
    manifest, bundle = executor_image
    cfg = json.loads((bundle / "config.json").read_text())
    env = dict(e.split("=", 1) for e in cfg["process"]["env"])
    assert cfg["process"]["cwd"] == "/workspace"
    assert cfg["process"]["args"] == ["/kaniko/executor"]
    assert env["PATH"] == "/usr/local/bin:/kaniko"
    assert env["HOME"] == "/root" and env["USER"] == "root"
    assert env["SSL_CERT_DIR"] == "/kaniko/ssl/certs"
    assert env["DOCKER_CONFIG"] == "/kaniko/.docker/"
    for leak in ("LD_LIBRARY_PATH", "PYTHONHOME", "PYTHONPATH", "LD_PRELOAD"):
        assert leak not in env
    root = bundle / "rootfs"
    assert sorted(os.listdir(root)) == ["kaniko", "workspace"]
    assert (root / "kaniko/.docker").is_dir()
    assert oct((root / "kaniko").stat().st_mode & 0o7777) == "0o777"  # as kaniko, for a non-root executor
    assert (root / "kaniko/ssl/certs/ca-certificates.crt").stat().st_size > 100_000
    for ep in ("executor", "warmer"):
        with open(root / "kaniko" / ep) as f:
            assert f.readline() == "#!/kaniko/bin/python3 -I\n"
    # No byte code left to write at run time, nothing trimmed that should be gone.
    lib = root / "kaniko/lib/python3.11"
    for gone in ("test", "idlelib", "tkinter", "ensurepip", "lib2to3", "config-3.11-x86_64-linux-gnu"):
        assert not (lib / gone).exists(), gone
    # requests' character detection is left out (start-up; assemble.sh says why), the rest of requests is there
    assert not list(lib.glob("*-packages/charset_normalizer*"))
    assert list(lib.glob("*-packages/requests/models.py")) and list(lib.glob("*-packages/urllib3/__init__.py"))
    compressed = sum(layer["size"] for layer in manifest["layers"])
    print(f"executor image: {compressed / 1e6:.1f} MB compressed, {rootfs_bytes(bundle) / 1e6:.1f} MB unpacked")
    assert compressed < 50_000_000


def test_runs_self_contained_as_pid1_and_survives_foreign_root(executor_image, foreign_root):
    _, bundle = executor_image
    p = runc_run(bundle, ["/kaniko/bin/python3", "-I", "/check/inside_check.py", "/foreign"],
                 mounts=[(HERE, "/check"), (foreign_root, "/foreign")])
    assert p.returncode == 0, p.stderr[-4000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["pid"] == 1
    assert r["prefix"] == r["exec_prefix"] == r["base_prefix"] == "/kaniko"
    assert all(x.startswith("/kaniko/") for x in r["path"]), r["path"]
    assert r["root_before"] == ["check", "dev", "foreign", "kaniko", "proc", "sys", "workspace"]
    assert {"lib", "usr", "etc", "bin"} <= set(r["root_after"])
    assert r["kiln_files_added"] == []  # byte code was compiled at build time: nothing written under /kaniko
    assert r["outside_before"] == [] and r["outside_after"] == [], (r["outside_before"], r["outside_after"])
    c = r["checks"]
    for name in ("zstd", "isal", "zlib", "lzma", "bz2", "xxh3", "ctypes", "sqlite3", "uuid"):
        assert c[name] is True, name
    assert c["sha256"] == "cdfe9ad58b46226d63eb322dacd35f4f7ac38096180c87258c142e4bca9a3cf5"
    git_id = run(["git", "hash-object", "--stdin"], input="kiln\n").stdout.strip()
    assert c["dulwich_blob_id"] == git_id
    assert c["ca_bundle_certs"] > 100
    assert c["openssl_cert_dir"] == "/kaniko/ssl/certs"
    assert c["requests_ca_bundle"] == "/kaniko/ssl/certs/ca-certificates.crt"
    assert c["tls_min_version"] != 0x304, "the root's openssl.cnf was read"
    assert "127.0.0.1" in c["getaddrinfo_localhost"]
    assert c["unknown_host"] == "gaierror"
    # A fresh interpreter started after the replacement (ld.so.preload, user site and all in place).
    f = r["fresh"]
    assert f["rc"] == 0, f["stderr"]
    assert f["prefix"] == "/kaniko" and f["zstandard"].startswith("/kaniko/")
    assert f["tls_min_version"] != 0x304, "the root's openssl.cnf was read"
    assert f["outside"] == [], f["outside"]


def test_entrypoint_script_runs_through_the_shebang(executor_image):
    """/kaniko/executor is started by the kernel through '#!/kaniko/bin/python3 -I' as PID 1."""
    _, bundle = executor_image
    p = runc_run(bundle, ["/kaniko/executor", "--help"])
    main_py = os.path.join(REPO, "executor", "main.py")
    if os.path.exists(main_py) and "def executor_main" in open(main_py).read():
        assert p.returncode == 0, p.stderr[-3000:]
        assert "--destination" in p.stdout + p.stderr
    else:
        # executor/main.py has not landed yet: the interpreter ran and got as far as importing it.
        assert "No module named 'executor.main'" in p.stderr, p.stderr[-3000:]


def test_executor_builds_in_its_own_root(executor_image, registry, builder_base, work):
    """The real thing: /kaniko/executor as PID 1 pulls a Debian base, extracts it over its own root (/lib,
    /usr, /etc replaced while it runs), runs a RUN with the base's own python, snapshots and pushes."""
    _, bundle = executor_image
    ws = work / "workspace"
    ws.mkdir()
    (ws / "Dockerfile").write_text(
        f"FROM {builder_base}\n"
        'RUN echo hello > /hello && python3 -c "import sys; print(sys.prefix)" > /prefix && ls /kaniko > /seen\n'
    )
    dest = f"{registry}/kiln/built-by-image:1"
    p = runc_run(bundle, ["/kaniko/executor", "--context", "dir:///workspace", "--dockerfile",
                          "/workspace/Dockerfile", "--destination", dest, "--insecure", "--insecure-pull"],
                 mounts=[(ws, "/workspace", "rw")], pod_like=True)
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
    # requests, whose character detection the image leaves out, says nothing about it
    assert "character detection" not in p.stderr and "DependencyWarning" not in p.stderr, p.stderr[-3000:]
    layout, out = work / "oci-built", work / "bundle-built"
    run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{dest}", f"oci:{layout}:b"])
    run(["umoci", "unpack", "--image", f"{layout}:b", str(out)])
    root = out / "rootfs"
    assert (root / "hello").read_text() == "hello\n"
    assert (root / "prefix").read_text() == "/usr\n"  # the base's python, not kiln's
    assert "executor" in (root / "seen").read_text().split()  # /kaniko was there during the RUN...
    assert not (root / "kaniko").exists()  # ...and is in no layer
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]).read_text())
    with tarfile.open(layout / "blobs/sha256" / manifest["layers"][-1]["digest"].split(":")[1]) as t:
        assert sorted(n.lstrip("./") for n in t.getnames()) == ["hello", "prefix", "seen"]


def test_debug_image_has_a_busybox_shell(debug_image):
    _, bundle = debug_image
    cfg = json.loads((bundle / "config.json").read_text())
    env = dict(e.split("=", 1) for e in cfg["process"]["env"])
    assert env["PATH"] == "/usr/local/bin:/kaniko:/busybox"
    p = runc_run(bundle, ["/bin/sh", "-c", "echo shell=$0; ls /busybox | grep -c . ; grep -c ' /busybox ' /proc/self/mountinfo; "
                          "/kaniko/bin/python3 -I -c 'import sys, executor; print(sys.prefix)'"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split()
    # The applets, /busybox as a mount point (the executor's ignore list skips mounts), kiln's python.
    assert lines[0] == "shell=/bin/sh" and int(lines[1]) > 100 and lines[2] == "1" and lines[3] == "/kaniko"

"""Issue 5: kiln builds its own executor image (Containerfile) on the host with a scratch root; the image,
unpacked by umoci, runs under runc as PID 1 exactly as a pod would (build context bind-mounted at /workspace,
docker config at /kaniko/.docker/config.json, the host's network, Docker's default capabilities) and builds
and pushes, to the token registry with credentials and its CA, a Debian image that runs apt-get install and a
busybox image; the results pass the independent judge. Then the same with the debug image started through
/busybox/sh -c, as GitLab starts it.

Slow: kiln builds both targets at once in ~60-70 s on the 2-core machine (cached under
/var/cache/kiln-tests/kiln-selfbuilt by the hash of every input, so any change to executor/ or snapshot/
rebuilds; KILN_REBUILD_EXECUTOR_IMAGE=1 forces it), each in-container Debian build with apt-get ~25-40 s.
This module, test_in_container.py and tests/test_deploy/test_runtime.py together: ~3 min with a rebuild.

    python -m pytest -q -s tests/test_executor_image/test_kiln_selfhost.py \
        tests/test_executor_image/test_in_container.py tests/test_deploy/test_runtime.py
"""
from __future__ import annotations

import json
import os
import pathlib
import shlex

import pytest

from tests.rig.judge import judge_registry_image
from tests.test_executor_image.kilnimage import HERE, Mount, Pod, builder_base as _builder_base, context_dir, \
    kiln_built_image
# The other engineer's foreign root (a real Debian root with hostile extras), built from this module's
# builder_base and work fixtures below.
from tests.test_executor_image.test_executor_image import foreign_root  # noqa: F401  (a fixture)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("KILN_SKIP_SLOW") == "1", reason="KILN_SKIP_SLOW=1"),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("kiln-selfhost")


@pytest.fixture(scope="module")
def builder_base(plain_registry):
    return _builder_base(plain_registry)[0]


@pytest.fixture(scope="module")
def executor_image(plain_registry, work):
    return kiln_built_image(plain_registry, "executor", work)


@pytest.fixture(scope="module")
def debug_image(plain_registry, work):
    return kiln_built_image(plain_registry, "debug", work)


def test_kiln_builds_its_own_executor_image(executor_image, debug_image):
    for img in (executor_image, debug_image):
        if img.built_now:
            assert "Pushed " in img.build_log
        cfg = img.image_config()["process"]
        env = dict(e.split("=", 1) for e in cfg["env"])
        assert cfg["args"] == ["/kaniko/executor"] and cfg["cwd"] == "/workspace"
        assert env["SSL_CERT_DIR"] == "/kaniko/ssl/certs" and env["DOCKER_CONFIG"] == "/kaniko/.docker/"
        for leak in ("LD_LIBRARY_PATH", "PYTHONHOME", "PYTHONPATH", "LD_PRELOAD"):
            assert leak not in env
        root = os.path.join(img.bundle, "rootfs")
        with open(os.path.join(root, "kaniko", "executor")) as f:
            assert f.readline() == "#!/kaniko/bin/python3 -I\n"
        assert img.compressed < 50_000_000
        print(f"kiln-built {img.target}: {len(img.manifest['layers'])} layers, {img.compressed / 1e6:.1f} MB "
              f"compressed, {img.unpacked / 1e6:.1f} MB unpacked")
    assert sorted(os.listdir(os.path.join(executor_image.bundle, "rootfs"))) == ["kaniko", "workspace"]
    assert sorted(os.listdir(os.path.join(debug_image.bundle, "rootfs"))) == ["bin", "busybox", "kaniko",
                                                                              "workspace"]
    assert oct(os.stat(os.path.join(executor_image.bundle, "rootfs", "kaniko")).st_mode & 0o7777) == "0o777"
    denv = dict(e.split("=", 1) for e in debug_image.image_config()["process"]["env"])
    assert denv["PATH"] == "/usr/local/bin:/kaniko:/busybox"
    # Not the same layer digests as the executor's: each build runs the builder stage anew (pip, mtimes).
    assert os.path.isfile(os.path.join(debug_image.bundle, "rootfs", "busybox", "busybox"))
    assert os.readlink(os.path.join(debug_image.bundle, "rootfs", "bin", "sh")) == "/busybox/sh"

def test_kiln_built_image_is_self_contained_in_a_foreign_root(executor_image, foreign_root):
    """inside_check.py (the buildah image's check) against the image kiln built: PID 1, everything mapped from
    /kaniko before and after a Debian root with a hostile ld.so.preload, nsswitch, openssl.cnf and user site is
    copied over /, nothing written under /kaniko."""
    p = Pod(executor_image, str(foreign_root.parent), args=["/kaniko/bin/python3", "-I", "/check/inside_check.py",
                                                            "/foreign"],
            mounts=[Mount(HERE, "/check"), Mount(foreign_root, "/foreign")], kubelet_files=False).run(timeout=300)
    assert p.returncode == 0, p.stderr[-4000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["pid"] == 1
    assert r["prefix"] == r["exec_prefix"] == r["base_prefix"] == "/kaniko"
    assert all(x.startswith("/kaniko/") for x in r["path"]), r["path"]
    assert {"lib", "usr", "etc", "bin"} <= set(r["root_after"])
    assert r["kiln_files_added"] == []
    assert r["outside_before"] == [] and r["outside_after"] == [], (r["outside_before"], r["outside_after"])
    c = r["checks"]
    for name in ("zstd", "isal", "zlib", "lzma", "bz2", "xxh3", "ctypes", "sqlite3", "uuid"):
        assert c[name] is True, name
    assert c["tls_min_version"] != 0x304, "the root's openssl.cnf was read"
    assert c["requests_ca_bundle"] == "/kaniko/ssl/certs/ca-certificates.crt"
    f = r["fresh"]
    assert f["rc"] == 0, f["stderr"]
    assert f["prefix"] == "/kaniko" and f["outside"] == [], f


DEBIAN_APT = """\
FROM {base}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends hello \\
 && rm -rf /var/lib/apt/lists/* && hello > /greeting && ls /kaniko > /kaniko-seen
COPY note.txt /note.txt
"""

BUSYBOX = """\
FROM {base} AS first
RUN echo first-stage > /first
FROM {base}
COPY --from=first /first /first
COPY note.txt /etc/note.txt
RUN echo "pid1=$(cat /proc/1/cmdline | tr '\\0' ' ')" > /proof && id -u >> /proof
"""


def pod_build(image, work, registry, dockerfile: str, dest: str, plain_registry, *, shell: bool,
              additional_ca: bool):
    """One executor run in a pod-like container; -> CompletedProcess. The registry's CA: with
    --registry-certificate, or (additional_ca) mounted where kaniko takes extra CAs from,
    /kaniko/ssl/certs/additional-ca-cert-bundle.crt (a secret or config map in a pod)."""
    ctx = context_dir(work, {"Dockerfile": dockerfile, "note.txt": f"for {dest}\n"})
    args = ["--context", "dir:///workspace", "--dockerfile", "Dockerfile", "--destination", dest,
            "--insecure-registry", plain_registry.host]
    mounts = [Mount(ctx, "/workspace", rw=True), Mount(registry.docker_config_dir, "/kaniko/.docker")]
    if additional_ca:
        mounts.append(Mount(os.path.join(registry.cert_dir, "ca.crt"),
                            "/kaniko/ssl/certs/additional-ca-cert-bundle.crt"))
    else:
        args += ["--registry-certificate", f"{registry.host}=/kaniko/test-ca/ca.crt"]
        mounts.append(Mount(registry.cert_dir, "/kaniko/test-ca"))
    if shell:   # GitLab: entrypoint [""], the job's script run by the image's shell
        pod = Pod(image, work, args=["/busybox/sh", "-c", shlex.join(["/kaniko/executor", *args])], mounts=mounts)
    else:       # Kubernetes: the image's entrypoint with the container's args
        pod = Pod(image, work, extra_args=args, mounts=mounts)
    return pod.run(timeout=400)


def check_pushed(registry, dest: str, kind: str, note: str):
    report = judge_registry_image(registry, dest)
    assert not any(p == "kaniko" or p.startswith("kaniko/") for p in report.filesystem())
    assert report.read("note.txt" if kind == "debian" else "etc/note.txt") == note.encode()
    if kind == "debian":
        assert report.read("greeting") == b"Hello, world!\n"
        assert "usr/bin/hello" in report.filesystem()
        assert "executor" in report.read("kaniko-seen").decode().split()  # /kaniko was there during the RUN
    else:
        proof = report.read("proof").decode().split("\n")
        assert proof[0].startswith("pid1=/kaniko/bin/python3 -I /kaniko/executor") or \
            proof[0].startswith("pid1=/busybox/sh -c /kaniko/executor"), proof
        assert proof[1] == "0"
        assert report.read("first") == b"first-stage\n"
    return report


@pytest.mark.parametrize("target", ["executor", "debug"])
@pytest.mark.parametrize("kind", ["debian", "busybox"])
def test_image_builds_and_pushes_in_a_pod(target, kind, request, work, plain_registry, token_registry,
                                          base_images, debian_base):
    image = request.getfixturevalue(f"{target}_image")
    base = debian_base if kind == "debian" else base_images.busybox_index
    debug = target == "debug"
    if debug:   # the base too from the TLS registry: the extra CA is needed (and used) before the extraction
        base = base_images.copy_image(base, token_registry, f"private/selfhost/base-{kind}:1")
    dest = token_registry.ref(f"private/selfhost/{kind}:{target}")
    p = pod_build(image, work, token_registry, (DEBIAN_APT if kind == "debian" else BUSYBOX).format(base=base),
                  dest, plain_registry, shell=debug, additional_ca=debug)
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-5000:])
    report = check_pushed(token_registry, dest, kind, f"for {dest}\n")
    # Nothing of kiln's own (a combined CA bundle, stage files) in the image.
    assert not [path for path in report.filesystem() if "kiln" in path], report.filesystem().keys()
    # The push went through the token server with the mounted config.json's credentials.
    pushes = [r for r in token_registry.token_log()
              if any(f"private/selfhost/{kind}" in s and "push" in s for s in (r.get("scopes") or []))]
    assert pushes and all(r.get("account") == token_registry.username for r in pushes if r.get("granted")), pushes

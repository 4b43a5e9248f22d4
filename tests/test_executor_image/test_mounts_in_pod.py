"""RUN --mount in a pod without CAP_SYS_ADMIN (the default capability set), interrupted: the executor image kiln
built of itself, PID 1 under runc on an overlay root (as containerd gives a pod), builds on `/`, where kiln places
the mounts' content instead of mounting (executor/run/placing.py).

* SIGTERM to PID 1 in the middle of such a RUN (as the kubelet stops a pod): kiln takes everything out before it
  exits: the original of a directory the cache hid is back, the secret file and the tmpfs stand-in are gone, the
  cache holds what the RUN wrote before the signal.
* SIGKILL of kiln in the middle of such a RUN (under the debug image's shell, so the container lives on): the
  secret and the cache's content stay in the root; the next build in the same container sees the killed build's
  work directory, wipes the root first and builds an image with nothing of them.

The pod's root is looked at from the host, through the overlay mount that is its `/`, before it is removed.
"""
from __future__ import annotations

import hashlib
import os
import time

import pytest

from tests.rig.judge import judge_docker_tar
from tests.test_executor_image.kilnimage import DEFAULT_CAPS, Mount, Pod, context_dir, kiln_built_image

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("KILN_SKIP_SLOW") == "1", reason="KILN_SKIP_SLOW=1"),
]

CANNOT_MOUNT = "RUN --mount on /: kiln cannot mount here (setting up namespaces: unshare(mount): Operation not permitted)"
KUBELET_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def _cache_dir(rootfs: str, cache_id: str) -> str:
    """Where executor/commands/run.py keeps a cache mount's directory (under kiln's /kaniko)."""
    return os.path.join(rootfs, "kaniko", "cache-mounts", hashlib.sha256(cache_id.encode()).hexdigest()[:32])


def _wait_for(path: str, pod: Pod, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert pod.proc is not None and pod.proc.poll() is None, pod.wait(5).stderr[-3000:]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_sigterm_mid_run_takes_the_placed_mounts_out(plain_registry, base_images, tmp_path_factory):
    work = str(tmp_path_factory.mktemp("mounts-sigterm"))
    image = kiln_built_image(plain_registry, "executor", work)
    dockerfile = (f"FROM {base_images.busybox_index}\n"
                  "RUN mkdir -p /etc/app && echo original > /etc/app/conf\n"
                  "RUN --mount=type=cache,target=/etc/app --mount=type=secret,id=tok "
                  "--mount=type=tmpfs,target=/scratch "
                  "echo before-signal > /etc/app/w && touch /scratch/x && cat /run/secrets/tok > /dev/null && "
                  "echo started > /workspace/run-started && sleep 300\n"
                  "RUN echo never > /never\n")
    ctx = context_dir(work, {"Dockerfile": dockerfile, "tok": "s3cr3t"})
    pod = Pod(image, work, extra_args=["--context", "dir:///workspace", "--no-push", "--secret",
                                       "id=tok,src=/workspace/tok", "--insecure-registry", plain_registry.host],
              caps=list(DEFAULT_CAPS), overlay_rootfs=True, mounts=[Mount(ctx, "/workspace", rw=True)])
    try:
        pod.start()
        rootfs = os.path.join(pod.bundle, "rootfs")
        _wait_for(os.path.join(ctx, "run-started"), pod, "the RUN never started")
        # while the RUN runs, its mounts are files of the pod's root (no mount namespace without CAP_SYS_ADMIN)
        assert open(os.path.join(rootfs, "run/secrets/tok")).read() == "s3cr3t"
        assert os.listdir(os.path.join(rootfs, "etc/app")) == ["w"]
        pod.signal("TERM")
        p = pod.wait(timeout=30)
        assert p.returncode == 143, p.stderr[-3000:]
        assert CANNOT_MOUNT in p.stderr, p.stderr[-3000:]
        assert open(os.path.join(rootfs, "etc/app/conf")).read() == "original\n"
        assert sorted(os.listdir(os.path.join(rootfs, "etc/app"))) == ["conf"]
        assert not os.path.lexists(os.path.join(rootfs, "run/secrets"))
        assert not os.path.lexists(os.path.join(rootfs, "scratch"))
        assert open(os.path.join(_cache_dir(rootfs, "/etc/app"), "w")).read() == "before-signal\n"
        assert not os.path.exists(os.path.join(rootfs, "never"))
    finally:
        pod.cleanup()


def test_sigkill_mid_run_then_the_next_build_in_the_container_wipes_the_root(plain_registry, base_images,
                                                                              tmp_path_factory):
    work = str(tmp_path_factory.mktemp("mounts-sigkill"))
    image = kiln_built_image(plain_registry, "debug", work)
    first = (f"FROM {base_images.busybox_index}\n"
             "RUN mkdir -p /etc/app && echo original > /etc/app/conf\n"
             "RUN --mount=type=cache,target=/etc/app --mount=type=secret,id=tok "
             "echo cached > /etc/app/c && echo started > /workspace/run-started && sleep 300\n")
    second = (f"FROM {base_images.busybox_index}\n"
              "RUN ls -A /etc/app /run/secrets > /listing 2>&1; true\n")
    ctx = context_dir(work, {"Dockerfile": first, "Dockerfile.second": second, "tok": "s3cr3t"})
    common = "--context dir:///workspace --no-push --insecure-registry " + plain_registry.host
    script = "\n".join([
        f"/kaniko/executor {common} --secret id=tok,src=/workspace/tok > /workspace/first.log 2>&1 &",
        "kiln=$!",
        "while [ ! -e /workspace/run-started ]; do sleep 0.1; done",
        "kill -9 $kiln; wait $kiln; echo first-exit=$?",
        "cat /run/secrets/tok; echo",
        "ls -A /etc/app",
        f"/kaniko/executor {common} --dockerfile Dockerfile.second --tar-path /workspace/second.tar",
        "echo second-exit=$?",
        "ls -A /run/secrets /etc/app 2>&1; true",
    ])
    p = Pod(image, work, args=["/busybox/sh", "-c", script], env=KUBELET_ENV, caps=list(DEFAULT_CAPS),
            overlay_rootfs=True, mounts=[Mount(ctx, "/workspace", rw=True)]).run(timeout=300)
    out = p.stdout.splitlines()
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-5000:])
    assert "first-exit=137" in out, out
    # killed outright: the secret and the cache's content were still in the root, the original aside
    assert out[out.index("first-exit=137") + 1:][:2] == ["s3cr3t", "c"], out
    assert "second-exit=0" in out, (out, p.stderr[-5000:])
    assert "a build killed earlier left files in the root /: wiping it first" in p.stderr, p.stderr[-5000:]
    after = out[out.index("second-exit=0") + 1:]
    assert after == ["ls: /run/secrets: No such file or directory", "ls: /etc/app: No such file or directory"], after
    report = judge_docker_tar(os.path.join(ctx, "second.tar"))
    paths = set(report.filesystem())
    assert not any(p.startswith(("etc/app", "run")) for p in paths), sorted(paths)
    listing = report.read("listing")
    assert b"/etc/app: No such file or directory" in listing and b"/run/secrets: No such file or directory" in listing, \
        listing

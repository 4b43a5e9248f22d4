"""Issue 15: the executor image kiln built of itself under deploy/kubernetes/build-job-hardened.yaml's settings
(a user namespace mapping container ids 0..65535 to host 100000+, containers-common's default seccomp profile
converted for the pod's capabilities, exactly the Job's capabilities; tests/test_deploy/security.py reads them
from the manifest):

* a Dockerfile trying to get out (mount, ptrace of PID 1, /proc/sysrq-trigger, loading a kernel module, a node
  file through /proc/1/root) fails at that step, kiln says which, and nothing outside the container changed;
* `RUN find / -xdev -name '*.pyc' -delete`, `RUN chmod -R 000 /kaniko` and `RUN rm -rf /kaniko` in one build
  that then runs, copies from an earlier stage and pushes to the TLS registry with bearer tokens, with the
  credentials and the registry's CA only under /kaniko (written there by the job's shell, as kaniko's GitLab
  recipe does): the build finishes, the image is judged, nothing of /kaniko is in it (executor/floor.py).

The busybox and apt-get builds under the same settings, pushed and judged, are tests/test_deploy/test_runtime.py's
(the Job itself). Timing on the 2-core machine with the image cached: ~1 s per escape pod, ~15 s the floor build.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import uuid

import pytest
import yaml

from tests.rig.judge import judge_registry_image
from tests.test_deploy.security import pod_settings
from tests.test_executor_image.kilnimage import HERE, REPO, Mount, Pod, context_dir, kiln_built_image

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("KILN_SKIP_SLOW") == "1", reason="KILN_SKIP_SLOW=1"),
]


def _hardened() -> dict:
    with open(os.path.join(REPO, "deploy", "kubernetes", "build-job-hardened.yaml")) as f:
        (job,) = [d for d in yaml.safe_load_all(f) if d and d["kind"] == "Job"]
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    settings = pod_settings(spec, container)
    assert settings["userns"] and settings["seccomp"] and settings["user"] == (0, 0)
    return settings


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return str(tmp_path_factory.mktemp("hardened"))


def _a_docker_daemons(point: str) -> bool:
    """A mount a dockerd makes and removes as it starts, builds and stops (its data-root, its layers' merged
    views, a container's shm, its network namespaces): the parity suite's and the benchmarks' daemons run
    beside this test on a shared machine. An escape from the pod cannot make these (they lie inside a daemon's
    data-root or exec-root; the rig's daemons keep their daemon.json beside their data-root)."""
    if re.search(r"/overlay2/[0-9a-z]+/merged$|/containers/[0-9a-f]{64}/mounts/shm$|/netns/[^/]+$", point):
        return True
    return os.path.basename(point) == "data" and os.path.exists(os.path.join(os.path.dirname(point), "daemon.json"))


def _host_state() -> dict:
    """What a successful escape would change on this machine (the node)."""
    with open("/proc/self/mountinfo") as f:
        mounts = sorted(point for line in f if not _a_docker_daemons(point := line.split()[4]))
    dmesg = subprocess.run(["dmesg"], capture_output=True, text=True).stdout
    return {"mounts": mounts, "modules": sorted(os.listdir("/sys/module")),
            "sysrq_lines": [line for line in dmesg.splitlines() if "sysrq" in line.lower()]}


ESCAPES = {
    # attempt: what the attempt reports (the kernel's answer under the hardened settings)
    "mount": "[Errno 1] Operation not permitted",          # no CAP_SYS_ADMIN in the pod's namespace
    "ptrace": "[Errno 1] Operation not permitted",         # kiln is not dumpable: ptrace takes CAP_SYS_PTRACE
    "module": "[Errno 1] Operation not permitted",         # the seccomp profile: no CAP_SYS_MODULE, no finit_module
    "proc1root": "[Errno 13] Permission denied",           # kiln is not dumpable: /proc/1/root takes CAP_SYS_PTRACE
    # the runtime makes it read-only (runc's readonlyPaths, containerd's and CRI-O's too); this machine's kernel
    # has no sysrq at all, so there the file is missing
    "sysrq": ("[Errno 30] Read-only file system" if os.path.exists("/proc/sysrq-trigger")
              else "[Errno 2] No such file or directory: '/proc/sysrq-trigger'"),
}


def test_escape_attempts_fail_at_their_step_and_change_nothing_outside(work, plain_registry, base_images):
    image = kiln_built_image(plain_registry, "executor", work)
    settings = _hardened()
    canary = f"/tmp/kiln-node-canary-{uuid.uuid4().hex}"
    secret = f"node secret {uuid.uuid4().hex}\n"
    with open(canary, "w") as f:
        f.write(secret)
    before = _host_state()
    outputs = {}
    try:
        for attempt, answer in ESCAPES.items():
            argv = ["/kaniko/bin/python3", "-I", "/escape.py", attempt] + ([canary] if attempt == "proc1root" else [])
            dockerfile = (f"FROM {base_images.busybox_index}\nCOPY escape.py /escape.py\n"
                          f"RUN {shlex.join(argv)}\nRUN echo never > /never\n")
            with open(os.path.join(HERE, "escape.py")) as f:
                ctx = context_dir(work, {"Dockerfile": dockerfile, "escape.py": f.read()})
            p = Pod(image, work, extra_args=["--context", "dir:///workspace", "--no-push", "--insecure-registry",
                                             plain_registry.host], mounts=[Mount(ctx, "/workspace", rw=True)],
                    overlay_rootfs=True, **settings).run(timeout=120)
            outputs[attempt] = p.stderr
            assert p.returncode == 1, (attempt, p.stderr[-3000:])
            assert f"escape {attempt}: refused: {answer}" in p.stderr, (attempt, p.stderr[-3000:])
            errors = [line for line in p.stderr.splitlines() if line.startswith("ERRO[")]
            assert len(errors) == 1 and f"The command '/bin/sh -c {shlex.join(argv)}' returned a non-zero code: 1" in errors[0], \
                errors
            assert f"RUN {shlex.join(argv)}" in p.stderr
            assert "RUN echo never" not in p.stderr                 # the build stopped at that step
    finally:
        after = _host_state()
        with open(canary) as f:
            kept = f.read()
        os.unlink(canary)
    assert kept == secret
    assert not any(secret.strip() in out for out in outputs.values())
    assert after == before, {k: {"gone": sorted(set(before[k]) - set(after[k])),
                                 "new": sorted(set(after[k]) - set(before[k]))} for k in before if before[k] != after[k]}


FLOOR_DOCKERFILE = """\
FROM {base} AS first
RUN echo first > /first
FROM {base}
RUN find / -xdev -name '*.pyc' -delete && echo pyc-deleted > /pyc
RUN chmod -R 000 /kaniko && echo chmodded > /chmod
RUN rm -rf /kaniko && echo removed > /rm
RUN ls -A / > /listing
COPY --from=first /first /first
COPY note.txt /note.txt
RUN --mount=type=cache,target=/var/cache/app echo cached > /var/cache/app/c && echo after > /after
"""
# The job's script, as kaniko's GitLab recipe writes it: credentials and the registry's CA only under /kaniko.
FLOOR_SCRIPT = """\
set -e
mkdir -p /kaniko/.docker
printf '{{"auths":{{"%s":{{"auth":"%s"}}}}}}' {host} "$(printf '%s:%s' {user} {password} | base64)" \\
  > /kaniko/.docker/config.json
cp /test-ca/ca.crt /kaniko/ssl/certs/additional-ca-cert-bundle.crt
/kaniko/executor --context dir:///workspace --destination {dest} --insecure-registry {plain} --cache=true
"""


def test_run_steps_that_break_kilns_own_directory(work, plain_registry, token_registry, debian_base):
    """GNU find's -delete needs a Debian base. -xdev: without it, `find /` fails on /proc/*/map_files in any
    container without CAP_SYS_ADMIN (docker's and kaniko's alike), which is the command's own failure."""
    image = kiln_built_image(plain_registry, "debug", work)
    settings = _hardened()
    dest = token_registry.ref("private/hardened/floor:1")
    ctx = context_dir(work, {"Dockerfile": FLOOR_DOCKERFILE.format(base=debian_base), "note.txt": "note\n"})
    script = FLOOR_SCRIPT.format(host=shlex.quote(token_registry.host), user=shlex.quote(token_registry.username),
                                 password=shlex.quote(token_registry.password), dest=dest, plain=plain_registry.host)
    p = Pod(image, work, args=["/busybox/sh", "-c", script], env={"KUBERNETES_SERVICE_HOST": "10.96.0.1"},
            mounts=[Mount(ctx, "/workspace", rw=True), Mount(token_registry.cert_dir, "/test-ca")],
            overlay_rootfs=True, **settings).run(timeout=400)
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-6000:])
    for step in ("RUN chmod -R 000 /kaniko", "RUN rm -rf /kaniko"):
        assert re.search(rf"step `{re.escape(step)}[^`]*` changed kiln's own files under /kaniko \(\d+ paths\); kiln "
                         r"put them back and goes on", p.stderr), (step, p.stderr[-4000:])
    assert f"Pushed {dest}" in p.stderr
    report = judge_registry_image(token_registry, dest)
    fs = report.filesystem()
    assert not any(path == "kaniko" or path.startswith("kaniko/") for path in fs)
    for layer in report.layers:
        assert not any("kaniko" in name for name in layer.names()), layer.names()
    for name, text in (("pyc", "pyc-deleted\n"), ("chmod", "chmodded\n"), ("rm", "removed\n"), ("first", "first\n"),
                       ("note.txt", "note\n"), ("after", "after\n")):
        assert report.read(name) == text.encode(), name
    # the push after the RUNs took the credentials and the CA from kiln's memory: the token server granted them
    pushes = [r for r in token_registry.token_log()
              if any("private/hardened/floor" in s and "push" in s for s in (r.get("scopes") or []))]
    assert pushes and all(r.get("account") == token_registry.username for r in pushes if r.get("granted")), pushes

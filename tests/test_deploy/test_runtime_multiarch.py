"""Issue 16 item 4, deploy/'s side: the multi-platform manifests run for real, as test_runtime.py runs the others.
Each container spec becomes a runc bundle around the executor image kiln built of itself, with the manifest's
own security settings (tests/test_deploy/security.py): user namespace, the default seccomp profile, exactly
the manifest's capabilities, no_new_privs, the user, a read-only root where the manifest says so.

* the native fan-out: build-jobs-per-arch.yaml's two Jobs, then index-job.yaml's (a plain user on a read-only
  root); GitLab's `.kiln-index` script under the debug image's shell and Tekton's `kiln-index` step assemble the
  same two images and push the very same index (same digest);
* the emulated way: build-job-multiarch.yaml's one Job builds both platforms.

What differs from a cluster, and nothing else: this machine is amd64, so the arm64 Job (whose nodeSelector
would put it on an arm64 node) runs its arm64 RUN under QEMU here, registered by the test as the binfmt
DaemonSet would (tests/rig/binfmt.py); registry.example.com is the rig's token registry, the git context a
directory, the registry's CA given with --registry-certificate (a pod would have it mounted). The images are
judged by skopeo and the judge (umoci).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import uuid

import pytest
import yaml

from tests.rig.binfmt import ensure_emulation
from tests.rig.judge import judge_registry_image
from tests.test_deploy.security import gitlab_runner_settings, pod_settings
# the deploy/ manifests' loader and the kiln-built executor and debug images (built under this module's `work`)
from tests.test_deploy.test_runtime import _load, images  # noqa: F401
from tests.test_executor_image.kilnimage import Mount, Pod, context_dir, docker_config_dir

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(REPO, "deploy")
EXAMPLE = "registry.example.com"
CA_DIR = "/kaniko/test-ca"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("KILN_SKIP_SLOW") == "1", reason="KILN_SKIP_SLOW=1"),
]

# A $BUILDPLATFORM stage (the cross-compilation pattern) and a final stage whose RUN is the target's own.
DOCKERFILE = """\
FROM --platform=$BUILDPLATFORM {base} AS tools
RUN uname -m > /build-machine
FROM {base}
ARG TARGETARCH
COPY --from=tools /build-machine /build-machine
RUN uname -m > /machine && echo "$TARGETARCH" > /target-arch
"""
MACHINES = {"amd64": b"x86_64\n", "arm64": b"aarch64\n"}


def _jobs(rel: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in _load(rel) if d["kind"] == "Job"}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return str(tmp_path_factory.mktemp("deploy-multiarch"))


@pytest.fixture(scope="module")
def base(token_registry, base_images):
    ensure_emulation("aarch64")
    return base_images.copy_image(base_images.busybox_index, token_registry, "base/busybox-multi:1")


def _run_job(job: dict, images, work: str, registry, app: str, context: str | None) -> tuple[str, str]:
    """The Job's one container under runc with its pod's settings; -> (termination message, stderr)."""
    spec = job["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    assert c["image"] == EXAMPLE + "/kiln/executor:latest"
    settings = pod_settings(spec, c)
    args = []
    for a in c["args"]:
        if a.startswith("--context=git://"):
            a = "--context=dir:///workspace"
        args.append(a.replace(EXAMPLE, registry.host).replace("example/app", app))
    args.append(f"--registry-certificate={registry.host}={CA_DIR}/ca.crt")
    config = docker_config_dir(work, {registry.host: (registry.username, registry.password)})
    (v,) = spec["volumes"]
    (m,) = c["volumeMounts"]
    assert m["name"] == v["name"] and v["secret"]["items"] == [{"key": "config.json", "path": "config.json"}]
    term = os.path.join(work, f"termination-log-{job['metadata']['name']}-{uuid.uuid4().hex[:6]}")
    open(term, "w").close()
    os.chmod(term, 0o666)          # as the kubelet makes it: writable by the container's user, whoever it is
    mounts = [Mount(config, m["mountPath"]), Mount(term, "/dev/termination-log", rw=True),
              Mount(registry.cert_dir, CA_DIR)]
    if context:
        mounts.append(Mount(context, "/workspace", rw=True))
    pod = Pod(images["executor"], work, extra_args=args, mounts=mounts, overlay_rootfs=True, **settings)
    p = pod.run(timeout=600)
    assert p.returncode == 0, (job["metadata"]["name"], p.stdout[-3000:], p.stderr[-6000:])
    with open(term) as f:
        return f.read(), p.stderr


def _raw(registry, ref: str) -> bytes:
    return subprocess.run(["skopeo", "inspect", "--raw", *registry.skopeo_args(""), f"docker://{ref}"],
                          capture_output=True, check=True).stdout


def _digest(raw: bytes) -> str:
    import hashlib
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _check_index(registry, ref: str, digest: str, work: str) -> None:
    raw = _raw(registry, ref)
    assert _digest(raw) == digest
    index = json.loads(raw)
    assert [(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]] == \
        [("linux", "amd64"), ("linux", "arm64")]
    for arch, machine in MACHINES.items():
        report = judge_registry_image(registry, ref, platform=f"linux/{arch}",
                                      workdir=os.path.join(work, f"judge-{arch}-{uuid.uuid4().hex[:6]}"))
        assert report.config["architecture"] == arch
        assert report.read("machine") == machine                     # the RUN ran as that machine
        assert report.read("target-arch") == f"{arch}\n".encode()
        assert report.read("build-machine") == b"x86_64\n"          # $BUILDPLATFORM: this (amd64) machine


@pytest.fixture(scope="module")
def fan_out(images, work, token_registry, base):
    """build-jobs-per-arch.yaml's two Jobs, then index-job.yaml's."""
    app = f"example/fanout-{uuid.uuid4().hex[:8]}"
    ctx = context_dir(work, {"Dockerfile": DOCKERFILE.format(base=base)})
    builds = _jobs("kubernetes/build-jobs-per-arch.yaml")
    digests = {}
    for arch in MACHINES:
        digests[arch], _ = _run_job(builds[f"kiln-build-{arch}"], images, work, token_registry, app, ctx)
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digests[arch]), digests[arch]
    (index_job,) = _jobs("kubernetes/index-job.yaml").values()
    index_digest, _ = _run_job(index_job, images, work, token_registry, app, None)
    return {"app": app, "digests": digests, "index": index_digest}


def test_kubernetes_native_fan_out_under_runc(fan_out, token_registry, work):
    app = fan_out["app"]
    for arch, digest in fan_out["digests"].items():   # each Job pushed one single-platform image
        raw = _raw(token_registry, f"{token_registry.host}/{app}:latest-{arch}")
        assert _digest(raw) == digest and "manifests" not in json.loads(raw)
    # the index Job (uid 65532, read-only root, no capability) wrote the index's digest to its termination log
    _check_index(token_registry, f"{token_registry.host}/{app}:latest", fan_out["index"], work)
    index = json.loads(_raw(token_registry, f"{token_registry.host}/{app}:latest"))
    assert [m["digest"] for m in index["manifests"]] == [fan_out["digests"][a] for a in MACHINES]


def test_gitlab_index_job_under_the_debug_shell(fan_out, images, work, token_registry):
    """`.kiln-index` as GitLab runs it: the job's script under the debug image's /busybox/sh, in the project
    directory holding the build jobs' artifacts (image-digest-<ARCH>), with runner-config-multiarch.toml's
    kiln-amd64 settings; it pushes the very index the Kubernetes Job pushed."""
    registry = token_registry
    with open(os.path.join(DEPLOY, "gitlab", "kiln-multiarch.gitlab-ci.yml")) as f:
        doc = yaml.safe_load(f)
    job = {**doc[".kiln-multiarch-base"], **doc[".kiln-index"]}
    assert job["tags"] == ["kiln-amd64"] and job["image"]["entrypoint"] == [""]
    project = os.path.join(work, f"gitlab-project-{uuid.uuid4().hex[:6]}")
    os.makedirs(project)
    for arch, digest in fan_out["digests"].items():
        with open(os.path.join(project, f"image-digest-{arch}"), "w") as f:
            f.write(digest)
    project_dir = "/builds/group/app"
    ci = {"CI_PROJECT_DIR": project_dir, "CI_REGISTRY": registry.host,
          "CI_REGISTRY_IMAGE": f"{registry.host}/{fan_out['app']}", "CI_REGISTRY_USER": registry.username,
          "CI_REGISTRY_PASSWORD": registry.password, "CI_COMMIT_REF_SLUG": "latest", "CI_COMMIT_BRANCH": "main",
          "CI_COMMIT_TAG": ""}
    variables = {**doc["variables"], **job["variables"],
                 "KILN_INDEX_EXTRA_ARGS": f"--registry-certificate {registry.host}={CA_DIR}/ca.crt"}
    env = dict(ci)
    for k, v in variables.items():
        env[k] = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), str(v))
    settings = gitlab_runner_settings(os.path.join(DEPLOY, "gitlab", "runner-config-multiarch.toml"), "kiln-amd64")
    assert settings.pop("automount_token") is False
    script = "set -eo pipefail\n" + "\n".join(job["script"]) + "\n"
    p = Pod(images["debug"], work, args=["/busybox/sh", "-c", script], env=env, cwd=project_dir,
            overlay_rootfs=True, mounts=[Mount(project, project_dir, rw=True), Mount(registry.cert_dir, CA_DIR)],
            **settings).run(timeout=300)
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-5000:])
    with open(os.path.join(project, "image-digest")) as f:
        assert f.read() == fan_out["index"], "the same two images make the same index"


def test_tekton_index_task_under_runc(fan_out, images, work, token_registry):
    registry = token_registry
    task = next(d for d in _load("tekton/kiln-multiarch.yaml") if d["kind"] == "Task"
                and d["metadata"]["name"] == "kiln-index")
    spec = task["spec"]
    dest = f"{registry.host}/{fan_out['app']}:tekton"
    params = {p["name"]: p.get("default") for p in spec["params"]}
    params.update(IMAGE=dest, EXTRA_ARGS=[f"--registry-certificate={registry.host}={CA_DIR}/ca.crt"],
                  SOURCES=[f"--source={registry.host}/{fan_out['app']}:latest-{a}@{d}"
                           for a, d in fan_out["digests"].items()])
    results = os.path.join(work, f"tekton-results-{uuid.uuid4().hex[:6]}")
    scripts = os.path.join(work, f"tekton-scripts-{uuid.uuid4().hex[:6]}")
    os.makedirs(results)
    os.makedirs(scripts)
    os.chmod(results, 0o777)       # an emptyDir: writable by every step's user
    config = docker_config_dir(work, {registry.host: (registry.username, registry.password)})
    ws = {w["name"]: w for w in spec["workspaces"]}
    mounts = [Mount(results, "/tekton/results", rw=True), Mount(config, ws["dockerconfig"]["mountPath"]),
              Mount(scripts, "/tekton/scripts"), Mount(registry.cert_dir, CA_DIR)]

    def subst(value: str) -> str:
        value = re.sub(r"\$\(params\.([A-Z_]+)\)", lambda m: params[m.group(1)], value)
        return re.sub(r"\$\(results\.(\w+)\.path\)", lambda m: f"/tekton/results/{m.group(1)}", value)

    for i, step in enumerate(spec["steps"]):
        image = images["debug" if subst(step["image"]).endswith(":debug") else "executor"]
        settings = pod_settings({}, step)
        if "script" in step:
            path = os.path.join(scripts, f"script-{i}")
            with open(path, "w") as f:
                f.write(subst(step["script"]))
            os.chmod(path, 0o755)
            argv = [f"/tekton/scripts/script-{i}"]
        else:
            argv = list(image.image_config()["process"]["args"])
            for a in step["args"]:
                m = re.fullmatch(r"\$\(params\.([A-Z_]+)\[\*\]\)", a)
                argv += params[m.group(1)] if m else [subst(a)]
        p = Pod(image, work, args=argv, mounts=mounts, overlay_rootfs=True, **settings).run(timeout=300)
        assert p.returncode == 0, (step["name"], p.stdout[-3000:], p.stderr[-5000:])
    with open(os.path.join(results, "IMAGE_DIGEST")) as f:
        assert f.read() == fan_out["index"]
    with open(os.path.join(results, "IMAGE_URL")) as f:
        assert f.read() == dest
    assert _digest(_raw(registry, dest)) == fan_out["index"]


def test_kubernetes_emulated_job_under_runc(images, work, token_registry, base):
    """build-job-multiarch.yaml: one Job, the hardened pod (user namespace, default seccomp profile, 7
    capabilities), both platforms, arm64's RUN through QEMU. In the container kiln cannot see the node's
    binfmt_misc (its own /proc has none mounted) and says so; the RUN works through the kernel's handler."""
    app = f"example/emulated-{uuid.uuid4().hex[:8]}"
    ctx = context_dir(work, {"Dockerfile": DOCKERFILE.format(base=base)})
    (job,) = _jobs("kubernetes/build-job-multiarch.yaml").values()
    digest, stderr = _run_job(job, images, work, token_registry, app, ctx)
    assert "cannot see /proc/sys/fs/binfmt_misc" in stderr, stderr[-3000:]
    _check_index(token_registry, f"{token_registry.host}/{app}:latest", digest, work)

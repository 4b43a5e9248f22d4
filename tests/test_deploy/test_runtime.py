"""Issue 7, the runtime lines: deploy/'s manifests run for real. Each container spec (image, command, args,
env, volume mounts, securityContext with its capability set) becomes a runc bundle (`runc spec`, edited:
args, env, mounts, capabilities exactly the manifest's set in bounding/effective/permitted and no others)
around the executor image that kiln built of itself, run against the rig's registries.

What is replaced, and nothing else: registry.example.com by the rig's registry; the Job's git context by a
context directory mounted at /workspace; the registry's CA (self-signed, a pod would have it mounted) is given
with --registry-certificate. Not reproduced: the RuntimeDefault seccomp profile (runc spec has none), resource
limits, Tekton's entrypoint binary (the step's args go to the image's entrypoint, as Tekton runs it).
"""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml

from tests.rig.judge import judge_registry_image
from tests.test_executor_image.kilnimage import (DEFAULT_CAPS, Mount, Pod, context_dir, docker_config_dir,
                                                 kiln_built_image)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(REPO, "deploy")
EXAMPLE = "registry.example.com"
CA_DIR = "/kaniko/test-ca"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("KILN_SKIP_SLOW") == "1", reason="KILN_SKIP_SLOW=1"),
]


def _load(rel: str) -> list[dict]:
    with open(os.path.join(DEPLOY, rel)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def _caps(security_context: dict) -> list[str]:
    """The capability set a container gets from this securityContext (drop ALL + add)."""
    caps = security_context["capabilities"]
    assert caps["drop"] == ["ALL"], "the manifests drop everything and add back what a build needs"
    return ["CAP_" + c for c in caps["add"]]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return str(tmp_path_factory.mktemp("deploy-runtime"))


@pytest.fixture(scope="module")
def images(plain_registry, work):
    return {"executor": kiln_built_image(plain_registry, "executor", work),
            "debug": kiln_built_image(plain_registry, "debug", work)}


def _image_for(ref: str, images) -> object:
    assert ref.startswith(EXAMPLE + "/kiln/executor:"), ref
    return images["debug" if ref.endswith(":debug") else "executor"]


def _manifest_digest(registry, ref: str) -> str:
    p = subprocess.run(["skopeo", "inspect", "--raw", *registry.skopeo_args(""), f"docker://{ref}"],
                       capture_output=True, check=True)
    import hashlib
    return "sha256:" + hashlib.sha256(p.stdout).hexdigest()


def _tags(registry, repo: str) -> list[str]:
    p = subprocess.run(["skopeo", "list-tags", *registry.skopeo_args(""), f"docker://{registry.host}/{repo}"],
                       capture_output=True, text=True)
    return (json.loads(p.stdout).get("Tags") or []) if p.returncode == 0 else []


# The capability proof: apt-get (drops to _apt: SETUID/SETGID; dpkg's chown), RUN chown, setcap (SETFCAP), a
# RUN as another user, all with exactly the manifests' set.
CAPS_DOCKERFILE = """\
FROM {base}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libcap2-bin \\
 && rm -rf /var/lib/apt/lists/*
RUN cp /bin/sleep /usr/local/bin/binder && setcap cap_net_bind_service=+ep /usr/local/bin/binder \\
 && getcap /usr/local/bin/binder > /getcap
RUN mkdir -p /srv/data && touch /srv/data/owned && chown 1000:1000 /srv/data && chown 1001:50 /srv/data/owned
USER 1000:1000
RUN id -u > /srv/data/uid && grep ^Cap /proc/self/status > /srv/data/caps
"""


def test_kubernetes_job_under_runc_with_its_capability_set(images, work, token_registry, plain_registry,
                                                           debian_base, base_images):
    (job,) = _load("kubernetes/build-job.yaml")
    pod_spec = job["spec"]["template"]["spec"]
    (c,) = pod_spec["containers"]
    image = _image_for(c["image"], images)
    caps = _caps(c["securityContext"])
    assert sorted(caps) != sorted(DEFAULT_CAPS) and "CAP_NET_RAW" not in caps and "CAP_SETPCAP" not in caps
    base = base_images.copy_image(debian_base, token_registry, "base/debian:bookworm")
    args = []
    for a in c["args"]:
        if a.startswith("--context=git://"):
            a = "--context=dir:///workspace"
        args.append(a.replace(EXAMPLE, token_registry.host))
    args.append(f"--registry-certificate={token_registry.host}={CA_DIR}/ca.crt")
    dest = next(a.split("=", 1)[1] for a in args if a.startswith("--destination="))
    # Volumes: the Secret's items as files in a directory; the termination log the kubelet mounts.
    secret_dirs = {}
    for v in pod_spec["volumes"]:
        assert [i["path"] for i in v["secret"]["items"]] == ["config.json"]
        secret_dirs[v["name"]] = docker_config_dir(work, {token_registry.host: (token_registry.username,
                                                                                token_registry.password)})
    mounts = [Mount(secret_dirs[m["name"]], m["mountPath"], rw=not m.get("readOnly", False))
              for m in c["volumeMounts"]]
    term = os.path.join(work, "termination-log")
    open(term, "w").close()
    assert c.get("terminationMessagePolicy") == "File"
    mounts += [Mount(term, c.get("terminationMessagePath", "/dev/termination-log"), rw=True),
               Mount(context_dir(work, {"Dockerfile": CAPS_DOCKERFILE.format(base=base)}), "/workspace", rw=True),
               Mount(token_registry.cert_dir, CA_DIR)]
    sc = c["securityContext"]
    assert sc["runAsUser"] == 0 and sc["privileged"] is False
    pod = Pod(image, work, args=(c["command"] + args) if c.get("command") else None, extra_args=args,
              env={e["name"]: e["value"] for e in c.get("env", [])}, mounts=mounts, caps=caps,
              cwd=c.get("workingDir"), no_new_privileges=not sc.get("allowPrivilegeEscalation", True))
    pod.prepare()
    cfg = json.load(open(os.path.join(pod.bundle, "config.json")))
    for kind in ("bounding", "effective", "permitted"):
        assert sorted(cfg["process"]["capabilities"][kind]) == sorted(caps)
    assert not cfg["process"]["capabilities"].get("inheritable") and not cfg["process"]["capabilities"].get("ambient")
    p = pod.run(timeout=400)
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-5000:])

    digest = open(term).read()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), digest
    assert digest == _manifest_digest(token_registry, dest)
    report = judge_registry_image(token_registry, dest)
    fs = report.filesystem()
    _, binder = fs["usr/local/bin/binder"]
    assert "security.capability" in binder.xattrs, binder.xattrs       # setcap's xattr is in the layer
    assert "cap_net_bind_service=ep" in report.read("getcap").decode()
    assert "usr/sbin/setcap" in fs                                      # installed by apt-get
    assert (fs["srv/data"][1].uid, fs["srv/data"][1].gid) == (1000, 1000)
    assert (fs["srv/data/owned"][1].uid, fs["srv/data/owned"][1].gid) == (1001, 50)
    assert report.read("srv/data/uid") == b"1000\n" and fs["srv/data/uid"][1].uid == 1000
    # The RUN's bounding set is exactly the manifest's (capability numbers from linux/capability.h).
    numbers = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5,
               "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_MKNOD": 27, "CAP_SETFCAP": 31}
    status = dict(line.split(":\t") for line in report.read("srv/data/caps").decode().splitlines())
    assert int(status["CapBnd"], 16) == sum(1 << numbers[cap] for cap in caps), status
    assert not any(p == "kaniko" or p.startswith("kaniko/") for p in fs)
    assert _tags(token_registry, "example/app/cache"), "--cache=true pushed no cache layer"


def _tekton_subst(value: str, params: dict, paths: dict) -> str:
    def one(m):
        key = m.group(1)
        if key.startswith("params."):
            return params[key[len("params."):]]
        return paths[key]
    return re.sub(r"\$\(([^)]+)\)", one, value)


def test_tekton_task_under_runc(images, work, token_registry, plain_registry, base_images):
    (task,) = _load("tekton/kiln-task.yaml")
    spec = task["spec"]
    base = base_images.copy_image(base_images.busybox_index, token_registry, "base/busybox:1")
    ctx = context_dir(work, {"Dockerfile": f"FROM {base}\nCOPY hello.txt /hello.txt\nRUN wc -c /hello.txt > /size\n",
                             "hello.txt": "from a tekton step\n"})
    dest = token_registry.ref("private/tekton/app:1")
    params = {p["name"]: p.get("default") for p in spec["params"]}
    params.update(IMAGE=dest, EXTRA_ARGS=[f"--registry-certificate={token_registry.host}={CA_DIR}/ca.crt"])
    results = os.path.join(work, "tekton-results")
    scripts = os.path.join(work, "tekton-scripts")
    os.makedirs(results)
    os.makedirs(scripts)
    ws = {w["name"]: w for w in spec["workspaces"]}
    paths = {"workspaces.source.path": "/workspace/source"}
    paths.update({f"results.{r['name']}.path": f"/tekton/results/{r['name']}" for r in spec["results"]})
    dockerconfig = docker_config_dir(work, {token_registry.host: (token_registry.username, token_registry.password)})
    mounts = [Mount(ctx, "/workspace/source", rw=True), Mount(results, "/tekton/results", rw=True),
              Mount(dockerconfig, ws["dockerconfig"]["mountPath"]), Mount(scripts, "/tekton/scripts"),
              Mount(token_registry.cert_dir, CA_DIR)]
    for i, step in enumerate(spec["steps"]):
        image = _image_for(_tekton_subst(step["image"], params, paths), images)
        caps = _caps(step["securityContext"]) if "securityContext" in step else list(DEFAULT_CAPS)
        if "script" in step:   # Tekton writes the script to a file and runs it: its #! line picks the shell
            path = os.path.join(scripts, f"script-{i}")
            with open(path, "w") as f:
                f.write(_tekton_subst(step["script"], params, paths))
            os.chmod(path, 0o755)
            argv = [f"/tekton/scripts/script-{i}"]
        else:
            argv = []
            for a in step.get("args", []):
                m = re.fullmatch(r"\$\(params\.([A-Z_]+)\)", a)
                if m and isinstance(params[m.group(1)], list):
                    argv += params[m.group(1)]        # an array parameter expands to its elements
                else:
                    argv.append(_tekton_subst(a, params, paths))
            argv = (step["command"] if step.get("command") else image.image_config()["process"]["args"]) + argv
        cwd = _tekton_subst(step["workingDir"], params, paths) if "workingDir" in step else None
        p = Pod(image, work, args=argv, mounts=mounts, caps=caps, cwd=cwd,
                env={e["name"]: e["value"] for e in step.get("env", [])}).run(timeout=300)
        assert p.returncode == 0, (step["name"], p.stdout[-3000:], p.stderr[-5000:])
    digest = open(os.path.join(results, "IMAGE_DIGEST")).read()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), repr(digest)   # exactly, no newline
    assert digest == _manifest_digest(token_registry, dest)
    assert open(os.path.join(results, "IMAGE_URL")).read() == dest
    report = judge_registry_image(token_registry, dest)
    assert report.read("hello.txt") == b"from a tekton step\n"
    assert report.read("size").decode().split()[0] == "19"


@pytest.mark.parametrize("flavour", ["basic", "token"])
def test_gitlab_template_under_the_debug_shell(flavour, images, work, registries, base_images):
    registry = registries[flavour]
    (doc,) = _load("gitlab/kiln.gitlab-ci.yml")
    job = doc[".kiln-build"]
    assert job["image"]["entrypoint"] == [""]
    project_dir = "/builds/group/app"
    ci = {
        "CI": "true", "GITLAB_CI": "true", "CI_SERVER": "yes",
        "CI_PROJECT_DIR": project_dir, "CI_PROJECT_PATH": "group/app", "CI_PROJECT_NAME": "app",
        "CI_REGISTRY": registry.host, "CI_REGISTRY_IMAGE": f"{registry.host}/group/app",
        "CI_REGISTRY_USER": registry.username, "CI_REGISTRY_PASSWORD": registry.password,
        "CI_COMMIT_BRANCH": "main", "CI_COMMIT_REF_NAME": "main", "CI_COMMIT_REF_SLUG": "main",
        "CI_COMMIT_SHA": "0" * 40, "CI_JOB_ID": "42", "CI_PIPELINE_ID": "7", "CI_JOB_NAME": "build",
        "CI_DEFAULT_BRANCH": "main", "CI_BUILDS_DIR": "/builds",
    }
    # GitLab's Kubernetes executor: the job runs in a pod, whose containers the kubelet gives the service
    # variables. The job's shell is PID 1 and kiln a child of it, so this (or Docker's /.dockerenv with the
    # docker executor) is what tells kiln it is in a container; without any, it refuses to build on /, as
    # kaniko does.
    kubelet = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
               "KUBERNETES_PORT": "tcp://10.96.0.1:443"}
    # The project's own job variables (what a user sets next to `extends: .kiln-build`): the registry's CA.
    job_vars = {"KILN_EXTRA_ARGS": f"--registry-certificate {registry.host}={CA_DIR}/ca.crt --verbosity debug"}
    variables = dict(doc["variables"])
    variables.update(job_vars)
    env = {**kubelet, **ci}
    for k, v in variables.items():   # GitLab expands variable references in variables
        env[k] = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), v)
    image = _image_for(env["KILN_IMAGE"], images)
    assert image.target == "debug"
    base = base_images.copy_image(base_images.busybox_index, registry, "group/app/base:1")
    ctx = context_dir(work, {"Dockerfile": f"FROM {base}\nRUN echo gitlab > /built-by\nCOPY Dockerfile /Dockerfile\n"})
    script = "set -eo pipefail\n" + "\n".join(job["script"]) + "\n"
    p = Pod(image, work, args=["/busybox/sh", "-c", script], env=env, cwd=project_dir,
            mounts=[Mount(ctx, project_dir, rw=True), Mount(registry.cert_dir, CA_DIR)]).run(timeout=300)
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-5000:])
    assert f"credentials for {registry.host} from $CI_REGISTRY_USER/$CI_REGISTRY_PASSWORD (the gitlab helper)" in p.stderr
    assert not os.listdir(os.path.join(image.bundle, "rootfs", "kaniko", ".docker"))   # no config.json
    dest = f"{registry.host}/group/app:main"
    digest = open(os.path.join(ctx, "image-digest")).read()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), digest
    assert digest == _manifest_digest(registry, dest)
    report = judge_registry_image(registry, dest)
    assert report.read("built-by") == b"gitlab\n"
    assert _tags(registry, "group/app/cache"), "--cache=true pushed no cache layer"
    if flavour == "token":
        pushes = [r for r in registry.token_log() if any("group/app" in s and "push" in s for s in r.get("scopes") or [])]
        assert pushes and all(r["account"] == registry.username for r in pushes if r.get("granted"))

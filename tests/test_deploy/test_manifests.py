"""deploy/: every manifest parses, has the structure its platform expects, and every executor or warmer
invocation in it, with its variables filled in, is accepted by kiln's real command-line parser. Their security
settings are the ones tests/test_deploy/test_capabilities.py and test_runtime.py prove under runc: exactly
the capabilities each build step needs (tests/test_deploy/security.py), the runtime's default seccomp profile,
no service account token, resource limits, a user namespace where the manifest is the hardened one."""
from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess

import pytest
import yaml

from executor import cli
from tests.test_deploy.security import HARDENED, WITHOUT_USER_NAMESPACE, gitlab_runner_settings, pod_settings

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(REPO, "deploy")


def _docs(path: str) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def _check_security(container: dict, build: bool, pod_spec: dict | None = None) -> None:
    """A build container: root (a build on / needs it), not privileged, exactly the tested capabilities (no
    MKNOD in a user namespace), a writable root; anything else (the warmer, Tekton's result step): no
    capability, no privilege escalation."""
    pod_spec = pod_spec or {}
    sc = container["securityContext"]
    settings = pod_settings(pod_spec, container)
    assert sc.get("privileged", False) is False
    assert settings["seccomp"], "the runtime's default seccomp profile"
    if build:
        wanted = HARDENED if settings["userns"] else WITHOUT_USER_NAMESPACE
        assert sorted(settings["caps"]) == sorted(wanted), f"capabilities {settings['caps']}, tested: {wanted}"
        assert settings["user"][0] == 0 and sc.get("runAsNonRoot", False) is False
        assert not settings["readonly_rootfs"] and not settings["no_new_privileges"]
        assert {"cpu", "memory"} <= set(container.get("resources", container.get("computeResources", {}))["limits"])
    else:
        assert settings["caps"] == [] and settings["no_new_privileges"]


def _executor_args(argv: list[str]) -> cli.Options:
    opts = cli.parse_executor_args(argv, env={})
    cli.validate_executor(opts)
    return opts


def _k8s_containers():
    for path in sorted(glob.glob(os.path.join(DEPLOY, "kubernetes", "*.yaml"))):
        for doc in _docs(path):
            if doc["kind"] == "Job":
                assert doc["apiVersion"] == "batch/v1"
                spec = doc["spec"]["template"]["spec"]
                assert spec["restartPolicy"] == "Never"
                for c in spec["containers"]:
                    yield path, spec, c


@pytest.mark.parametrize("path,spec,container", list(_k8s_containers()),
                         ids=lambda v: os.path.basename(v) if isinstance(v, str) else "")
def test_kubernetes_jobs(path, spec, container):
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    assert "/kaniko/.docker" in mounts, "docker config mounted where kaniko reads it"
    secret = volumes[mounts["/kaniko/.docker"]["name"]]["secret"]
    assert {"key": "config.json", "path": "config.json"} in secret["items"]
    for m in mounts.values():
        assert m["name"] in volumes
    assert spec["automountServiceAccountToken"] is False
    if container.get("command") == ["/kaniko/warmer"]:
        _check_security(container, build=False, pod_spec=spec)
        assert spec["hostUsers"] is False and spec["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        opts = cli.parse_warmer_args(container["args"], env={})
        assert opts.images and opts.cache_dir in mounts
    elif container["args"][0] == "index":    # `executor index`: builds nothing, a plain user on a read-only root
        assert "command" not in container, "the image's entry point is /kaniko/executor"
        _check_security(container, build=False, pod_spec=spec)
        assert spec["hostUsers"] is False and spec["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        opts = cli.parse_index_args(container["args"][1:], env={})
        assert opts.destinations and len(opts.sources) >= 2 and opts.digest_file == "/dev/termination-log"
        assert container["resources"]["requests"]
    else:
        assert "command" not in container, "the image's entry point is /kaniko/executor"
        _check_security(container, build=True, pod_spec=spec)
        opts = _executor_args(container["args"])
        assert opts.destinations and opts.digest_file == "/dev/termination-log"
        assert container["resources"]["requests"]


def test_the_hardened_job_is_the_recommended_one():
    (job,) = _docs(os.path.join(DEPLOY, "kubernetes", "build-job-hardened.yaml"))
    spec = job["spec"]["template"]["spec"]
    assert spec["hostUsers"] is False and spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = spec["containers"]
    assert sorted(pod_settings(spec, container)["caps"]) == sorted(HARDENED)
    with open(os.path.join(DEPLOY, "README.md")) as f:
        readme = f.read()
    first_job = readme.index("`kubernetes/build-job")
    assert readme[first_job:].startswith("`kubernetes/build-job-hardened.yaml`") and "recommended" in \
        readme[first_job:readme.index("\n", first_job)]


def test_gitlab_runner_config_carries_the_hardened_settings():
    settings = gitlab_runner_settings(os.path.join(DEPLOY, "gitlab", "runner-config.toml"))
    assert sorted(settings["caps"]) == sorted(HARDENED)
    assert settings["userns"] and settings["seccomp"] and settings["automount_token"] is False
    assert settings["user"][0] == 0 and not settings["no_new_privileges"] and not settings["readonly_rootfs"]
    with open(os.path.join(DEPLOY, "gitlab", "kiln.gitlab-ci.yml")) as f:
        assert "runner-config.toml" in f.read(), "the template points to the runner settings it needs"


def test_kubernetes_pvc_for_warmer_cache():
    docs = _docs(os.path.join(DEPLOY, "kubernetes", "warmer-job.yaml"))
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"}
    job = next(d for d in docs if d["kind"] == "Job")
    used = {v["persistentVolumeClaim"]["claimName"] for v in job["spec"]["template"]["spec"]["volumes"]
            if "persistentVolumeClaim" in v}
    assert used <= claims and used


def _tekton_subst(value: str, params: dict[str, str], task: dict) -> str:
    value = re.sub(r"\$\(params\.([A-Z_]+)\)", lambda m: params[m.group(1)], value)
    value = value.replace("$(workspaces.source.path)", "/workspace/source")
    for r in task["spec"]["results"]:
        value = value.replace(f"$(results.{r['name']}.path)", f"/tekton/results/{r['name']}")
    assert "$(" not in value, f"unsubstituted variable in {value}"
    return value


def test_tekton_task_has_the_catalog_kaniko_interface():
    task = _docs(os.path.join(DEPLOY, "tekton", "kiln-task.yaml"))[0]
    assert task["apiVersion"] == "tekton.dev/v1" and task["kind"] == "Task"
    params = {p["name"]: p for p in task["spec"]["params"]}
    assert {"IMAGE", "DOCKERFILE", "CONTEXT", "EXTRA_ARGS", "BUILDER_IMAGE"} <= set(params)
    assert params["EXTRA_ARGS"]["type"] == "array" and params["EXTRA_ARGS"]["default"] == []
    assert params["DOCKERFILE"]["default"] == "./Dockerfile" and params["CONTEXT"]["default"] == "./"
    workspaces = {w["name"]: w for w in task["spec"]["workspaces"]}
    assert "source" in workspaces
    assert workspaces["dockerconfig"]["optional"] is True
    assert workspaces["dockerconfig"]["mountPath"] == "/kaniko/.docker"
    assert {r["name"] for r in task["spec"]["results"]} == {"IMAGE_DIGEST", "IMAGE_URL"}


@pytest.mark.parametrize("extra", [[], ["--cache=true", "--snapshot-mode=redo", "--build-arg", "A=1"]])
def test_tekton_step_invocation_parses(extra):
    task = _docs(os.path.join(DEPLOY, "tekton", "kiln-task.yaml"))[0]
    step = next(s for s in task["spec"]["steps"] if s["name"] == "build-and-push")
    _check_security(step, build=True)
    _check_security(next(s for s in task["spec"]["steps"] if s["name"] == "write-url"), build=False)
    values = {"IMAGE": "registry.example.com/app:1", "DOCKERFILE": "./Dockerfile", "CONTEXT": "./",
              "BUILDER_IMAGE": "kiln", "SHELL_IMAGE": "kiln:debug"}
    argv: list[str] = []
    for arg in step["args"]:
        if arg == "$(params.EXTRA_ARGS)":
            argv.extend(extra)   # Tekton splices an array param in place
        else:
            argv.append(_tekton_subst(arg, values, task))
    opts = _executor_args(argv)
    assert opts.destinations == ["registry.example.com/app:1"]
    assert opts.digest_file == "/tekton/results/IMAGE_DIGEST"
    url_step = next(s for s in task["spec"]["steps"] if s["name"] == "write-url")
    assert url_step["script"].startswith("#!/busybox/sh")
    assert "$(results.IMAGE_URL.path)" in url_step["script"]


GITLAB_ENV = {
    "CI_PROJECT_DIR": "/builds/group/project", "CI_REGISTRY_IMAGE": "registry.gitlab.example.com/group/project",
    "CI_COMMIT_REF_SLUG": "main", "CI_COMMIT_TAG": "", "CI_REGISTRY": "registry.gitlab.example.com",
}


def _gitlab_argv(template: dict, extra: str, tag: str) -> list[str]:
    variables = {**GITLAB_ENV, **{k: str(v) for k, v in template["variables"].items()}}
    variables["KILN_EXTRA_ARGS"] = extra
    variables["TAG"] = tag
    script = template[".kiln-build"]["script"]
    line = next(s for s in script if s.strip().startswith("/kaniko/executor"))

    def expand(text: str) -> str:
        for _ in range(3):
            text = re.sub(r"\$\{(\w+)\}", lambda m: variables.get(m.group(1), ""), text)
        return text

    words = shlex.split(expand(line))
    assert words[0] == "/kaniko/executor"
    return words[1:]


@pytest.mark.parametrize("extra,tag", [("", "main"), ("--build-arg VERSION=1 --cache-ttl=24h", "v1.2.3")])
def test_gitlab_template(extra, tag):
    with open(os.path.join(DEPLOY, "gitlab", "kiln.gitlab-ci.yml")) as f:
        template = yaml.safe_load(f)
    job = template[".kiln-build"]
    assert job["image"]["entrypoint"] == [""]
    assert job["image"]["name"] == "${KILN_IMAGE}" and template["variables"]["KILN_IMAGE"].endswith(":debug")
    opts = _executor_args(_gitlab_argv(template, extra, tag))
    assert opts.destinations == [f"registry.gitlab.example.com/group/project:{tag}"]
    assert opts.cache and opts.cache_repo == "registry.gitlab.example.com/group/project/cache"
    assert "docker/config.json" not in "\n".join(job["script"]), "credentials come from CI_REGISTRY_*"


def test_a_misspelt_flag_fails_the_parser():
    with pytest.raises(cli.UsageError, match="--destinaton"):
        _executor_args(["--destinaton=x/y:z", "--context=/w"])


# ---- deploy/cloud: GKE, EKS, AKS without a docker config ------------------------------------------
CLOUD_EXAMPLES = [
    ("gke-build.yaml", "google", "gs://", "iam.gke.io/gcp-service-account"),
    ("eks-build.yaml", "ecr", "s3://", "eks.amazonaws.com/role-arn"),
    ("aks-build.yaml", "acr", "https://", "azure.workload.identity/client-id"),
]


@pytest.mark.parametrize("name,helper,scheme,annotation", CLOUD_EXAMPLES)
def test_cloud_examples(name, helper, scheme, annotation):
    from executor.engine.buckets import is_bucket_context
    from executor.registry import helpers
    from executor.registry.reference import Reference

    docs = {d["kind"]: d for d in _docs(os.path.join(DEPLOY, "cloud", name))}
    account = docs["ServiceAccount"]
    assert annotation in account["metadata"]["annotations"]
    spec = docs["Job"]["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == account["metadata"]["name"] and spec["restartPolicy"] == "Never"
    if helper == "acr":
        assert docs["Job"]["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    (container,) = spec["containers"]
    _check_security(container, build=True)
    assert "/kaniko/.docker" not in {m["mountPath"] for m in container.get("volumeMounts", [])}, \
        "the point of these examples: no docker config, the pod's cloud identity"
    opts = _executor_args(container["args"])
    assert opts.context.startswith(scheme) and is_bucket_context(opts.context)
    for ref in (*opts.destinations, opts.cache_repo):
        host = Reference.parse(ref).registry
        routed = {h for h in helpers.KNOWN if h not in ("env", "gitlab") and helpers.applies(h, host)}
        assert routed == {helper}, (ref, routed)
    assert opts.registry.credential_helpers == ["env", "google", "ecr", "acr", "gitlab"]


def test_deploy_readme_lists_every_file():
    with open(os.path.join(DEPLOY, "README.md")) as f:
        readme = f.read()
    paths = sorted(glob.glob(os.path.join(DEPLOY, "*", "*.y*ml")) + glob.glob(os.path.join(DEPLOY, "*", "*.toml")))
    assert len(paths) >= 19
    for path in paths:
        assert f"`{os.path.relpath(path, DEPLOY)}`" in readme, path


# ---- multi-platform images (issue 16): emulated in one build, or native per architecture plus `executor index` ----
ARCHES = ("amd64", "arm64")


def _jobs(name: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in _docs(os.path.join(DEPLOY, "kubernetes", name)) if d["kind"] == "Job"}


def _pod(job: dict) -> tuple[dict, dict]:
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    return spec, container


def _same_pod_as_the_hardened_job(job: dict) -> None:
    """Everything build-job-hardened.yaml sets, set the same: the multi-platform Jobs differ only in their args
    (--custom-platform, the tag) and where they run (nodeSelector)."""
    hardened_spec, hardened = _pod(_jobs("build-job-hardened.yaml")["kiln-build"])
    spec, container = _pod(job)
    assert {k: v for k, v in spec.items() if k not in ("containers", "nodeSelector")} == \
        {k: v for k, v in hardened_spec.items() if k != "containers"}
    assert {k: v for k, v in container.items() if k != "args"} == {k: v for k, v in hardened.items() if k != "args"}
    assert job["spec"]["backoffLimit"] == 0


def _node_arch(spec: dict) -> str:
    return spec["nodeSelector"]["kubernetes.io/arch"]


def test_kubernetes_emulated_job_is_the_hardened_one_with_two_platforms():
    from executor.run.binfmt import runs_natively

    (job,) = _jobs("build-job-multiarch.yaml").values()
    _same_pod_as_the_hardened_job(job)
    spec, container = _pod(job)
    opts = _executor_args(container["args"])
    assert opts.platforms == ["linux/amd64", "linux/arm64"]
    # the node it is placed on runs one platform natively; the DaemonSet registers QEMU for the others there
    host = f"linux/{_node_arch(spec)}"
    foreign = [p for p in opts.platforms if not runs_natively(p, host)]
    assert foreign == ["linux/arm64"]
    docs = _docs(os.path.join(DEPLOY, "kubernetes", "binfmt-daemonset.yaml"))
    (daemonset,) = [d for d in docs if d["kind"] == "DaemonSet"]
    ds_spec = daemonset["spec"]["template"]["spec"]
    assert _node_arch(ds_spec) == _node_arch(spec)
    (install,) = ds_spec["initContainers"]
    assert install["image"].startswith("docker.io/tonistiigi/binfmt:qemu-v")
    installed = install["args"][install["args"].index("--install") + 1].split(",")
    assert installed == ["arm64", "arm"]
    assert all(p.split("/")[1] in installed for p in foreign)


def test_binfmt_daemonset_is_privileged_and_nothing_else_is():
    """The one privileged container in deploy/: the init container registering QEMU in the node's kernel. Its
    namespace admits privileged pods; the container that keeps the pod running has no privilege at all."""
    docs = _docs(os.path.join(DEPLOY, "kubernetes", "binfmt-daemonset.yaml"))
    (namespace,) = [d for d in docs if d["kind"] == "Namespace"]
    (daemonset,) = [d for d in docs if d["kind"] == "DaemonSet"]
    assert daemonset["metadata"]["namespace"] == namespace["metadata"]["name"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    spec = daemonset["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    (install,) = spec["initContainers"]
    assert install["securityContext"] == {"privileged": True}
    (pause,) = spec["containers"]
    _check_security(pause, build=False, pod_spec=spec)
    assert pause["securityContext"]["runAsNonRoot"] is True and pause["securityContext"]["readOnlyRootFilesystem"]
    privileged = []
    for path in sorted(glob.glob(os.path.join(DEPLOY, "*", "*.yaml"))):
        for doc in _docs(path):
            text = yaml.safe_dump(doc)
            if "privileged: true" in text:
                privileged.append((os.path.basename(path), doc["kind"]))
    assert privileged == [("binfmt-daemonset.yaml", "DaemonSet")]


def test_kubernetes_native_fan_out_then_index():
    builds = _jobs("build-jobs-per-arch.yaml")
    assert sorted(builds) == [f"kiln-build-{a}" for a in ARCHES]
    destinations = []
    for arch in ARCHES:
        job = builds[f"kiln-build-{arch}"]
        _same_pod_as_the_hardened_job(job)
        spec, container = _pod(job)
        assert _node_arch(spec) == arch
        opts = _executor_args(container["args"])
        assert opts.platforms == [f"linux/{arch}"], "each Job builds its node's own platform"
        (dest,) = opts.destinations
        assert dest.endswith(f":latest-{arch}")
        destinations.append(dest)
    (index_job,) = _jobs("index-job.yaml").values()
    spec, container = _pod(index_job)
    assert container["args"][0] == "index"
    opts = cli.parse_index_args(container["args"][1:], env={})
    assert opts.sources == destinations
    assert opts.destinations == [destinations[0].rsplit("-", 1)[0]]
    assert _node_arch(spec) == "amd64", "where the executor image runs"


def test_an_index_invocation_with_a_misspelt_flag_fails_the_parser():
    with pytest.raises(cli.UsageError, match="--sources"):
        cli.parse_index_args(["--destination=r/a:1", "--sources=r/a:1-amd64"], env={})
    with pytest.raises(cli.UsageError, match="at least one --source"):
        cli.parse_index_args(["--destination=r/a:1"], env={})


def _gitlab_multiarch() -> dict:
    with open(os.path.join(DEPLOY, "gitlab", "kiln-multiarch.gitlab-ci.yml")) as f:
        return yaml.safe_load(f)


def _resolve(doc: dict, name: str) -> dict:
    """A job with its `extends` merged in, as GitLab does (hashes deep-merged, everything else replaced)."""
    def merge(base: dict, over: dict) -> dict:
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out
    job = doc[name]
    parent = job.get("extends")
    resolved = merge(_resolve(doc, parent), job) if parent else dict(job)
    resolved.pop("extends", None)
    return resolved


def _expand(text: str, variables: dict[str, str]) -> str:
    for _ in range(3):
        text = re.sub(r"\$\{(\w+)\}", lambda m: variables.get(m.group(1), ""), text)
    return text


def _gitlab_env(doc: dict, job: dict, **extra: str) -> dict[str, str]:
    env = {**GITLAB_ENV, **{k: str(v) for k, v in doc["variables"].items()}}
    env.update({k: str(v) for k, v in job.get("variables", {}).items()})
    env.update(extra)
    return env


def _gitlab_build_argv(doc: dict, job: dict, **extra: str) -> tuple[list[str], dict[str, str]]:
    env = _gitlab_env(doc, job, TAG="main", **extra)
    assert job["script"][0].strip().startswith('if [ -n "${CI_COMMIT_TAG}" ]'), "TAG is set in the job's own script"
    line = next(s for s in job["script"] if s.strip().startswith("/kaniko/executor"))
    words = shlex.split(_expand(line, env))
    assert words[0] == "/kaniko/executor"
    return words[1:], env


def test_gitlab_emulated_job():
    doc = _gitlab_multiarch()
    job = _resolve(doc, ".kiln-build-multiarch")
    assert job["image"] == {"name": "${KILN_IMAGE}", "entrypoint": [""]}
    assert doc["variables"]["KILN_IMAGE"].endswith(":debug") and job["stage"] == "build"
    argv, _ = _gitlab_build_argv(doc, job)
    opts = _executor_args(argv)
    assert opts.platforms == ["linux/amd64", "linux/arm64"]
    assert opts.destinations == ["registry.gitlab.example.com/group/project:main"]
    assert job["tags"] == ["kiln-amd64"] and job["artifacts"]["paths"] == ["image-digest"]


def _runner_archs() -> dict[str, str]:
    import tomllib

    with open(os.path.join(DEPLOY, "gitlab", "runner-config-multiarch.toml"), "rb") as f:
        runners = tomllib.load(f)["runners"]
    return {r["name"]: r["kubernetes"]["node_selector"]["kubernetes.io/arch"] for r in runners}


def test_gitlab_multiarch_runners_carry_the_hardened_settings():
    path = os.path.join(DEPLOY, "gitlab", "runner-config-multiarch.toml")
    assert _runner_archs() == {f"kiln-{a}": a for a in ARCHES}
    single = gitlab_runner_settings(os.path.join(DEPLOY, "gitlab", "runner-config.toml"))
    for name in _runner_archs():
        assert gitlab_runner_settings(path, name) == single


def test_gitlab_native_fan_out_then_index(tmp_path):
    doc = _gitlab_multiarch()
    build = _resolve(doc, ".kiln-build-arch")
    (axis,) = build["parallel"]["matrix"]
    assert axis["ARCH"] == list(ARCHES)
    runners = _runner_archs()
    for arch in ARCHES:
        (tag,) = build["tags"]
        assert runners[_expand(tag, {"ARCH": arch})] == arch, "the job's runner places it on a node of its ARCH"
        argv, env = _gitlab_build_argv(doc, build, ARCH=arch)
        opts = _executor_args(argv)
        assert opts.platforms == [f"linux/{arch}"]
        assert opts.destinations == [f"registry.gitlab.example.com/group/project:main-{arch}"]
        assert opts.digest_file == f"/builds/group/project/image-digest-{arch}"
        assert any(os.path.basename(opts.digest_file) == p.replace("*", arch) for p in build["artifacts"]["paths"])
        (tmp_path / os.path.basename(opts.digest_file)).write_text(f"sha256:{arch[-2:] * 32}")   # no newline, as kiln
    index = _resolve(doc, ".kiln-index")
    assert index["stage"] == "index" and runners[index["tags"][0]] == "amd64"
    assert index["variables"]["GIT_STRATEGY"] == "none"
    # the job's script, run by a real shell in a directory holding the build jobs' artifacts, the executor
    # replaced by a printer of its arguments
    env = _gitlab_env(doc, index, KILN_INDEX_EXTRA_ARGS="--registry-certificate registry.gitlab.example.com=/ca.crt")
    script = "\n".join(index["script"]).replace("/kaniko/executor", "printf '%s\\n'")
    p = subprocess.run(["sh", "-ec", script], cwd=tmp_path, env={**env, "PATH": os.environ["PATH"]},
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    argv = p.stdout.splitlines()
    assert argv[0] == "index"
    opts = cli.parse_index_args(argv[1:], env={})
    assert opts.destinations == ["registry.gitlab.example.com/group/project:main"]
    assert opts.sources == [f"registry.gitlab.example.com/group/project:main-{a}@sha256:{a[-2:] * 32}" for a in ARCHES]
    assert opts.digest_file == "/builds/group/project/image-digest"
    assert opts.registry.registry_certificates == {"registry.gitlab.example.com": "/ca.crt"}
    # without the build jobs' artifacts (no needs:) it says what is missing
    empty = tmp_path / "empty"
    empty.mkdir()
    p = subprocess.run(["sh", "-ec", script], cwd=empty, env={**env, "PATH": os.environ["PATH"]},
                       capture_output=True, text=True)
    assert p.returncode == 1 and "name the build job in needs:" in p.stderr and not p.stdout


def _usage(path: str, marker: str) -> dict:
    """A commented .gitlab-ci.yml in a file's header, from the line `#   # <marker>` to the next bare `#`."""
    with open(path) as f:
        lines = f.read().splitlines()
    start = lines.index(f"#   # {marker}") + 1
    end = lines.index("#", start)
    return yaml.safe_load("\n".join(line[len("#   "):] for line in lines[start:end]))


def test_gitlab_multiarch_usage_in_the_header():
    path = os.path.join(DEPLOY, "gitlab", "kiln-multiarch.gitlab-ci.yml")
    doc = _gitlab_multiarch()
    emulated = _usage(path, "1. emulated")
    assert emulated["build"]["extends"] == ".kiln-build-multiarch"
    native = _usage(path, "2. native: one job per ARCH, then the index")
    assert native["build"]["extends"] == ".kiln-build-arch" and native["index"]["extends"] == ".kiln-index"
    assert native["index"]["needs"] == ["build"]
    stages = native["stages"]
    assert stages.index(_resolve(doc, ".kiln-build-arch")["stage"]) < stages.index(_resolve(doc, ".kiln-index")["stage"])
    for usage in (emulated, native):
        (include,) = usage["include"]
        assert include["remote"].endswith("/deploy/gitlab/kiln-multiarch.gitlab-ci.yml")


def _tekton(name: str) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"].get("name") or d["metadata"]["generateName"]): d
            for d in _docs(os.path.join(DEPLOY, "tekton", name))}


def _tekton_argv(step: dict, task: dict, values: dict) -> list[str]:
    argv: list[str] = []
    for arg in step["args"]:
        m = re.fullmatch(r"\$\(params\.([A-Z_]+)(\[\*\])?\)", arg)
        if m and isinstance(values[m.group(1)], list):
            argv.extend(values[m.group(1)])       # an array parameter spliced in place
        else:
            argv.append(_tekton_subst(arg, values, task))
    return argv


def test_tekton_kiln_remote_task():
    objs = _tekton("kiln-multiarch.yaml")
    task = objs[("Task", "kiln-remote")]
    (catalog,) = _docs(os.path.join(DEPLOY, "tekton", "kiln-task.yaml"))
    steps = {s["name"]: s for s in task["spec"]["steps"]}
    catalog_steps = {s["name"]: s for s in catalog["spec"]["steps"]}
    # kiln-task.yaml's build step, security settings and resources unchanged
    for key in ("securityContext", "computeResources", "image"):
        assert steps["build-and-push"][key] == catalog_steps["build-and-push"][key], key
    assert steps["write-url"] == catalog_steps["write-url"]
    _check_security(steps["build-and-push"], build=True)
    assert "workspaces.source" not in yaml.safe_dump(task), "no source workspace: kiln fetches the context"
    assert {r["name"] for r in task["spec"]["results"]} == {"IMAGE_DIGEST", "IMAGE_URL"}
    assert {e["name"] for e in steps["build-and-push"]["env"]} == {"GIT_USERNAME", "GIT_PASSWORD"}
    assert all(e["valueFrom"]["secretKeyRef"]["optional"] is True for e in steps["build-and-push"]["env"])
    for platforms in ("linux/arm64", "linux/amd64,linux/arm64"):
        values = {"IMAGE": "registry.example.com/app:1", "CONTEXT": "git://github.com/example/app.git#refs/heads/main",
                  "DOCKERFILE": "Dockerfile", "PLATFORMS": platforms, "EXTRA_ARGS": ["--cache=true"]}
        opts = _executor_args(_tekton_argv(steps["build-and-push"], task, values))
        assert opts.platforms == platforms.split(",") and opts.cache
        assert opts.context == values["CONTEXT"] and opts.digest_file == "/tekton/results/IMAGE_DIGEST"


def test_tekton_kiln_index_task():
    task = _tekton("kiln-multiarch.yaml")[("Task", "kiln-index")]
    steps = {s["name"]: s for s in task["spec"]["steps"]}
    _check_security(steps["index"], build=False)
    sc = steps["index"]["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0 and sc["readOnlyRootFilesystem"] is True
    _check_security(steps["write-url"], build=False)
    sources = ["--source=registry.example.com/app:1-amd64@sha256:" + "a" * 64,
               "--source=registry.example.com/app:1-arm64@sha256:" + "b" * 64]
    argv = _tekton_argv(steps["index"], task, {"IMAGE": "registry.example.com/app:1", "SOURCES": sources,
                                               "EXTRA_ARGS": ["--insecure-registry=registry.example.com"]})
    assert argv[0] == "index"
    opts = cli.parse_index_args(argv[1:], env={})
    assert opts.registry.insecure_registries == ["registry.example.com"]
    assert opts.sources == [s.split("=", 1)[1] for s in sources]
    assert opts.destinations == ["registry.example.com/app:1"]
    assert opts.digest_file == "/tekton/results/IMAGE_DIGEST"


def test_tekton_native_pipeline_and_its_run():
    objs = _tekton("kiln-multiarch.yaml")
    pipeline = objs[("Pipeline", "kiln-multiarch")]["spec"]
    tasks = {t["name"]: t for t in pipeline["tasks"]}
    pipeline_params = {p["name"] for p in pipeline["params"]}
    for t in tasks.values():       # every task's params exist in the Task it runs; every Pipeline param it uses too
        task = objs[("Task", t["taskRef"]["name"])]
        assert {p["name"] for p in t["params"]} <= {p["name"] for p in task["spec"]["params"]}
        used = set(re.findall(r"\$\(params\.(\w+)", yaml.safe_dump(t["params"])))
        assert used <= pipeline_params, used
    image = "registry.example.com/app:1"
    built = {}
    for arch in ARCHES:
        t = tasks[f"build-{arch}"]
        assert t["taskRef"]["name"] == "kiln-remote"
        params = {p["name"]: p["value"] for p in t["params"]}
        assert params["PLATFORMS"] == f"linux/{arch}"
        built[arch] = params["IMAGE"].replace("$(params.IMAGE)", image)
        assert built[arch] == f"{image}-{arch}"
    index = tasks["index"]
    assert index["taskRef"]["name"] == "kiln-index" and sorted(index["runAfter"]) == [f"build-{a}" for a in ARCHES]
    params = {p["name"]: p["value"] for p in index["params"]}
    digests = {a: f"sha256:{a[-2:] * 32}" for a in ARCHES}

    def result(m):
        return built[m.group(1)] if m.group(2) == "IMAGE_URL" else digests[m.group(1)]
    sources = [re.sub(r"\$\(tasks\.build-(\w+)\.results\.(\w+)\)", result, s) for s in params["SOURCES"]]
    task = objs[("Task", "kiln-index")]
    step = task["spec"]["steps"][0]
    argv = _tekton_argv(step, task, {"IMAGE": params["IMAGE"].replace("$(params.IMAGE)", image), "SOURCES": sources,
                                     "EXTRA_ARGS": []})
    opts = cli.parse_index_args(argv[1:], env={})
    assert opts.sources == [f"{built[a]}@{digests[a]}" for a in ARCHES], "exactly what the builds pushed"
    assert opts.destinations == [image]
    assert {r["name"]: r["value"] for r in pipeline["results"]} == {
        "IMAGE_DIGEST": "$(tasks.index.results.IMAGE_DIGEST)", "IMAGE_URL": "$(tasks.index.results.IMAGE_URL)"}
    # the PipelineRun: each build on a node of its architecture, the index where the executor image runs; the
    # run-wide podTemplate has the settings kiln-task.yaml asks for
    (run,) = _tekton("kiln-multiarch-run-native.yaml").values()
    assert run["kind"] == "PipelineRun" and run["spec"]["pipelineRef"]["name"] == "kiln-multiarch"
    assert {p["name"] for p in run["spec"]["params"]} >= {p["name"] for p in pipeline["params"] if "default" not in p}
    specs = {s["pipelineTaskName"]: s["podTemplate"] for s in run["spec"]["taskRunSpecs"]}
    assert set(specs) == set(tasks)
    assert {name: _node_arch(pt) for name, pt in specs.items()} == {"build-amd64": "amd64", "build-arm64": "arm64",
                                                                    "index": "amd64"}
    template = run["spec"]["taskRunTemplate"]["podTemplate"]
    assert template["automountServiceAccountToken"] is False
    build_step = objs[("Task", "kiln-remote")]["spec"]["steps"][0]
    _check_security(build_step, build=True, pod_spec=template)
    from executor.registry.reference import Reference

    image_param = {p["name"]: p["value"] for p in run["spec"]["params"]}["IMAGE"]
    assert Reference.parse(image_param).tag, "IMAGE needs a tag: the builds push IMAGE-amd64 and IMAGE-arm64"


def test_tekton_emulated_run():
    from executor.run.binfmt import runs_natively

    (run,) = _tekton("kiln-multiarch-run-emulated.yaml").values()
    assert run["kind"] == "TaskRun" and run["spec"]["taskRef"]["name"] == "kiln-remote"
    params = {p["name"]: p["value"] for p in run["spec"]["params"]}
    template = run["spec"]["podTemplate"]
    task = _tekton("kiln-multiarch.yaml")[("Task", "kiln-remote")]
    step = task["spec"]["steps"][0]
    _check_security(step, build=True, pod_spec=template)
    assert template["automountServiceAccountToken"] is False
    values = {p["name"]: p.get("default") for p in task["spec"]["params"]}
    values.update(params)
    opts = _executor_args(_tekton_argv(step, task, values))
    assert opts.platforms == ["linux/amd64", "linux/arm64"]
    host = f"linux/{_node_arch(template)}"
    assert [p for p in opts.platforms if not runs_natively(p, host)] == ["linux/arm64"]

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
    for path in sorted(glob.glob(os.path.join(DEPLOY, "*", "*.y*ml"))):
        assert f"`{os.path.relpath(path, DEPLOY)}`" in readme, path

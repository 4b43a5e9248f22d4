"""Real command lines, in the style of kaniko's documented GitLab, Tekton, Kubernetes, Docker and
Skaffold examples, parse to what the pipeline meant. Shell words are split with shlex as the
pipeline's shell would (after variable expansion)."""

from __future__ import annotations

import shlex

import pytest

from executor.cli import GitOptions, Options, parse_executor_args, parse_warmer_args, validate_executor

ENV = {"HOME": "/root", "HTTP_PROXY": "http://proxy:3128"}


def parse(line: str, env: dict[str, str] | None = None) -> Options:
    words = shlex.split(line)
    assert words[0] in ("/kaniko/executor", "executor")
    opts = parse_executor_args(words[1:], env=ENV if env is None else env, platform_default="linux/amd64")
    validate_executor(opts)
    return opts


def test_gitlab_ci_docs() -> None:
    opts = parse('/kaniko/executor --context "/builds/group/app" --dockerfile "/builds/group/app/Dockerfile" '
                 '--destination "registry.gitlab.com/group/app:v1.2.3"')
    assert opts.context == "/builds/group/app"
    assert opts.dockerfile == "/builds/group/app/Dockerfile"
    assert opts.destinations == ["registry.gitlab.com/group/app:v1.2.3"]


def test_gitlab_ci_with_cache_and_proxy_args() -> None:
    opts = parse('/kaniko/executor --context "${CI_PROJECT_DIR}" --dockerfile "${CI_PROJECT_DIR}/Dockerfile" '
                 '--destination "registry.gitlab.com/g/app:abc123" --destination "registry.gitlab.com/g/app:latest" '
                 '--cache=true --cache-repo registry.gitlab.com/g/app/cache --cache-ttl 24h '
                 '--build-arg HTTP_PROXY --build-arg "MY_VAR=\'value with spaces\'" '
                 '--registry-mirror mirror.gcr.io --skip-tls-verify-registry registry.internal:5000 '
                 '--label org.opencontainers.image.revision=abc123 --ignore-path /builds')
    assert opts.cache and opts.cache_repo == "registry.gitlab.com/g/app/cache" and opts.cache_ttl == 86400.0
    assert opts.build_args == {"HTTP_PROXY": "http://proxy:3128", "MY_VAR": "'value with spaces'"}
    assert opts.registry.registry_maps == {"index.docker.io": ["mirror.gcr.io"]}
    assert opts.registry.skip_tls_verify_registries == ["registry.internal:5000"]
    assert opts.labels == {"org.opencontainers.image.revision": "abc123"}
    assert opts.ignore_paths == ["/builds"]
    assert opts.context == "${CI_PROJECT_DIR}"  # unexpanded text is kept verbatim


def test_tekton_task_args() -> None:
    opts = parse("executor --dockerfile=./Dockerfile --context=/workspace/source/ "
                 "--destination=image-registry.openshift-image-registry.svc:5000/ns/app "
                 "--digest-file=/tekton/results/IMAGE_DIGEST --oci-layout-path=/workspace/source/image-digest "
                 "--skip-tls-verify --verbosity=debug")
    assert opts.digest_file == "/tekton/results/IMAGE_DIGEST"
    assert opts.oci_layout_path == "/workspace/source/image-digest"
    assert opts.registry.skip_tls_verify and opts.verbosity == "debug"


def test_kubernetes_pod_with_gcs_context() -> None:
    opts = parse('/kaniko/executor "--dockerfile=Dockerfile" "--context=gs://kaniko-bucket/path/ctx.tar.gz" '
                 '"--destination=gcr.io/my-project/my-image:v1" "--cache=true" "--cache-copy-layers=true"')
    assert opts.context == "gs://kaniko-bucket/path/ctx.tar.gz"
    assert opts.cache and opts.cache_copy_layers


def test_docker_run_with_tar_and_no_push() -> None:
    opts = parse("/kaniko/executor --dockerfile=Dockerfile --context=dir:///workspace --no-push "
                 "--destination=image --tar-path=/workspace/image.tar --reproducible --single-snapshot")
    assert opts.no_push and opts.tar_path == "/workspace/image.tar"
    assert opts.reproducible and opts.single_snapshot and opts.destinations == ["image"]


def test_git_context() -> None:
    opts = parse("/kaniko/executor --context git://github.com/org/repo.git#refs/heads/main "
                 "--context-sub-path services/api --git branch=main --git single-branch=true --git depth=1 "
                 "-d ghcr.io/org/api:main")
    assert opts.context_sub_path == "services/api"
    assert opts.git == GitOptions(branch="main", single_branch=True, depth=1)


def test_short_flags_as_in_old_scripts() -> None:
    opts = parse("/kaniko/executor -f Dockerfile.prod -c /workspace -d r.io/a:1 -d r.io/a:latest -v warn")
    assert opts.dockerfile == "Dockerfile.prod" and opts.destinations == ["r.io/a:1", "r.io/a:latest"]
    assert opts.verbosity == "warn"


def test_skaffold_style() -> None:
    opts = parse("/kaniko/executor --dockerfile=Dockerfile --context=dir:///kaniko/buildcontext "
                 "--destination=gcr.io/k8s-skaffold/app:v1 --snapshot-mode=redo --use-new-run "
                 "--cache-run-layers=false --image-fs-extract-retry=3 --push-retry=2 --target=release "
                 "--build-arg=VERSION=1.0")
    assert opts.snapshot_mode == "redo" and opts.use_new_run and not opts.cache_run_layers
    assert opts.image_fs_extract_retry == 3 and opts.registry.push_retry == 2 and opts.targets == ["release"]


def test_old_pipeline_with_deprecated_spellings() -> None:
    opts = parse("/kaniko/executor --snapshotMode=time --customPlatform=linux/arm64 --tarPath=/out/i.tar "
                 "--whitelist-var-run=false --destination=app --no-push --skip-unused-stages "
                 "--force-build-metadata")
    assert opts.snapshot_mode == "time" and opts.custom_platform == "linux/arm64"
    assert opts.tar_path == "/out/i.tar" and opts.ignore_var_run is False
    assert opts.skip_unused_stages and opts.force_build_metadata
    assert len(opts.notices) == 4


def test_registry_trust_flags() -> None:
    opts = parse("/kaniko/executor -d reg.corp:5443/team/app:1 "
                 "--registry-certificate reg.corp:5443=/kaniko/ssl/certs/corp.crt "
                 "--registry-client-cert reg.corp:5443=/certs/client.crt,/certs/client.key "
                 "--insecure-registry plain.corp:5000 --insecure-pull --skip-tls-verify-pull "
                 "--registry-map 'index.docker.io=mirror.corp;quay.io=quay-mirror.corp' "
                 "--skip-default-registry-fallback --credential-helpers=ecr --push-ignore-immutable-tag-errors")
    assert opts.registry.registry_certificates == {"reg.corp:5443": "/kaniko/ssl/certs/corp.crt"}
    assert opts.registry.registry_client_certificates == {"reg.corp:5443": ("/certs/client.crt", "/certs/client.key")}
    assert opts.registry.registry_maps == {"index.docker.io": ["mirror.corp"], "quay.io": ["quay-mirror.corp"]}
    assert opts.registry.insecure_registries == ["plain.corp:5000"]
    assert opts.registry.insecure_pull and opts.registry.skip_tls_verify_pull and opts.registry.skip_default_registry_fallback
    assert opts.registry.credential_helpers == ["ecr"] and opts.registry.push_ignore_immutable_tag_errors


def test_kiln_additions() -> None:
    opts = parse("executor --root /tmp/scratch --secret id=npm,src=/run/secrets/npmrc --secret id=gh,env=GH_TOKEN "
                 "--compression zstd --compression-level 9 --image-format oci --kaniko-dir /tmp/k "
                 "--oci-layout-path /out/layout --no-push --annotation org.opencontainers.image.source=https://x")
    assert opts.root == "/tmp/scratch" and opts.kaniko_dir == "/tmp/k"
    assert opts.compression == "zstd" and opts.compression_level == 9 and opts.image_format == "oci"
    assert set(opts.secrets) == {"npm", "gh"}


@pytest.mark.parametrize("line,expected", [
    ("warmer --cache-dir=/workspace/cache --image=alpine:3.20 --image=debian:12",
     {"cache_dir": "/workspace/cache", "images": ["alpine:3.20", "debian:12"]}),
    ("warmer --cache-dir=/workspace/cache --dockerfile=/workspace/Dockerfile --build-arg version=1.19",
     {"dockerfile": "/workspace/Dockerfile", "build_args": {"version": "1.19"}}),
    ("warmer -c /cache -i alpine -f --customPlatform linux/arm64 --cache-ttl 1h30m",
     {"force": True, "custom_platform": "linux/arm64", "cache_ttl": 5400.0}),
])
def test_warmer_docs(line: str, expected: dict[str, object]) -> None:
    opts = parse_warmer_args(shlex.split(line)[1:], env={}, platform_default="linux/amd64")
    for name, value in expected.items():
        assert getattr(opts, name) == value

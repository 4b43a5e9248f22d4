"""Issue 14 end to end through the CLI: kaniko's credential helpers (google, ecr, acr, gitlab, env) push to the
rig's token registry under the clouds' registry names, and gs://, s3:// and Azure Blob contexts are built.

What speaks each protocol is in tests/rig/cloud.py: moto (STS, ECR, S3, verifying every SigV4 signature),
gcp-storage-emulator (GCS) and Azurite (Blob, verifying Shared Key) are the well-kept servers; the GCE metadata
server, Google's token/STS/IAM credentials endpoints, IMDSv2, the EKS Pod Identity agent, Azure AD and ACR's
/oauth2/exchange are our stand-ins. The token registry accepts exactly what those issue (`oauth2accesstoken` +
the metadata server's token, moto's `AWS:<account>-auth-token`, the exchange's ACR refresh token), and its
token log says which account each push used."""
from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import tarfile

import pytest

from tests.rig import cloud
from tests.rig.judge import judge_oci_layout, judge_registry_image
from tests.rig.registry import start_registry

pytestmark = pytest.mark.slow

DOCKERFILE = "FROM scratch\nCOPY hello.txt /hello.txt\n"
SCRATCH_PORT = "127.0.0.1:9"          # nothing listens on the discard port: a metadata service that is not there


def _tar_gz(files: dict[str, bytes], hostile: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
        if hostile:
            info = tarfile.TarInfo(hostile)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    return buf.getvalue()


CONTEXT_FILES = {"Dockerfile": DOCKERFILE.encode(), "hello.txt": b"hello from a bucket\n"}


class Cloud:
    def __init__(self, tmp: str, pki, rig_dir: str):
        self.tmp = tmp
        self.pki = pki
        self.state = cloud.CloudState()
        self.cert = cloud.cloud_certificate(pki, os.path.join(tmp, "cloud-tls"))
        # a Google service-account key (PKCS#8, as Google's key files hold it) and its public half
        key, pub = os.path.join(tmp, "sa.key"), os.path.join(tmp, "sa.pub")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], check=True, capture_output=True)
        self.state.sa_public_key = pub
        with open(key) as f:
            self.sa_private_key = f.read()
        self.context_tgz = _tar_gz(CONTEXT_FILES)
        self.hostile_tgz = _tar_gz(CONTEXT_FILES, hostile="../outside.txt")
        self.aws = cloud.start_moto(self.context_tgz)
        self.state.imds_credentials = {"session": "imds-" + secrets.token_hex(8), **self.aws.ecr_user}
        self.state.pod_identity_credentials = dict(self.aws.ecr_user)
        self.standins = cloud.StandIns(self.state)
        self.gitlab_password = "glcbt-" + secrets.token_hex(8)
        self.env_password = "env-" + secrets.token_hex(8)
        self.running = start_registry(
            "token", os.path.join(rig_dir, "registry-cloud"), pki,
            extra_users={"oauth2accesstoken": self.state.google_token,
                         "AWS": f"{cloud.ECR_ACCOUNT}-auth-token",
                         "gitlab-ci-token": self.gitlab_password, "env-user": self.env_password},
            refresh_tokens={self.state.acr_refresh_token: "acr-service-principal"})
        self.registry = self.running.registry
        self.front = cloud.RegistryFront(self.state, self.registry.url(), pki.ca_cert, self.cert)
        self.gcs = cloud.start_gcs({"builds/context.tar.gz": self.context_tgz, "context.tar.gz": self.context_tgz,
                                    "hostile.tar.gz": self.hostile_tgz})
        self.azurite = cloud.start_azurite(os.path.join(tmp, "azurite"), self.cert, pki.ca_cert,
                                           {"app/context.tar.gz": self.context_tgz})
        self.hosts = {name: self.front.ip for name in cloud.REGISTRY_NAMES}
        self.hosts[cloud.BLOB_HOST] = self.azurite.ip
        # a config.json as most pods have one: entries for other registries only, so the helpers are asked
        self.empty_config = os.path.join(tmp, "docker-config-other")
        os.makedirs(self.empty_config, exist_ok=True)
        with open(os.path.join(self.empty_config, "config.json"), "w") as f:
            json.dump({"auths": {"unrelated.example.com": {"auth": "dTpw"}}}, f)

    def stop(self) -> None:
        for part in (self.front, self.standins, self.gcs, self.aws, self.azurite):
            try:
                part.stop()
            except Exception:  # noqa: BLE001 - stop the rest regardless
                pass
        self.running.stop()

    def file(self, name: str, content: str) -> str:
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(content)
        return path

    def tls_args(self) -> list[str]:
        return [f"--registry-certificate={name}={self.pki.ca_cert}" for name in cloud.REGISTRY_NAMES]

    def env(self, **extra: str) -> dict[str, str]:
        base = {"REQUESTS_CA_BUNDLE": self.pki.ca_cert, "GCE_METADATA_HOST": SCRATCH_PORT,
                "AWS_EC2_METADATA_DISABLED": "true", "AZURE_POD_IDENTITY_AUTHORITY_HOST": f"http://{SCRATCH_PORT}",
                "AWS_ENDPOINT_URL_ECR": self.aws.url, "AWS_ENDPOINT_URL_STS": self.aws.url,
                "AZURE_AUTHORITY_HOST": f"{self.standins.url}/aad", "HOME": self.tmp}
        base.update(extra)
        return base

    def pushed_accounts(self) -> list[str]:
        """Accounts the token server granted push to, in order."""
        return [e.get("account") for e in self.registry.token_log()
                if e.get("status") == 200 and any("push" in g.get("actions", []) for g in e.get("granted") or [])]


@pytest.fixture(scope="module")
def clouds(tmp_path_factory, test_pki, rig_dir):
    made = Cloud(str(tmp_path_factory.mktemp("cloud")), test_pki, rig_dir)
    yield made
    made.stop()


@pytest.fixture
def fresh(clouds: Cloud) -> Cloud:
    clouds.state.clear()
    open(clouds.registry.token_log_path, "w").close()
    return clouds


def _push(kiln, c: Cloud, host: str, tag: str, *args: str, env: dict[str, str] | None = None,
          docker_config: str | None = None):
    ctx = kiln.context({"Dockerfile": DOCKERFILE, "hello.txt": f"pushed to {host}\n"})
    return kiln.build(ctx, "--destination", f"{host}/kiln/app:{tag}", *c.tls_args(), *args, env=env,
                      docker_config=docker_config or c.empty_config, hosts=c.hosts)


def _assert_pushed(c: Cloud, host: str, tag: str, account: str) -> None:
    assert account in c.pushed_accounts(), c.registry.token_log()[-3:]
    report = judge_registry_image(c.registry, f"{c.registry.host}/kiln/app:{tag}", unpack=False)
    assert report.read("hello.txt") == f"pushed to {host}\n".encode()


# ---- google ---------------------------------------------------------------------------------------
def test_google_helper_takes_the_metadata_servers_token(kiln, fresh: Cloud) -> None:
    c = fresh
    _push(kiln, c, cloud.GCR_HOST, "gke", env=c.env(GCE_METADATA_HOST=c.standins.hostport)).check()
    asked = c.state.seen("gce-metadata")
    assert asked and all(r["flavor"] == "Google" for r in asked)
    _assert_pushed(c, cloud.GCR_HOST, "gke", "oauth2accesstoken")


def test_google_helper_signs_a_service_account_jwt(kiln, fresh: Cloud) -> None:
    c = fresh
    key_file = c.file("sa.json", json.dumps({
        "type": "service_account", "project_id": "kiln-test", "private_key_id": "k1",
        "private_key": c.sa_private_key, "client_email": c.state.sa_email, "client_id": "1",
        "token_uri": f"{c.standins.url}/google/token"}))
    _push(kiln, c, cloud.GCR_HOST, "sa", env=c.env(GOOGLE_APPLICATION_CREDENTIALS=key_file)).check()
    jwts = c.state.seen("google-jwt")
    assert len(jwts) == 1 and jwts[0]["claims"] is not None, jwts        # openssl verified the RS256 signature
    assert jwts[0]["claims"]["iss"] == c.state.sa_email
    assert not c.state.seen("gce-metadata")
    _assert_pushed(c, cloud.GCR_HOST, "sa", "oauth2accesstoken")


def test_google_helper_exchanges_an_external_account_token(kiln, fresh: Cloud) -> None:
    c = fresh
    subject = c.file("oidc-token", c.state.gcp_subject_token + "\n")
    config = c.file("wif.json", json.dumps({
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": f"{c.standins.url}/google/sts",
        "service_account_impersonation_url":
            f"{c.standins.url}/google/impersonate/v1/projects/-/serviceAccounts/{c.state.sa_email}:generateAccessToken",
        "credential_source": {"file": subject}}))
    _push(kiln, c, cloud.GCR_HOST, "wif", env=c.env(GOOGLE_APPLICATION_CREDENTIALS=config)).check()
    sts = c.state.seen("google-sts")
    assert len(sts) == 1 and sts[0]["subject_ok"] and sts[0]["form"]["audience"].startswith("//iam.googleapis.com/")
    assert len(c.state.seen("google-impersonate")) == 1
    _assert_pushed(c, cloud.GCR_HOST, "wif", "oauth2accesstoken")


def test_google_helper_failure_is_named_where_the_push_is_refused(kiln, fresh: Cloud) -> None:
    c = fresh
    key_file = c.file("sa-wrong.json", json.dumps({
        "type": "service_account", "private_key": c.sa_private_key, "client_email": "someone-else@x.iam",
        "token_uri": f"{c.standins.url}/google/token"}))
    run = _push(kiln, c, cloud.GCR_HOST, "wrong", env=c.env(GOOGLE_APPLICATION_CREDENTIALS=key_file))
    run.refused(cloud.GCR_HOST, "denied (anonymous; credential helper google failed:", "Invalid JWT Signature.")


# ---- ecr ------------------------------------------------------------------------------------------
def test_ecr_helper_with_environment_keys(kiln, fresh: Cloud) -> None:
    c = fresh
    u = c.aws.ecr_user
    _push(kiln, c, cloud.ECR_HOST, "env", env=c.env(AWS_ACCESS_KEY_ID=u["AccessKeyId"],
                                                    AWS_SECRET_ACCESS_KEY=u["SecretAccessKey"])).check()
    _assert_pushed(c, cloud.ECR_HOST, "env", "AWS")


def test_ecr_helper_with_irsa_web_identity(kiln, fresh: Cloud) -> None:
    c = fresh
    token = c.file("eks-token", "eyJhbGciOiJSUzI1NiJ9.irsa.sig")
    _push(kiln, c, cloud.ECR_HOST, "irsa", env=c.env(AWS_ROLE_ARN=c.aws.irsa_role_arn,
                                                     AWS_WEB_IDENTITY_TOKEN_FILE=token,
                                                     AWS_REGION=cloud.ECR_REGION)).check()
    _assert_pushed(c, cloud.ECR_HOST, "irsa", "AWS")


def test_ecr_helper_with_eks_pod_identity(kiln, fresh: Cloud) -> None:
    c = fresh
    token = c.file("pod-identity-token", c.state.pod_identity_token)
    _push(kiln, c, cloud.ECR_HOST, "pod", env=c.env(
        AWS_CONTAINER_CREDENTIALS_FULL_URI=f"{c.standins.url}/v1/credentials",
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=token)).check()
    assert [r["authorization"] for r in c.state.seen("pod-identity")] == [c.state.pod_identity_token]
    _assert_pushed(c, cloud.ECR_HOST, "pod", "AWS")


def test_ecr_helper_with_imdsv2(kiln, fresh: Cloud) -> None:
    c = fresh
    _push(kiln, c, cloud.ECR_HOST, "imds", env=c.env(AWS_EC2_METADATA_DISABLED="false",
                                                     AWS_EC2_METADATA_SERVICE_ENDPOINT=c.standins.url)).check()
    assert c.state.seen("imds-token") and all(r["ttl"] for r in c.state.seen("imds-token"))
    assert all(r["token"] == c.state.imds_credentials["session"] for r in c.state.seen("imds"))
    _assert_pushed(c, cloud.ECR_HOST, "imds", "AWS")


def test_ecr_helper_with_a_wrong_secret_is_refused_by_the_signature_check(kiln, fresh: Cloud) -> None:
    c = fresh
    run = _push(kiln, c, cloud.ECR_HOST, "badsig", env=c.env(AWS_ACCESS_KEY_ID=c.aws.ecr_user["AccessKeyId"],
                                                             AWS_SECRET_ACCESS_KEY="not-the-secret"))
    run.refused(cloud.ECR_HOST, "denied (anonymous; credential helper ecr failed:", "SignatureDoesNotMatch")


def test_ecr_helper_without_permission_says_access_denied(kiln, fresh: Cloud) -> None:
    c = fresh
    d = c.aws.denied_user
    run = _push(kiln, c, cloud.ECR_HOST, "denied", env=c.env(AWS_ACCESS_KEY_ID=d["AccessKeyId"],
                                                             AWS_SECRET_ACCESS_KEY=d["SecretAccessKey"]))
    run.refused(cloud.ECR_HOST, "credential helper ecr failed:", "AccessDenied: User: arn:aws:iam::123456789012:user/"
                "kiln-nobody is not authorized to perform: ecr:GetAuthorizationToken")


# ---- acr ------------------------------------------------------------------------------------------
def test_acr_helper_with_a_client_secret(kiln, fresh: Cloud) -> None:
    c = fresh
    s = c.state
    _push(kiln, c, cloud.ACR_HOST, "sp", env=c.env(AZURE_TENANT_ID=cloud.AZURE_TENANT, AZURE_CLIENT_ID=s.azure_client_id,
                                                   AZURE_CLIENT_SECRET=s.azure_client_secret)).check()
    assert [r["how"] for r in s.seen("aad")] == ["secret"]
    exchange = s.seen("acr-exchange")
    assert len(exchange) == 1 and exchange[0]["service"] == cloud.ACR_HOST
    assert exchange[0]["tenant"] == cloud.AZURE_TENANT and exchange[0]["host"] == cloud.ACR_HOST
    assert any(e.get("grant_type") == "refresh_token" for e in c.registry.token_log())
    _assert_pushed(c, cloud.ACR_HOST, "sp", "acr-service-principal")


def test_acr_helper_with_aks_workload_identity(kiln, fresh: Cloud) -> None:
    c = fresh
    s = c.state
    token = c.file("azure-identity-token", s.azure_federated_token)
    _push(kiln, c, cloud.ACR_HOST, "wi", env=c.env(AZURE_TENANT_ID=cloud.AZURE_TENANT, AZURE_CLIENT_ID=s.azure_client_id,
                                                   AZURE_FEDERATED_TOKEN_FILE=token)).check()
    assert [r["how"] for r in s.seen("aad")] == ["assertion"]
    _assert_pushed(c, cloud.ACR_HOST, "wi", "acr-service-principal")


def test_acr_helper_with_a_wrong_secret_says_what_aad_answered(kiln, fresh: Cloud) -> None:
    c = fresh
    run = _push(kiln, c, cloud.ACR_HOST, "bad", env=c.env(AZURE_TENANT_ID=cloud.AZURE_TENANT,
                                                          AZURE_CLIENT_ID=c.state.azure_client_id,
                                                          AZURE_CLIENT_SECRET="wrong"))
    run.refused(cloud.ACR_HOST, "credential helper acr failed:", "AADSTS7000215: Invalid client secret provided.")
    assert not c.state.seen("acr-exchange")


# ---- gitlab, env, selection, config.json first ----------------------------------------------------
def test_gitlab_helper(kiln, fresh: Cloud) -> None:
    c = fresh
    _push(kiln, c, cloud.GITLAB_HOST, "gl", env=c.env(CI_REGISTRY=cloud.GITLAB_HOST, CI_REGISTRY_USER="gitlab-ci-token",
                                                      CI_REGISTRY_PASSWORD=c.gitlab_password)).check()
    _assert_pushed(c, cloud.GITLAB_HOST, "gl", "gitlab-ci-token")


def test_env_helper_matches_a_suffix_of_the_host(kiln, fresh: Cloud) -> None:
    c = fresh
    # registry.env-helper.kiln.test -> KANIKO_REGISTRY_ENV_HELPER_KILN_TEST_*, then KANIKO_ENV_HELPER_KILN_TEST_*, ...
    _push(kiln, c, cloud.ENV_HOST, "env", env=c.env(KANIKO_ENV_HELPER_KILN_TEST_USER="env-user",
                                                    KANIKO_ENV_HELPER_KILN_TEST_PASSWORD=c.env_password)).check()
    _assert_pushed(c, cloud.ENV_HOST, "env", "env-user")


def test_empty_credential_helpers_disables_them(kiln, fresh: Cloud) -> None:
    c = fresh
    run = _push(kiln, c, cloud.GCR_HOST, "off", "--credential-helpers=",
                env=c.env(GCE_METADATA_HOST=c.standins.hostport))
    run.refused(cloud.GCR_HOST, "denied (anonymous)")
    assert not c.state.seen("gce-metadata")


def test_only_the_named_helpers_are_asked(kiln, fresh: Cloud) -> None:
    c = fresh
    run = _push(kiln, c, cloud.GCR_HOST, "ecronly", "--credential-helpers=ecr", "--credential-helpers=acr",
                env=c.env(GCE_METADATA_HOST=c.standins.hostport))
    run.refused(cloud.GCR_HOST, "denied (anonymous)")
    assert not c.state.seen("gce-metadata")


def test_a_config_json_entry_never_calls_a_helper(kiln, fresh: Cloud) -> None:
    c = fresh
    config = os.path.join(c.tmp, "docker-config-gcr")
    os.makedirs(config, exist_ok=True)
    import base64

    with open(os.path.join(config, "config.json"), "w") as f:
        json.dump({"auths": {cloud.GCR_HOST: {"auth": base64.b64encode(
            f"{c.registry.username}:{c.registry.password}".encode()).decode()}}}, f)
    _push(kiln, c, cloud.GCR_HOST, "cfg", env=c.env(GCE_METADATA_HOST=c.standins.hostport),
          docker_config=config).check()
    assert not c.state.seen("gce-metadata")
    _assert_pushed(c, cloud.GCR_HOST, "cfg", c.registry.username)


# ---- bucket contexts ------------------------------------------------------------------------------
def _bucket_build(kiln, c: Cloud, context: str, *args: str, env: dict[str, str]):
    layout = os.path.join(kiln.tmp.mktemp("layout"), "out")
    placeholder = kiln.context({"unused": ""})
    run = kiln.build(placeholder, "--no-push", "--oci-layout-path", layout, *args, env=env, hosts=c.hosts,
                     context_override=context, docker_config=c.empty_config)
    return run, layout


def test_gs_context_with_the_metadata_servers_token(kiln, fresh: Cloud) -> None:
    c = fresh
    run, layout = _bucket_build(kiln, c, "gs://kiln-contexts/builds/context.tar.gz",
                                env=c.env(GCE_METADATA_HOST=c.standins.hostport, STORAGE_EMULATOR_HOST=c.gcs.hostport))
    run.check()
    assert c.state.seen("gce-metadata")
    assert judge_oci_layout(layout, unpack=False).read("hello.txt") == CONTEXT_FILES["hello.txt"]


def test_bucket_flag_reads_context_tar_gz_of_the_bucket(kiln, fresh: Cloud) -> None:
    c = fresh
    layout = os.path.join(kiln.tmp.mktemp("layout"), "out")
    placeholder = kiln.context({"unused": ""})
    # no --context: kaniko's default /workspace/ yields to --bucket
    argv_env = c.env(GCE_METADATA_HOST=c.standins.hostport, STORAGE_EMULATOR_HOST=c.gcs.hostport)
    run = kiln.build(placeholder, "--no-push", "--oci-layout-path", layout, "--bucket", "kiln-contexts",
                     env=argv_env, hosts=c.hosts, context_override="/workspace/", docker_config=c.empty_config)
    run.check()
    assert judge_oci_layout(layout, unpack=False).read("hello.txt") == CONTEXT_FILES["hello.txt"]


def test_gs_context_missing_object_is_one_clear_error(kiln, fresh: Cloud) -> None:
    c = fresh
    run, _ = _bucket_build(kiln, c, "gs://kiln-contexts/nope.tar.gz",
                           env=c.env(GCE_METADATA_HOST=c.standins.hostport, STORAGE_EMULATOR_HOST=c.gcs.hostport))
    run.refused("gs://kiln-contexts/nope.tar.gz", "HTTP 404")


def test_gs_context_is_extracted_with_the_tar_context_checks(kiln, fresh: Cloud) -> None:
    c = fresh
    run, _ = _bucket_build(kiln, c, "gs://kiln-contexts/hostile.tar.gz",
                           env=c.env(GCE_METADATA_HOST=c.standins.hostport, STORAGE_EMULATOR_HOST=c.gcs.hostport))
    run.refused("'../outside.txt' would be written outside the context")


def test_s3_context_from_moto_with_path_style(kiln, fresh: Cloud) -> None:
    c = fresh
    u = c.aws.ecr_user
    run, layout = _bucket_build(kiln, c, f"s3://{c.aws.bucket}/{c.aws.context_key}", env=c.env(
        AWS_ACCESS_KEY_ID=u["AccessKeyId"], AWS_SECRET_ACCESS_KEY=u["SecretAccessKey"], AWS_REGION=cloud.ECR_REGION,
        S3_ENDPOINT=c.aws.url, S3_FORCE_PATH_STYLE="true"))
    run.check()
    assert judge_oci_layout(layout, unpack=False).read("hello.txt") == CONTEXT_FILES["hello.txt"]


def test_s3_context_with_irsa(kiln, fresh: Cloud) -> None:
    c = fresh
    token = c.file("eks-token-s3", "eyJhbGciOiJSUzI1NiJ9.irsa.sig")
    run, layout = _bucket_build(kiln, c, f"s3://{c.aws.bucket}/{c.aws.context_key}", env=c.env(
        AWS_ROLE_ARN=c.aws.irsa_role_arn, AWS_WEB_IDENTITY_TOKEN_FILE=token, AWS_REGION=cloud.ECR_REGION,
        S3_ENDPOINT=c.aws.url, S3_FORCE_PATH_STYLE="true"))
    run.check()
    assert judge_oci_layout(layout, unpack=False).read("hello.txt") == CONTEXT_FILES["hello.txt"]


def test_s3_context_with_wrong_credentials(kiln, fresh: Cloud) -> None:
    c = fresh
    run, _ = _bucket_build(kiln, c, f"s3://{c.aws.bucket}/{c.aws.context_key}", env=c.env(
        AWS_ACCESS_KEY_ID=c.aws.ecr_user["AccessKeyId"], AWS_SECRET_ACCESS_KEY="wrong", AWS_REGION=cloud.ECR_REGION,
        S3_ENDPOINT=c.aws.url, S3_FORCE_PATH_STYLE="true"))
    run.refused(f"s3://{c.aws.bucket}/{c.aws.context_key}", "HTTP 403", "SignatureDoesNotMatch")


def test_azure_blob_context_with_the_storage_access_key(kiln, fresh: Cloud) -> None:
    c = fresh
    url = f"https://{cloud.BLOB_HOST}/{c.azurite.container}/app/context.tar.gz"
    run, layout = _bucket_build(kiln, c, url, env=c.env(AZURE_STORAGE_ACCESS_KEY=c.azurite.key))
    run.check()
    assert judge_oci_layout(layout, unpack=False).read("hello.txt") == CONTEXT_FILES["hello.txt"]


def test_azure_blob_context_with_a_wrong_key(kiln, fresh: Cloud) -> None:
    c = fresh
    import base64

    url = f"https://{cloud.BLOB_HOST}/{c.azurite.container}/app/context.tar.gz"
    wrong = base64.b64encode(secrets.token_bytes(64)).decode()
    run, _ = _bucket_build(kiln, c, url, env=c.env(AZURE_STORAGE_ACCESS_KEY=wrong))
    # real Blob Storage answers 403 AuthenticationFailed; Azurite with --oauth on answers this
    run.refused(url, "access key of account kilnacct (AZURE_STORAGE_ACCESS_KEY)", "HTTP 400 InvalidAuthenticationInfo")


def test_azure_blob_context_with_aks_workload_identity(kiln, fresh: Cloud) -> None:
    c = fresh
    s = c.state
    token = c.file("azure-identity-token-blob", s.azure_federated_token)
    url = f"https://{cloud.BLOB_HOST}/{c.azurite.container}/app/context.tar.gz"
    run, layout = _bucket_build(kiln, c, url, env=c.env(AZURE_TENANT_ID=cloud.AZURE_TENANT,
                                                         AZURE_CLIENT_ID=s.azure_client_id,
                                                         AZURE_FEDERATED_TOKEN_FILE=token))
    run.check()
    assert [(r["how"], r["scope"]) for r in s.seen("aad")] == [("assertion", "https://storage.azure.com/.default")]
    assert judge_oci_layout(layout, unpack=False).read("hello.txt") == CONTEXT_FILES["hello.txt"]

"""The credential helpers' routing by registry host (kaniko's and its helpers' patterns), the env helper's names,
and the two signatures kiln computes itself, checked by independent implementations: SigV4 by botocore
(the AWS SDK for Python, which moto uses to verify), RS256 by openssl."""
from __future__ import annotations

import base64
import datetime
import http.server
import json
import os
import subprocess
import threading

import pytest

from executor.cloud import CloudError, sigv4
from executor.cloud.aws import EcrRegistry, ecr_registry
from executor.cloud.rsa import load_private_key
from executor.engine.buckets import context_source, split
from executor.registry import auth, helpers
from executor.cloud.azure import is_blob_url

# host -> the helpers that answer for it (env answers for every host; gitlab only for $CI_REGISTRY)
ROUTES = [
    ("gcr.io", {"google"}),
    ("us.gcr.io", {"google"}),
    ("eu.gcr.io", {"google"}),
    ("us-docker.pkg.dev", {"google"}),
    ("europe-west4-docker.pkg.dev", {"google"}),
    ("marketplace.gcr.io", {"google"}),
    ("container.cloud.google.com", {"google"}),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com", {"ecr"}),
    ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", {"ecr"}),
    ("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", {"ecr"}),
    ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", {"ecr"}),
    ("123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn", {"ecr"}),
    ("123456789012.dkr-ecr.us-west-2.on.aws", {"ecr"}),
    ("123456789012.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn", {"ecr"}),
    ("123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov", {"ecr"}),
    ("123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov", {"ecr"}),
    ("123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk", {"ecr"}),
    ("123456789012.dkr.ecr.us-isof-south-1.csp.hci.ic.gov", {"ecr"}),
    ("123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu", {"ecr"}),
    ("public.ecr.aws", {"ecr"}),
    ("myregistry.azurecr.io", {"acr"}),
    ("myregistry.azurecr.cn", {"acr"}),
    ("myregistry.azurecr.de", {"acr"}),
    ("myregistry.azurecr.us", {"acr"}),
    ("mcr.microsoft.com", {"acr"}),
    ("registry.gitlab.com", {"gitlab"}),
    # look-alikes answer to env alone
    ("gcr.io.example.com", set()),
    ("pkg.dev", set()),
    ("12345678901.dkr.ecr.us-east-1.amazonaws.com", set()),          # 11 digits
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com.example.com", set()),
    ("123456789012.ecr.us-east-1.amazonaws.com", set()),
    ("azurecr.io", set()),
    ("myregistry.azurecr.io.example.com", set()),
    ("docker.io", set()),
    ("127.0.0.1:5000", set()),
]


@pytest.mark.parametrize("host,expected", ROUTES)
def test_each_host_routes_to_its_helper(host: str, expected: set[str], monkeypatch) -> None:
    monkeypatch.setenv("CI_REGISTRY", "registry.gitlab.com")
    answering = {h for h in helpers.KNOWN if h != "env" and helpers.applies(h, host)}
    assert answering == expected
    assert helpers.applies("env", host)


@pytest.mark.parametrize("host,registry", [
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com", EcrRegistry("123456789012", False, "us-east-1", "amazonaws.com")),
    ("210987654321.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
     EcrRegistry("210987654321", True, "us-gov-west-1", "amazonaws.com")),
    ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
     EcrRegistry("123456789012", False, "cn-north-1", "amazonaws.com.cn")),
    ("123456789012.dkr.ecr.us-west-2.amazonaws.com:443",
     EcrRegistry("123456789012", False, "us-west-2", "amazonaws.com")),
])
def test_ecr_host_gives_account_region_fips_and_partition(host: str, registry: EcrRegistry) -> None:
    assert ecr_registry(host) == registry


def test_gitlab_matches_the_host_of_ci_registry_not_its_port_or_scheme(monkeypatch) -> None:
    monkeypatch.setenv("CI_REGISTRY", "registry.example.com:5050")
    monkeypatch.setenv("CI_REGISTRY_USER", "gitlab-ci-token")
    monkeypatch.setenv("CI_REGISTRY_PASSWORD", "pw")
    creds = helpers.resolve("registry.example.com:5050", ["gitlab"])
    assert creds is not None and (creds.username, creds.password) == ("gitlab-ci-token", "pw")
    assert helpers.resolve("other.example.com", ["gitlab"]) is None
    monkeypatch.setenv("CI_REGISTRY", "http://registry.example.com:5050")   # the helper assumes https
    assert helpers.resolve("registry.example.com:5050", ["gitlab"]) is None


@pytest.mark.parametrize("variable", ["KANIKO_REGISTRY_MY_COMPANY_COM", "KANIKO_MY_COMPANY_COM", "KANIKO_COM"])
def test_env_helper_names(variable: str, monkeypatch) -> None:
    monkeypatch.setenv(f"{variable}_USER", "u")
    monkeypatch.setenv(f"{variable}_PASSWORD", "p")
    creds = helpers.resolve("registry.my-company.com", ["env"])
    assert creds is not None and (creds.username, creds.password) == ("u", "p")
    assert variable in creds.origin


def test_env_helper_prefers_the_longest_name_and_needs_both(monkeypatch) -> None:
    monkeypatch.setenv("KANIKO_REGISTRY_EXAMPLE_COM_USER", "only-user")        # no password: skipped
    monkeypatch.setenv("KANIKO_EXAMPLE_COM_USER", "u2")
    monkeypatch.setenv("KANIKO_EXAMPLE_COM_PASSWORD", "p2")
    creds = helpers.resolve("registry.example.com", ["env"])
    assert creds is not None and creds.username == "u2"


def test_unknown_helper_is_a_warning_not_an_error(caplog) -> None:
    assert helpers.resolve("registry.example.com", ["nope"]) is None
    assert "unknown credential helper 'nope'" in caplog.text


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append(self.path)
        body = json.dumps({"access_token": "from-metadata", "expires_in": 3600}).encode()
        self.send_response(200)
        self.send_header("Metadata-Flavor", "Google")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def metadata_server(monkeypatch):
    from executor.cloud import google

    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{server.server_address[1]}")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", "/nonexistent")
    google.reset_cache()
    yield _Recorder.seen
    google.reset_cache()
    server.shutdown()
    server.server_close()


def test_a_config_json_entry_never_calls_a_helper(tmp_path, metadata_server, monkeypatch) -> None:
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"us-docker.pkg.dev": {
        "auth": base64.b64encode(b"user:pw").decode()}}}))
    creds = auth.resolve("us-docker.pkg.dev", str(tmp_path))
    assert (creds.username, creds.password) == ("user", "pw")
    assert metadata_server == []
    # without the entry the google helper asks the metadata server
    (tmp_path / "config.json").write_text("{}")
    creds = auth.resolve("us-docker.pkg.dev", str(tmp_path))
    assert (creds.username, creds.password) == ("oauth2accesstoken", "from-metadata")
    assert metadata_server == ["/computeMetadata/v1/instance/service-accounts/default/token"]


# ---- signatures -----------------------------------------------------------------------------------
NOW = datetime.datetime(2026, 12, 1, 12, 30, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("service,method,url,headers,body", [
    ("ecr", "POST", "https://api.ecr.us-west-2.amazonaws.com/",
     {"Content-Type": "application/x-amz-json-1.1",
      "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"},
     b'{"registryIds": ["123456789012"]}'),
    ("s3", "GET", "https://kiln-contexts.s3.eu-central-1.amazonaws.com/builds/app%20v2/context.tar.gz", {}, b""),
    ("s3", "GET", "http://127.0.0.1:9000/bucket/a/b.tar.gz?versionId=3&x-id=GetObject", {}, b""),
    ("sts", "POST", "https://sts.us-east-1.amazonaws.com/", {"Content-Type": "application/x-www-form-urlencoded"},
     b"Action=GetCallerIdentity&Version=2011-06-15"),
])
@pytest.mark.parametrize("token", ["", "FwoGZXIvYXdzEBYaDH+session/token=="])
def test_sigv4_matches_botocore(service, method, url, headers, body, token) -> None:
    botocore = pytest.importorskip("botocore")   # a test extra (moto depends on it); its absence is no failure of kiln
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    assert botocore
    region = "eu-central-1" if "eu-central-1" in url else "us-west-2" if "us-west-2" in url else "us-east-1"
    ours = sigv4.sign(method, url, headers, body, access_key="AKIDEXAMPLE", secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCY",
                      session_token=token, region=region, service=service, now=NOW)
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    request.context["timestamp"] = NOW.strftime("%Y%m%dT%H%M%SZ")
    signer = (S3SigV4Auth if service == "s3" else SigV4Auth)(
        Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCY", token or None), service, region)
    for name in ("X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-Sha256"):
        if name in ours:
            request.headers[name] = ours[name]
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    assert ours["Authorization"].rsplit("Signature=", 1)[1] == expected


def test_rs256_signature_verifies_with_openssl(tmp_path) -> None:
    key, pub = tmp_path / "k.pem", tmp_path / "p.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True)
    message = b"header.claims"
    signature = load_private_key(key.read_text()).sign_sha256(message)
    (tmp_path / "sig").write_bytes(signature)
    proc = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pub), "-signature", str(tmp_path / "sig")],
                          input=message, capture_output=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # PKCS#1 ("RSA PRIVATE KEY") gives the same deterministic signature
    pkcs1 = subprocess.run(["openssl", "pkey", "-in", str(key), "-traditional"], check=True, capture_output=True).stdout
    assert load_private_key(pkcs1.decode()).sign_sha256(message) == signature


def test_a_private_key_that_is_not_rsa_is_refused_by_name(tmp_path) -> None:
    key = tmp_path / "ec.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key)],
                   check=True, capture_output=True)
    with pytest.raises(CloudError, match="not an RSA key"):
        load_private_key(key.read_text())
    with pytest.raises(CloudError, match="not PEM text"):
        load_private_key("{}")


# ---- bucket contexts ------------------------------------------------------------------------------
@pytest.mark.parametrize("context,bucket,source", [
    ("/workspace/", "", "/workspace/"),
    ("/workspace/", "my-bucket", "gs://my-bucket"),                 # kaniko: --bucket without a scheme is GCS
    ("", "my-bucket", "gs://my-bucket"),
    ("gs://other/ctx.tar.gz", "s3://b/k.tar.gz", "s3://b/k.tar.gz"),  # kaniko: the bucket replaces a URL context
    ("/src", "my-bucket", "/src"),                                  # an explicit local context wins (kaniko)
])
def test_bucket_flag_and_context(context: str, bucket: str, source: str) -> None:
    assert context_source(context, bucket) == source


def test_bucket_url_default_object_is_context_tar_gz() -> None:
    assert split("gs://my-bucket") == ("my-bucket", "context.tar.gz")
    assert split("s3://b/dir/ctx.tgz") == ("b", "dir/ctx.tgz")


@pytest.mark.parametrize("url,blob", [
    ("https://acct.blob.core.windows.net/c/ctx.tar.gz", True),
    ("https://acct.blob.core.chinacloudapi.cn/c/ctx.tar.gz", True),
    ("https://acct.blob.core.cloudapi.de/c/ctx.tar.gz", True),
    ("https://acct.blob.core.usgovcloudapi.net/c/ctx.tar.gz", True),
    ("https://acct.blob.core.windows.net/", False),
    ("https://example.com/acct.blob.core.windows.net/c", False),
    ("http://acct.blob.core.windows.net/c/ctx.tar.gz", False),
])
def test_azure_blob_urls_as_kaniko_recognises_them(url: str, blob: bool) -> None:
    assert is_blob_url(url) is blob


def test_no_cloud_sdk_is_imported() -> None:
    """kiln's cloud code speaks HTTP itself (pyproject.toml says why): no SDK sneaks into the executor."""
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "executor")
    forbidden = ("boto3", "botocore", "google.auth", "google.cloud", "azure.", "msal", "cryptography")
    for directory, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(directory, name)) as f:
                    text = f.read()
                for module in forbidden:
                    assert f"import {module}" not in text and f"from {module}" not in text, (name, module)


class _Ecr(http.server.BaseHTTPRequestHandler):
    calls: list[dict] = []
    lifetime = 3600.0

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Ecr.calls.append({"target": self.headers.get("X-Amz-Target"), "body": json.loads(body),
                           "authorization": self.headers.get("Authorization", "")})
        import time

        answer = json.dumps({"authorizationData": [{
            "authorizationToken": base64.b64encode(f"AWS:pw{len(_Ecr.calls)}".encode()).decode(),
            "expiresAt": time.time() + _Ecr.lifetime,
            "proxyEndpoint": "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("lifetime,calls", [(3600.0, 1), (60.0, 2)])
def test_ecr_token_is_cached_until_five_minutes_before_it_expires(lifetime, calls, monkeypatch) -> None:
    """GetAuthorizationToken once per registry while the token has more than 5 minutes left (moto's tokens expire
    in 2015, so the e2e tests cannot show this)."""
    from executor.cloud import aws

    _Ecr.calls, _Ecr.lifetime = [], lifetime
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ecr)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
        aws.reset_cache()
        host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
        first, second = aws.ecr_token(host), aws.ecr_token(host)
        assert len(_Ecr.calls) == calls
        assert (first.username, first.password) == ("AWS", "pw1")
        assert second.password == f"pw{calls}"
        call = _Ecr.calls[0]
        assert call["target"] == "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"
        assert call["body"] == {"registryIds": ["123456789012"]}
        assert "/eu-west-1/ecr/aws4_request" in call["authorization"]
    finally:
        aws.reset_cache()
        server.shutdown()
        server.server_close()

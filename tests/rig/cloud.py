"""Cloud stand-ins for the credential-helper and bucket-context tests, all on loopback.

Well-kept servers where one exists:
  * moto (server mode, in this process): STS, ECR and S3, with IAM authentication on, so every signed
    request's SigV4 signature is recomputed by moto (botocore) with the secret it issued and refused when it
    differs. One fact moto's IAM mode lacks is taught here: AssumeRoleWithWebIdentity is an unsigned call in
    AWS (botocore sends it without Authorization), so moto may not demand a signature for it.
  * gcp-storage-emulator (in this process): the GCS JSON API for gs:// contexts.
  * Azurite (Microsoft's Azure Storage emulator, npm): Blob Storage with Shared Key verification, over TLS on
    <account>.blob.core.windows.net (production-style URLs); `--oauth basic` takes Entra ID bearer tokens
    (issuer, audience and lifetime checked, not signatures).
Ours, where no server exists (`StandIns`, plain HTTP on 127.0.0.1):
  * the GCE metadata server (`Metadata-Flavor: Google` asked and answered);
  * Google's OAuth2 token endpoint (RFC 7523 jwt-bearer; the JWT's RS256 signature checked with openssl),
    Google's STS token exchange (RFC 8693) and IAM credentials' generateAccessToken;
  * the EC2 instance metadata service, IMDSv2 (a PUT session token first), and the EKS Pod Identity agent;
  * the Azure AD v2.0 token endpoint (client secret or federated client assertion);
  * ACR's /oauth2/exchange, on the registry front (`RegistryFront`).
The registry itself is the rig's token registry; `RegistryFront` listens on <loopback address>:443 under the
clouds' registry names (a certificate of the test CA for them, the names in the sandbox's /etc/hosts) and
forwards to it, so the executor sees `us-docker.pkg.dev`, `<account>.dkr.ecr.<region>.amazonaws.com`, ...
"""
from __future__ import annotations

import base64
import http.server
import json
import logging
import os
import random
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

import requests

from .tls import TestPKI, _leaf

log = logging.getLogger(__name__)

GCR_HOST = "us-docker.pkg.dev"
ECR_ACCOUNT = "123456789012"
ECR_REGION = "us-west-2"
ECR_HOST = f"{ECR_ACCOUNT}.dkr.ecr.{ECR_REGION}.amazonaws.com"
ACR_HOST = "kilntest.azurecr.io"
GITLAB_HOST = "registry.gitlab.kiln.test"
ENV_HOST = "registry.env-helper.kiln.test"
REGISTRY_NAMES = (GCR_HOST, ECR_HOST, ACR_HOST, GITLAB_HOST, ENV_HOST)
BLOB_ACCOUNT = "kilnacct"
BLOB_HOST = f"{BLOB_ACCOUNT}.blob.core.windows.net"
AZURE_TENANT = "72f988bf-0000-4000-8000-2d7cd011db47"


def cloud_certificate(pki: TestPKI, directory: str) -> tuple[str, str]:
    """A TLS leaf of the test CA for the registry names and the blob account host."""
    os.makedirs(directory, exist_ok=True)
    for name in ("ca.pem", "ca.key"):
        shutil.copy(os.path.join(pki.dir, name), os.path.join(directory, name))
    sans = ",".join(f"DNS:{n}" for n in (*REGISTRY_NAMES, BLOB_HOST))
    return _leaf(directory, "cloud", GCR_HOST, ["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
                 "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                 f"extendedKeyUsage=serverAuth\nsubjectAltName={sans}\n")


def bind_loopback_443() -> tuple[socket.socket, str]:
    """A socket bound to port 443 of a random 127.x.y.z address (no other test or agent uses it)."""
    for _ in range(50):
        ip = f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.{random.randint(2, 254)}"
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, 443))
        except OSError:
            sock.close()
            continue
        return sock, ip
    raise RuntimeError("no free 127.x.y.z:443 found")


# ---- shared state of the stand-ins ---------------------------------------------------------------
@dataclass
class CloudState:
    """What the stand-ins issue and accept; the token registry is configured to accept the same values."""
    google_token: str = field(default_factory=lambda: "ya29." + secrets.token_urlsafe(24))
    aad_token: str = field(default_factory=lambda: "aad." + secrets.token_urlsafe(24))
    acr_refresh_token: str = field(default_factory=lambda: "acr-refresh-" + secrets.token_urlsafe(18))
    azure_client_id: str = "0b2f6f2a-1111-4222-8333-444455556666"
    azure_client_secret: str = field(default_factory=lambda: "s3cr3t-" + secrets.token_hex(8))
    azure_federated_token: str = field(default_factory=lambda: "eyJ.wi-" + secrets.token_hex(8))
    gcp_subject_token: str = field(default_factory=lambda: "subject-" + secrets.token_hex(8))
    sa_email: str = "kiln-builder@kiln-test.iam.gserviceaccount.com"
    sa_public_key: str = ""                    # PEM path; the JWT's signature is verified with it
    imds_credentials: dict = field(default_factory=dict)
    pod_identity_token: str = field(default_factory=lambda: "pod-" + secrets.token_hex(8))
    pod_identity_credentials: dict = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, **entry) -> None:
        with self.lock:
            self.requests.append(entry)

    def seen(self, kind: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["kind"] == kind]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_rs256(jwt: str, public_key_pem: str) -> dict | None:
    """The claims of an RS256 JWT whose signature openssl accepts with the public key, else None."""
    try:
        head, body, sig = jwt.split(".")
    except ValueError:
        return None
    directory = os.path.dirname(public_key_pem)
    sig_path = os.path.join(directory, f"sig-{secrets.token_hex(4)}")
    with open(sig_path, "wb") as f:
        f.write(_b64url_decode(sig))
    try:
        proc = subprocess.run(["openssl", "dgst", "-sha256", "-verify", public_key_pem, "-signature", sig_path],
                              input=f"{head}.{body}".encode(), capture_output=True)
    finally:
        os.unlink(sig_path)
    if proc.returncode != 0 or json.loads(_b64url_decode(head)).get("alg") != "RS256":
        return None
    return json.loads(_b64url_decode(body))


class _Base(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: CloudState

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        log.debug("stand-in: " + format, *args)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _form(self) -> dict[str, str]:
        return {k: v[0] for k, v in urllib.parse.parse_qs(self._body().decode()).items()}

    def _send(self, status: int, body: dict | str | bytes, headers: dict[str, str] | None = None) -> None:
        if isinstance(body, dict):
            data, ctype = json.dumps(body).encode(), "application/json"
        else:
            data, ctype = (body.encode() if isinstance(body, str) else body), "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


class _StandInHandler(_Base):
    def do_PUT(self) -> None:  # noqa: N802
        path = urllib.parse.urlsplit(self.path).path
        if path == "/latest/api/token":                  # IMDSv2 session token
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            self.state.record(kind="imds-token", ttl=ttl)
            if not ttl:
                return self._send(400, "missing X-aws-ec2-metadata-token-ttl-seconds")
            return self._send(200, self.state.imds_credentials["session"])
        self._send(404, "not found")

    def do_GET(self) -> None:  # noqa: N802
        parts = urllib.parse.urlsplit(self.path)
        path = parts.path
        st = self.state
        if path == "/computeMetadata/v1/instance/service-accounts/default/token":
            flavor = self.headers.get("Metadata-Flavor")
            st.record(kind="gce-metadata", flavor=flavor)
            if flavor != "Google":
                return self._send(403, "Missing Metadata-Flavor:Google header.", {"Metadata-Flavor": "Google"})
            return self._send(200, {"access_token": st.google_token, "expires_in": 3599, "token_type": "Bearer"},
                              {"Metadata-Flavor": "Google"})
        if path.startswith("/latest/meta-data/iam/security-credentials/"):
            token = self.headers.get("X-aws-ec2-metadata-token")
            st.record(kind="imds", path=path, token=token)
            if token != st.imds_credentials.get("session"):
                return self._send(401, "")
            role = path.rsplit("/", 1)[-1]
            if not role:
                return self._send(200, "kiln-instance-role")
            c = st.imds_credentials
            return self._send(200, {"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": c["AccessKeyId"],
                                    "SecretAccessKey": c["SecretAccessKey"], "Token": "",
                                    "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))})
        if path == "/v1/credentials":                       # the EKS Pod Identity agent
            auth = self.headers.get("Authorization")
            st.record(kind="pod-identity", authorization=auth)
            if auth != st.pod_identity_token:
                return self._send(401, {"code": "AccessDeniedException", "message": "invalid token"})
            c = st.pod_identity_credentials
            return self._send(200, {"AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
                                    "Token": "", "AccountId": ECR_ACCOUNT,
                                    "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))})
        self._send(404, "not found")

    def do_POST(self) -> None:  # noqa: N802
        path = urllib.parse.urlsplit(self.path).path
        st = self.state
        if path == "/google/token":
            form = self._form()
            claims = verify_rs256(form.get("assertion", ""), st.sa_public_key) if st.sa_public_key else None
            st.record(kind="google-jwt", grant_type=form.get("grant_type"), claims=claims)
            ok = (form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer" and claims is not None
                  and claims.get("iss") == st.sa_email and claims.get("aud") == f"http://{self.headers['Host']}/google/token"
                  and claims.get("exp", 0) > time.time() and "cloud-platform" in claims.get("scope", ""))
            if not ok:
                return self._send(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
            return self._send(200, {"access_token": st.google_token, "expires_in": 3599, "token_type": "Bearer"})
        if path == "/google/sts":
            form = self._form()
            st.record(kind="google-sts", form={k: v for k, v in form.items() if k != "subject_token"},
                      subject_ok=form.get("subject_token") == st.gcp_subject_token)
            if form.get("subject_token") != st.gcp_subject_token or \
                    form.get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange":
                return self._send(400, {"error": "invalid_grant", "error_description": "The subject token is invalid."})
            return self._send(200, {"access_token": "federated-" + st.google_token, "expires_in": 3600,
                                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                                    "token_type": "Bearer"})
        if path.startswith("/google/impersonate/"):
            body = json.loads(self._body() or b"{}")
            auth = self.headers.get("Authorization", "")
            st.record(kind="google-impersonate", path=path, scope=body.get("scope"))
            if auth != f"Bearer federated-{st.google_token}":
                return self._send(401, {"error": {"message": "Request had invalid authentication credentials."}})
            return self._send(200, {"accessToken": st.google_token,
                                    "expireTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))})
        if path == f"/aad/{AZURE_TENANT}/oauth2/v2.0/token":
            form = self._form()
            how = "secret" if "client_secret" in form else "assertion" if "client_assertion" in form else "none"
            st.record(kind="aad", how=how, client_id=form.get("client_id"), scope=form.get("scope"))
            ok = form.get("grant_type") == "client_credentials" and form.get("client_id") == st.azure_client_id and (
                how == "secret" and form["client_secret"] == st.azure_client_secret
                or how == "assertion" and form.get("client_assertion") == st.azure_federated_token
                and form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            if not ok:
                return self._send(401, {"error": "invalid_client", "error_description":
                                        "AADSTS7000215: Invalid client secret provided."})
            if form.get("scope") == "https://storage.azure.com/.default":
                return self._send(200, {"token_type": "Bearer", "expires_in": 3599,
                                        "access_token": storage_token(AZURE_TENANT)})
            return self._send(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": st.aad_token})
        self._send(404, "not found")


def storage_token(tenant: str) -> str:
    """A JWT shaped as Entra ID's for Azure Storage. Azurite's `--oauth basic` checks its issuer, audience and
    lifetime, not its signature (the emulator has no Entra ID keys), so the stand-in signs nothing."""
    now = int(time.time())
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    return ".".join([enc({"alg": "RS256", "typ": "JWT"}),
                     enc({"aud": "https://storage.azure.com", "iss": f"https://sts.windows.net/{tenant}/",
                          "iat": now - 60, "nbf": now - 60, "exp": now + 3600, "tid": tenant,
                          "oid": "11111111-2222-3333-4444-555555555555"}),
                     base64.urlsafe_b64encode(b"not-verified-by-azurite").rstrip(b"=").decode()])


def _serve(handler: type, state: CloudState, address: tuple[str, int] = ("127.0.0.1", 0),
           sock: socket.socket | None = None, tls: tuple[str, str] | None = None):
    cls = type("Handler", (handler,), {"state": state})
    if sock is None:
        server = http.server.ThreadingHTTPServer(address, cls)
    else:
        server = http.server.ThreadingHTTPServer(sock.getsockname(), cls, bind_and_activate=False)
        server.socket.close()
        server.socket = sock
        server.server_address = sock.getsockname()
        sock.listen(64)
    server.daemon_threads = True
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


class StandIns:
    """Our own stand-ins (see the module docstring), on one plain-HTTP port of 127.0.0.1."""

    def __init__(self, state: CloudState):
        self.state = state
        self.server = _serve(_StandInHandler, state)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.hostport = f"127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- the registry front: the clouds' registry names on :443, and ACR's exchange ------------------
class _FrontHandler(_Base):
    upstream: str
    ca: str
    hop = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "te", "upgrade"}

    def _read_request_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self._body()

    def _exchange(self) -> None:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(self._read_request_body().decode()).items()}
        st = self.state
        st.record(kind="acr-exchange", host=self.headers.get("Host"), grant_type=form.get("grant_type"),
                  service=form.get("service"), tenant=form.get("tenant"))
        if form.get("grant_type") != "access_token" or form.get("access_token") != st.aad_token:
            return self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid AAD access token"}]})
        self._send(200, {"refresh_token": st.acr_refresh_token})

    def _forward(self) -> None:
        if self.path.startswith("/oauth2/exchange") and self.command == "POST":
            return self._exchange()
        body = self._read_request_body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in self.hop}
        headers["X-Forwarded-Proto"] = "https"
        try:
            resp = requests.request(self.command, self.upstream + self.path, headers=headers, data=body or None,
                                    verify=self.ca, allow_redirects=False, timeout=60, stream=True)
            data = resp.raw.read(decode_content=False)
        except requests.RequestException as e:
            return self._send(502, f"front: upstream failed: {e}")
        self.send_response(resp.status_code)
        for k, v in resp.raw.headers.items():
            if k.lower() not in self.hop:
                self.send_header(k, v)
        if self.command == "HEAD":
            # no body, and the length is the upstream's (a blob HEAD's Content-Length is the blob's size)
            self.send_header("Content-Length", resp.headers.get("Content-Length", "0"))
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward  # noqa: N815


class RegistryFront:
    """TLS on <ip>:443 for REGISTRY_NAMES, forwarding to the token registry (Host kept, so the registry's
    Location headers name the front), with ACR's /oauth2/exchange answered here."""

    def __init__(self, state: CloudState, upstream: str, ca: str, cert: tuple[str, str]):
        sock, self.ip = bind_loopback_443()
        handler = type("Front", (_FrontHandler,), {"upstream": upstream, "ca": ca})
        self.server = _serve(handler, state, sock=sock, tls=cert)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- moto -----------------------------------------------------------------------------------------
_UNSIGNED_ACTIONS = {"AssumeRoleWithWebIdentity", "AssumeRoleWithSAML"}


def _teach_moto_unsigned_sts() -> None:
    from moto.core.authorization import ActionAuthenticatorMixin

    original = ActionAuthenticatorMixin._authenticate_and_authorize_action
    if getattr(original, "_kiln_unsigned", False):
        return

    def authenticate(self, iam_request_cls, resource="*"):
        if "Authorization" not in self.headers and self._get_action() in _UNSIGNED_ACTIONS:
            return None
        return original(self, iam_request_cls, resource)

    authenticate._kiln_unsigned = True  # type: ignore[attr-defined]
    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate


@dataclass
class Aws:
    url: str
    server: object
    irsa_role_arn: str
    ecr_user: dict            # AccessKeyId/SecretAccessKey of an IAM user allowed ECR and S3
    denied_user: dict         # an IAM user without any policy
    bucket: str
    context_key: str

    def stop(self) -> None:
        self.server.stop()  # type: ignore[attr-defined]


def start_moto(context_tar_gz: bytes) -> Aws:
    """moto with IAM auth on, after setting up: a role for web identity, two users, a bucket holding
    `context_tar_gz`."""
    import boto3
    from moto.server import ThreadedMotoServer
    from tests.rig.registry import free_port

    _teach_moto_unsigned_sts()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    requests.post(url + "/moto-api/reset-auth", data=b"inf", timeout=10)
    kw = dict(endpoint_url=url, region_name=ECR_REGION, aws_access_key_id="setup", aws_secret_access_key="setup")
    iam = boto3.client("iam", **kw)
    allow = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken", "s3:GetObject", "s3:ListBucket"],
         "Resource": "*"}]})
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Federated": f"arn:aws:iam::{ECR_ACCOUNT}:oidc-provider/oidc.eks.kiln"},
         "Action": "sts:AssumeRoleWithWebIdentity"}]})
    role = iam.create_role(RoleName="kiln-irsa", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.put_role_policy(RoleName="kiln-irsa", PolicyName="ecr", PolicyDocument=allow)
    iam.create_user(UserName="kiln-builder")
    iam.put_user_policy(UserName="kiln-builder", PolicyName="ecr", PolicyDocument=allow)
    key = iam.create_access_key(UserName="kiln-builder")["AccessKey"]
    iam.create_user(UserName="kiln-nobody")
    denied = iam.create_access_key(UserName="kiln-nobody")["AccessKey"]
    s3 = boto3.client("s3", **kw)
    bucket, context_key = "kiln-contexts", "builds/app/context.tar.gz"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": ECR_REGION})
    s3.put_object(Bucket=bucket, Key=context_key, Body=context_tar_gz)
    boto3.client("ecr", **kw).create_repository(repositoryName="kiln/app")
    requests.post(url + "/moto-api/reset-auth", data=b"0", timeout=10)   # every request now authenticated
    return Aws(url, server, role, {"AccessKeyId": key["AccessKeyId"], "SecretAccessKey": key["SecretAccessKey"]},
               {"AccessKeyId": denied["AccessKeyId"], "SecretAccessKey": denied["SecretAccessKey"]}, bucket,
               context_key)


# ---- GCS ------------------------------------------------------------------------------------------
@dataclass
class Gcs:
    hostport: str
    server: object
    bucket: str

    def stop(self) -> None:
        self.server.stop()  # type: ignore[attr-defined]


def start_gcs(objects: dict[str, bytes]) -> Gcs:
    from gcp_storage_emulator.server import create_server
    from tests.rig.registry import free_port

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="kiln-contexts")
    server.start()
    base = f"http://127.0.0.1:{port}"
    for name, data in objects.items():
        resp = requests.post(f"{base}/upload/storage/v1/b/kiln-contexts/o", params={"uploadType": "media",
                             "name": name}, data=data, headers={"Content-Type": "application/gzip"}, timeout=30)
        resp.raise_for_status()
    return Gcs(f"127.0.0.1:{port}", server, "kiln-contexts")


# ---- Azurite --------------------------------------------------------------------------------------
def azurite_binary() -> str | None:
    """azurite-blob as scripts/setup.sh installs it (npm, under the venv), or on PATH."""
    candidate = os.path.join(sys.prefix, "azurite", "node_modules", ".bin", "azurite-blob")
    if os.path.exists(candidate):
        return candidate
    return shutil.which("azurite-blob")


@dataclass
class Azurite:
    ip: str
    proc: subprocess.Popen
    key: str
    container: str

    def stop(self) -> None:
        from tests.rig.registry import stop_process

        stop_process(self.proc)


def start_azurite(workdir: str, cert: tuple[str, str], ca: str, blobs: dict[str, bytes]) -> Azurite:
    from tests.rig.registry import _die_with_parent

    binary = azurite_binary()
    if binary is None:
        raise RuntimeError("azurite-blob is not installed: run scripts/setup.sh (it installs Azurite with npm)")
    sock, ip = bind_loopback_443()
    sock.close()          # Azurite binds it itself, a moment later
    key = base64.b64encode(secrets.token_bytes(64)).decode()
    os.makedirs(workdir, exist_ok=True)
    log_path = os.path.join(workdir, "azurite.log")
    env = {**os.environ, "AZURITE_ACCOUNTS": f"{BLOB_ACCOUNT}:{key}"}
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([binary, "--blobHost", ip, "--blobPort", "443", "--location", workdir,
                                 "--cert", cert[0], "--key", cert[1], "--oauth", "basic", "--skipApiVersionCheck", "--loose",
                                 "--disableTelemetry", "--debug", os.path.join(workdir, "debug.log")], stdout=out, stderr=subprocess.STDOUT,
                                env=env, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log_path, errors="replace") as f:
                raise RuntimeError(f"azurite-blob exited {proc.returncode}: {f.read()[-2000:]}")
        try:
            socket.create_connection((ip, 443), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("azurite-blob did not listen within 30 s")
    az = Azurite(ip, proc, key, "contexts")
    # the container and blobs, with Shared Key, through a session that resolves the account host to `ip`
    from executor.cloud.azure import shared_key_authorization
    from email.utils import formatdate

    def put(path: str, data: bytes, extra: dict[str, str]) -> None:
        url = f"https://{BLOB_HOST}{path}"
        headers = {"x-ms-version": "2021-08-06", "x-ms-date": formatdate(usegmt=True), **extra}
        if data:
            headers["Content-Length"] = str(len(data))
        headers["Authorization"] = shared_key_authorization(BLOB_ACCOUNT, key, "PUT", url, headers)
        with _resolving(BLOB_HOST, ip):
            resp = requests.put(url, data=data, headers=headers, verify=ca, timeout=30)
        if resp.status_code not in (201, 202):
            raise RuntimeError(f"azurite PUT {path}: {resp.status_code} {resp.text[:300]}")

    put(f"/{az.container}?restype=container", b"", {})
    for name, data in blobs.items():
        put(f"/{az.container}/{name}", data, {"x-ms-blob-type": "BlockBlob"})
    return az


class _resolving:
    """Within the block, `name` resolves to `ip` in this process (urllib3 resolves through socket.getaddrinfo)."""

    def __init__(self, name: str, ip: str):
        self.name, self.ip = name, ip

    def __enter__(self):
        self.original = socket.getaddrinfo

        def getaddrinfo(host, *args, **kwargs):
            return self.original(self.ip if host == self.name else host, *args, **kwargs)

        socket.getaddrinfo = getaddrinfo
        return self

    def __exit__(self, *exc):
        socket.getaddrinfo = self.original

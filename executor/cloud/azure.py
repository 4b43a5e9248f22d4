"""Azure: Azure AD (Entra ID) tokens, ACR's refresh-token exchange, Blob Storage objects.

Tokens, in the order of the fork's docker-credential-acr (pkg/token/token.go) and azure-identity's
EnvironmentCredential / WorkloadIdentityCredential / ManagedIdentityCredential:
  1. AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET: client credentials;
  2. AZURE_FEDERATED_TOKEN_FILE (AKS workload identity; or AZURE_FEDERATED_TOKEN) + AZURE_CLIENT_ID +
     AZURE_TENANT_ID: the federated token as client assertion;
  3. managed identity from the instance metadata service (AZURE_POD_IDENTITY_AUTHORITY_HOST overrides it,
     as azure-identity reads it), AZURE_CLIENT_ID choosing a user-assigned identity.
The token endpoint is AZURE_AUTHORITY_HOST (default https://login.microsoftonline.com), v2.0.

ACR: the AAD token goes to https://<registry>/oauth2/exchange (grant_type=access_token) for an ACR refresh
token, which docker sends as an identity token (user `<token>`): the registry's token endpoint then takes it
with grant_type=refresh_token.

Blob: kaniko's AZURE_STORAGE_ACCESS_KEY signs with Shared Key; without it an AAD token for Storage is used.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import parse_qsl, urlsplit

from . import http
from .errors import CloudError

log = logging.getLogger(__name__)

#: the fork's acrRE, plus mcr.microsoft.com (docker-credential-acr pkg/credhelper/helper.go)
ACR_PATTERN = re.compile(r"^.*\.azurecr\.io$|^.*\.azurecr\.cn$|^.*\.azurecr\.de$|^.*\.azurecr\.us$")
MCR_HOST = "mcr.microsoft.com"
#: kaniko's AzureBlobStorageHostRegEx (pkg/constants/constants.go): public, China, Germany, US Gov clouds; the
#: account may not hold a '/' (kaniko's `.+?` takes https://example.com/x.blob.core.windows.net/c for a blob URL
#: and would send the storage key to example.com)
BLOB_URL_PATTERNS = (re.compile(r"^https://([^/]+?)\.blob\.core\.windows\.net/(.+)"),
                     re.compile(r"^https://([^/]+?)\.blob\.core\.chinacloudapi\.cn/(.+)"),
                     re.compile(r"^https://([^/]+?)\.blob\.core\.cloudapi\.de/(.+)"),
                     re.compile(r"^https://([^/]+?)\.blob\.core\.usgovcloudapi\.net/(.+)"))
ARM_SCOPE = "https://management.azure.com/.default"
STORAGE_SCOPE = "https://storage.azure.com/.default"
STORAGE_VERSION = "2021-08-06"
EXPIRY_MARGIN = 300.0
_CLIENT_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class AadToken:
    """An Azure AD access token (client credentials or managed identity), `source` naming which; exchanged for an
    ACR refresh token, or sent to Blob storage as a bearer token."""
    value: str
    expires_at: float
    source: str
    tenant: str = ""

    def __repr__(self) -> str:
        return f"AadToken(source={self.source!r})"


def is_acr(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name == MCR_HOST or bool(ACR_PATTERN.match(name))


def is_blob_url(url: str) -> bool:
    return any(p.match(url) for p in BLOB_URL_PATTERNS)


def _authority() -> str:
    return (os.environ.get("AZURE_AUTHORITY_HOST") or "https://login.microsoftonline.com").rstrip("/")


def _federated_token() -> str | None:
    if os.environ.get("AZURE_FEDERATED_TOKEN"):
        return os.environ["AZURE_FEDERATED_TOKEN"]
    path = os.environ.get("AZURE_FEDERATED_TOKEN_FILE", "")
    if not path:
        return None
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        raise CloudError(f"Azure workload identity: cannot read AZURE_FEDERATED_TOKEN_FILE {path}: {e.strerror}") from None


def _aad(form: dict[str, str], tenant: str, what: str, source: str) -> AadToken:
    url = f"{_authority()}/{tenant}/oauth2/v2.0/token"
    data = http.call_json("POST", url, what, data=form)
    value = data.get("access_token")
    if not value:
        raise CloudError(f"{what}: the answer has no access_token")
    return AadToken(value, time.time() + float(data.get("expires_in", 3600)), source, tenant)


def _managed_identity(scope: str) -> AadToken:
    base = (os.environ.get("AZURE_POD_IDENTITY_AUTHORITY_HOST") or "http://169.254.169.254").rstrip("/")
    resource = scope.removesuffix("/.default")
    params = {"api-version": "2018-02-01", "resource": resource}
    if os.environ.get("AZURE_CLIENT_ID"):
        params["client_id"] = os.environ["AZURE_CLIENT_ID"]
    data = http.call_json("GET", base + "/metadata/identity/oauth2/token", "Azure managed identity (IMDS)",
                          params=params, headers={"Metadata": "true"}, timeout=http.METADATA_TIMEOUT)
    value = data.get("access_token")
    if not value:
        raise CloudError("Azure managed identity (IMDS): the answer has no access_token")
    return AadToken(value, time.time() + float(data.get("expires_in", 3600)), "managed identity",
                    os.environ.get("AZURE_TENANT_ID", ""))


_cache: dict[str, AadToken] = {}
_lock = threading.Lock()


def aad_token(scope: str) -> AadToken:
    """An Azure AD token for `scope` from the first source that applies (cached until 5 minutes before expiry)."""
    with _lock:
        cached = _cache.get(scope)
        if cached and cached.expires_at - EXPIRY_MARGIN > time.time():
            return cached
        tenant, client = os.environ.get("AZURE_TENANT_ID", ""), os.environ.get("AZURE_CLIENT_ID", "")
        secret = os.environ.get("AZURE_CLIENT_SECRET", "")
        if tenant and client and secret:
            token = _aad({"grant_type": "client_credentials", "client_id": client, "client_secret": secret,
                          "scope": scope}, tenant, f"Azure AD client secret (AZURE_CLIENT_ID={client})",
                         f"service principal {client}")
        elif (assertion := _federated_token()) is not None:
            if not tenant or not client:
                raise CloudError("Azure workload identity: AZURE_FEDERATED_TOKEN_FILE is set but AZURE_CLIENT_ID or "
                                 "AZURE_TENANT_ID is not")
            token = _aad({"grant_type": "client_credentials", "client_id": client, "scope": scope,
                          "client_assertion_type": _CLIENT_ASSERTION, "client_assertion": assertion}, tenant,
                         f"Azure workload identity (AZURE_CLIENT_ID={client})", f"workload identity {client}")
        else:
            try:
                token = _managed_identity(scope)
            except CloudError as e:
                raise CloudError("no Azure credentials: AZURE_CLIENT_SECRET and AZURE_FEDERATED_TOKEN_FILE are not "
                                 f"set, and managed identity did not help ({e})") from None
        log.debug("Azure AD token for %s from %s", scope, token.source)
        _cache[scope] = token
        return token


def reset_cache() -> None:
    with _lock:
        _cache.clear()


def acr_refresh_token(host: str, verify: bool | str = True) -> tuple[str, str]:
    """-> (ACR refresh token, where the AAD token came from): the AAD token exchanged at the registry."""
    token = aad_token(ARM_SCOPE)
    form = {"grant_type": "access_token", "service": host, "access_token": token.value}
    if token.tenant:
        form["tenant"] = token.tenant
    what = f"ACR token exchange at {host} (Azure AD token from {token.source})"
    data = http.call_json("POST", f"https://{host}/oauth2/exchange", what, data=form, verify=verify)
    refresh = data.get("refresh_token")
    if not refresh:
        raise CloudError(f"{what}: the answer has no refresh_token")
    return refresh, token.source


# ---- Blob Storage --------------------------------------------------------------------------------
def shared_key_authorization(account: str, key_b64: str, method: str, url: str, headers: dict[str, str]) -> str:
    """`SharedKey account:signature` for the Blob service (version 2015-02-21 and later: empty Content-Length
    when zero)."""
    parts = urlsplit(url)
    lower = {k.lower(): v for k, v in headers.items()}
    length = lower.get("content-length", "")
    fields = [method.upper(), lower.get("content-encoding", ""), lower.get("content-language", ""),
              "" if length in ("", "0") else length, lower.get("content-md5", ""), lower.get("content-type", ""),
              lower.get("date", ""), lower.get("if-modified-since", ""), lower.get("if-match", ""),
              lower.get("if-none-match", ""), lower.get("if-unmodified-since", ""), lower.get("range", "")]
    canonical_headers = "".join(f"{k}:{' '.join(v.split())}\n" for k, v in sorted(lower.items())
                                if k.startswith("x-ms-"))
    resource = f"/{account}{parts.path or '/'}"
    query: dict[str, list[str]] = {}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(k.lower(), []).append(v)
    for k in sorted(query):
        resource += f"\n{k}:{','.join(sorted(query[k]))}"
    string_to_sign = "\n".join(fields) + "\n" + canonical_headers + resource
    try:
        key = base64.b64decode(key_b64, validate=True)
    except ValueError:
        raise CloudError("AZURE_STORAGE_ACCESS_KEY is not base64 (copy the storage account's access key as is)") from None
    signature = base64.b64encode(hmac.new(key, string_to_sign.encode(), hashlib.sha256).digest()).decode()
    return f"SharedKey {account}:{signature}"


def blob_object(url: str):
    """A streaming GET of an Azure Blob URL (requests.Response, status 200): a SAS URL as is, else Shared Key
    with AZURE_STORAGE_ACCESS_KEY (kaniko's), else an Azure AD token for Storage."""
    parts = urlsplit(url)
    account = (parts.hostname or "").split(".")[0]
    headers = {"x-ms-version": STORAGE_VERSION, "x-ms-date": formatdate(usegmt=True)}
    query = dict(parse_qsl(parts.query))
    if "sig" in query:
        who = "with the URL's shared access signature"
    elif os.environ.get("AZURE_STORAGE_ACCESS_KEY"):
        headers["Authorization"] = shared_key_authorization(account, os.environ["AZURE_STORAGE_ACCESS_KEY"], "GET",
                                                            url, headers)
        who = f"with the access key of account {account} (AZURE_STORAGE_ACCESS_KEY)"
    else:
        token = aad_token(STORAGE_SCOPE)
        headers["Authorization"] = f"Bearer {token.value}"
        who = f"as {token.source}"
    what = f"Azure Blob {parts.netloc} ({who})"
    resp = http.call("GET", url, what, headers=headers, stream=True, expect=(200, 400, 401, 403, 404, 409))
    if resp.status_code != 200:
        detail = _blob_error(resp)
        resp.close()
        raise CloudError(f"{what}: HTTP {resp.status_code} {detail}".rstrip())
    return resp


def _blob_error(resp) -> str:
    """`Code: Message` of a Storage error answer (the message's first sentence; RequestId and Time dropped)."""
    text = resp.content[:4096].decode(errors="replace")
    code = resp.headers.get("x-ms-error-code") or ""
    m = re.search(r"<Code>(.*?)</Code>", text, re.S)
    code = code or (m.group(1).strip() if m else "")
    m = re.search(r"<Message>(.*?)</Message>", text, re.S)
    message = " ".join((m.group(1) if m else "").split()).split(" RequestId:")[0]
    return f"{code}: {message}".strip(": ")[:300]

"""Google: OAuth2 access tokens (Application Default Credentials, as golang.org/x/oauth2/google's
DefaultTokenSource which go-containerregistry's google.Keychain uses) and GCS objects.

Order:
  1. GOOGLE_APPLICATION_CREDENTIALS, a JSON file of type
     * `service_account`: a JWT signed with the key (RS256) exchanged at `token_uri` (RFC 7523 jwt-bearer);
     * `external_account` (workload identity federation): a subject token from `credential_source` (a file,
       or a URL with headers; text or JSON with `subject_token_field_name`) exchanged at `token_url` (RFC 8693
       token exchange), then, with `service_account_impersonation_url`, generateAccessToken;
     * `authorized_user`: the refresh token at `token_uri`;
  2. gcloud's well-known file ~/.config/gcloud/application_default_credentials.json (same types);
  3. the metadata server (GKE workload identity, GCE): GCE_METADATA_HOST or metadata.google.internal,
     `Metadata-Flavor: Google` both ways.
GCS: the JSON API's media download, at STORAGE_EMULATOR_HOST when set (as Google's client libraries).
"""
from __future__ import annotations

import calendar
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from . import http
from .errors import CloudError
from .rsa import b64url, load_private_key

log = logging.getLogger(__name__)

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
METADATA_DEFAULT_HOST = "metadata.google.internal"
EXPIRY_MARGIN = 300.0
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
_ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


@dataclass(frozen=True)
class AccessToken:
    """A Google OAuth2 access token from Application Default Credentials (`source` says which kind): the password
    of the google credential helper (GCR, Artifact Registry), the bearer token of a GCS download."""
    value: str
    expires_at: float
    source: str

    def __repr__(self) -> str:
        return f"AccessToken(source={self.source!r})"


def _token(data: dict, what: str, source: str, value_key: str = "access_token") -> AccessToken:
    value = data.get(value_key)
    if not value:
        raise CloudError(f"{what}: the answer has no {value_key}")
    try:
        expires_in = float(data.get("expires_in", 3600))
    except (TypeError, ValueError):
        expires_in = 3600.0
    return AccessToken(value, time.time() + expires_in, source)


# ---- credential files ---------------------------------------------------------------------------
def _service_account(info: dict, path: str) -> AccessToken:
    email, token_uri = info.get("client_email", ""), info.get("token_uri") or DEFAULT_TOKEN_URI
    what = f"Google service account {email or '?'} ({path})"
    if not email or not info.get("private_key"):
        raise CloudError(f"{what}: the key file lacks client_email or private_key")
    key = load_private_key(info["private_key"])
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT"}
    if info.get("private_key_id"):
        header["kid"] = info["private_key_id"]
    claims = {"iss": email, "scope": CLOUD_PLATFORM, "aud": token_uri, "iat": now, "exp": now + 3600}
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + b64url(json.dumps(claims, separators=(",", ":")).encode()))
    assertion = signing_input + "." + b64url(key.sign_sha256(signing_input.encode()))
    data = http.call_json("POST", token_uri, what, data={"grant_type": _JWT_BEARER, "assertion": assertion})
    return _token(data, what, f"service account {email}")


def _subject_token(source: dict, what: str) -> str:
    fmt = source.get("format") or {}
    if source.get("file"):
        try:
            with open(source["file"]) as f:
                raw = f.read()
        except OSError as e:
            raise CloudError(f"{what}: cannot read the subject token file {source['file']}: {e.strerror}") from None
    elif source.get("url"):
        raw = http.call("GET", source["url"], f"{what}: subject token", headers=source.get("headers") or {}).text
    elif source.get("environment_id", "").startswith("aws"):
        raise CloudError(f"{what}: AWS-sourced external accounts are not supported by kiln; use a file- or "
                         "URL-sourced credential configuration")
    elif source.get("executable"):
        raise CloudError(f"{what}: executable-sourced external accounts are not supported by kiln")
    else:
        raise CloudError(f"{what}: credential_source names no file or url")
    if fmt.get("type") == "json":
        field = fmt.get("subject_token_field_name", "")
        try:
            value = json.loads(raw).get(field)
        except (ValueError, AttributeError):
            value = None
        if not value:
            raise CloudError(f"{what}: the subject token has no field {field!r}")
        return str(value)
    return raw.strip()


def _external_account(info: dict, path: str) -> AccessToken:
    audience = info.get("audience", "")
    what = f"Google external account ({path})"
    token_url = info.get("token_url") or "https://sts.googleapis.com/v1/token"
    subject = _subject_token(info.get("credential_source") or {}, what)
    form = {"grant_type": _TOKEN_EXCHANGE, "audience": audience, "scope": CLOUD_PLATFORM,
            "requested_token_type": _ACCESS_TOKEN_TYPE, "subject_token": subject,
            "subject_token_type": info.get("subject_token_type", "urn:ietf:params:oauth:token-type:jwt")}
    auth = None
    if info.get("client_id") and info.get("client_secret"):
        auth = (info["client_id"], info["client_secret"])
    token = _token(http.call_json("POST", token_url, f"{what}: STS token exchange", data=form, auth=auth),
                   what, f"external account {audience}")
    impersonate = info.get("service_account_impersonation_url")
    if not impersonate:
        return token
    lifetime = (info.get("service_account_impersonation") or {}).get("token_lifetime_seconds", 3600)
    data = http.call_json("POST", impersonate, f"{what}: service account impersonation",
                          headers={"Authorization": f"Bearer {token.value}"},
                          json={"scope": [CLOUD_PLATFORM], "lifetime": f"{int(lifetime)}s"})
    value = data.get("accessToken")
    if not value:
        raise CloudError(f"{what}: impersonation answered without accessToken")
    expires = data.get("expireTime", "")
    try:
        expires_at = float(calendar.timegm(time.strptime(expires[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        expires_at = time.time() + float(lifetime)
    email = impersonate.rsplit("/", 1)[-1].split(":")[0]
    return AccessToken(value, expires_at, f"external account {audience} as {email}")


def _authorized_user(info: dict, path: str) -> AccessToken:
    what = f"Google user credentials ({path})"
    form = {"grant_type": "refresh_token", "client_id": info.get("client_id", ""),
            "client_secret": info.get("client_secret", ""), "refresh_token": info.get("refresh_token", "")}
    return _token(http.call_json("POST", info.get("token_uri") or DEFAULT_TOKEN_URI, what, data=form), what,
                  "authorized user")


def _from_file(path: str) -> AccessToken:
    try:
        with open(path) as f:
            info = json.load(f)
    except OSError as e:
        raise CloudError(f"Google credentials file {path}: {e.strerror}") from None
    except ValueError as e:
        raise CloudError(f"Google credentials file {path} is not JSON: {e}") from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind == "service_account":
        return _service_account(info, path)
    if kind == "external_account":
        return _external_account(info, path)
    if kind == "authorized_user":
        return _authorized_user(info, path)
    raise CloudError(f"Google credentials file {path}: unsupported type {kind!r} (expected service_account, "
                     "external_account or authorized_user)")


# ---- the metadata server -------------------------------------------------------------------------
def metadata_host() -> str:
    return os.environ.get("GCE_METADATA_HOST") or os.environ.get("GCE_METADATA_IP") or METADATA_DEFAULT_HOST


def _from_metadata() -> AccessToken:
    host = metadata_host()
    url = f"http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
    what = "Google metadata server"
    resp = http.call("GET", url, what, headers={"Metadata-Flavor": "Google"}, timeout=http.METADATA_TIMEOUT)
    if resp.headers.get("Metadata-Flavor") != "Google":
        raise CloudError(f"{what}: {host} answered without 'Metadata-Flavor: Google' (not a metadata server)")
    try:
        data = resp.json()
    except ValueError:
        raise CloudError(f"{what}: {host} answered something that is not JSON") from None
    return _token(data, what, f"metadata server {host}")


# ---- the chain -----------------------------------------------------------------------------------
_cache: dict[str, AccessToken] = {}
_lock = threading.Lock()


def well_known_file() -> str:
    base = os.environ.get("CLOUDSDK_CONFIG") or os.path.join(os.path.expanduser("~"), ".config", "gcloud")
    return os.path.join(base, "application_default_credentials.json")


def access_token() -> AccessToken:
    """A cloud-platform access token from the first source that applies; cached until 5 minutes before it
    expires. A source that applies and fails raises with its reason."""
    with _lock:
        cached = _cache.get("adc")
        if cached and cached.expires_at - EXPIRY_MARGIN > time.time():
            return cached
        path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "")
        if path:
            token = _from_file(path)
        elif os.path.isfile(well_known_file()):
            token = _from_file(well_known_file())
        else:
            try:
                token = _from_metadata()
            except CloudError as e:
                raise CloudError("no Google credentials: GOOGLE_APPLICATION_CREDENTIALS is not set, there is no "
                                 f"{well_known_file()}, and the metadata server did not help ({e})") from None
        log.debug("Google access token from %s", token.source)
        _cache["adc"] = token
        return token


def reset_cache() -> None:
    with _lock:
        _cache.clear()


# ---- GCS -----------------------------------------------------------------------------------------
def gcs_object(bucket: str, name: str):
    """A streaming media download of gs://bucket/name (requests.Response, status 200). Without Google
    credentials the request goes out anonymously (a public object); STORAGE_EMULATOR_HOST points it at an
    emulator."""
    emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
    if emulator:
        base = emulator if "://" in emulator else f"http://{emulator}"
    else:
        base = "https://storage.googleapis.com"
    url = f"{base.rstrip('/')}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}?alt=media"
    headers = {}
    who = "anonymously"
    try:
        token = access_token()
        headers["Authorization"] = f"Bearer {token.value}"
        who = f"as {token.source}"
    except CloudError as e:
        log.warning("gs://%s/%s: %s; trying anonymously", bucket, name, e)
    what = f"GCS ({who})"
    resp = http.call("GET", url, what, headers=headers, stream=True, expect=(200, 401, 403, 404))
    if resp.status_code != 200:
        reason = http.gist(resp)
        resp.close()
        raise CloudError(f"{what}: {urlsplit(url).netloc} answered HTTP {resp.status_code}: {reason}")
    return resp

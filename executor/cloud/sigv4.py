"""AWS Signature Version 4 (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html).

`sign()` returns the headers to add to a request: `X-Amz-Date`, `X-Amz-Security-Token` (temporary
credentials), `X-Amz-Content-Sha256` (S3) and `Authorization`. S3 takes the path as sent (one URI encoding);
every other service encodes it twice, as botocore does.
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
from urllib.parse import quote, urlsplit, parse_qsl

from .errors import CloudError


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(pairs))


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def sign(method: str, url: str, headers: dict[str, str], body: bytes, *, access_key: str, secret_key: str,
         session_token: str = "", region: str, service: str, now: datetime.datetime | None = None,
         unsigned_payload: bool = False) -> dict[str, str]:
    if not access_key or not secret_key:
        raise CloudError("SigV4: no access key to sign with")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    parts = urlsplit(url)
    payload_hash = "UNSIGNED-PAYLOAD" if unsigned_payload else hashlib.sha256(body).hexdigest()
    out = {"X-Amz-Date": amz_date}
    if session_token:
        out["X-Amz-Security-Token"] = session_token
    if service == "s3":
        out["X-Amz-Content-Sha256"] = payload_hash
    all_headers = {k.lower(): " ".join(str(v).split()) for k, v in {**headers, **out}.items()}
    host = parts.hostname or ""
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port and parts.port != default_port:
        host = f"{host}:{parts.port}"
    all_headers["host"] = host
    signed = sorted(all_headers)
    path = parts.path or "/"
    # the path as sent is already URI-encoded: S3 signs it so, every other service encodes it once more
    canonical_path = path if service == "s3" else quote(path, safe="/-_.~")
    canonical_request = "\n".join([
        method.upper(), canonical_path, canonical_query(parts.query),
        "".join(f"{k}:{all_headers[k]}\n" for k in signed), ";".join(signed), payload_hash])
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                                hashlib.sha256(canonical_request.encode()).hexdigest()])
    signature = hmac.new(signing_key(secret_key, date, region, service), string_to_sign.encode(),
                         hashlib.sha256).hexdigest()
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={';'.join(signed)}, "
                            f"Signature={signature}")
    return out

"""AWS: the standard credential chain, ECR authorization tokens and S3 objects, signed with SigV4.

The chain, in the AWS SDKs' order (aws-sdk-go-v2 config.LoadDefaultConfig, which the kaniko fork's ECR helper
and S3 context use):
  1. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN);
  2. web identity (IRSA): AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN -> STS AssumeRoleWithWebIdentity (unsigned);
  3. the shared credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, profile AWS_PROFILE);
  4. container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (ECS) or AWS_CONTAINER_CREDENTIALS_FULL_URI
     with AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE) (EKS Pod Identity);
  5. the instance metadata service, IMDSv2 (a session token first), unless AWS_EC2_METADATA_DISABLED=true.
Endpoints follow the SDKs' overrides: AWS_ENDPOINT_URL_<SERVICE> (STS, ECR, S3, ECR_PUBLIC), then
AWS_ENDPOINT_URL; S3 also takes kaniko's S3_ENDPOINT and S3_FORCE_PATH_STYLE; IMDS takes
AWS_EC2_METADATA_SERVICE_ENDPOINT.
"""
from __future__ import annotations

import base64
import calendar
import ipaddress
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from . import http
from .errors import CloudError
from .sigv4 import sign

if TYPE_CHECKING:
    import configparser

log = logging.getLogger(__name__)

#: amazon-ecr-credential-helper's ecrPattern (ecr-login/api/client.go): account, FIPS, region, partition domain
ECR_PATTERN = re.compile(r"^(\d{12})\.dkr[\.\-]ecr(\-fips)?\.([a-zA-Z0-9][a-zA-Z0-9-_]*)\."
                         r"(amazonaws\.(?:com(?:\.cn)?|eu)|on\.(?:aws|amazonwebservices\.com\.cn)|sc2s\.sgov\.gov|"
                         r"c2s\.ic\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)$")
ECR_PUBLIC_HOSTS = ("public.ecr.aws", "ecr-public.aws.com")
#: where a refresh starts before the expiry (the SDKs refresh 5-15 minutes early)
EXPIRY_MARGIN = 300.0
_IMDS_DEFAULT = "http://169.254.169.254"
_CONTAINER_HOSTS = {"169.254.170.2", "169.254.170.23", "fd00:ec2::23"}
_STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"


@dataclass(frozen=True)
class AwsCredentials:
    """AWS credentials from the chain (env, ~/.aws files, web identity, container or instance metadata), `source`
    naming which; they sign ECR and S3 requests (SigV4)."""
    access_key: str
    secret_key: str
    session_token: str = ""
    expires_at: float | None = None     # epoch seconds
    source: str = ""

    def fresh(self) -> bool:
        return self.expires_at is None or self.expires_at - EXPIRY_MARGIN > time.time()

    def __repr__(self) -> str:
        return f"AwsCredentials(access_key={self.access_key!r}, source={self.source!r})"


# ---- partitions, regions, endpoints ------------------------------------------------------------
def dns_suffix(region: str) -> str:
    if region.startswith("cn-"):
        return "amazonaws.com.cn"
    if region.startswith("us-iso-"):
        return "c2s.ic.gov"
    if region.startswith("us-isob-"):
        return "sc2s.sgov.gov"
    if region.startswith("us-isof-"):
        return "csp.hci.ic.gov"
    if region.startswith("eu-isoe-"):
        return "cloud.adc-e.uk"
    if region.startswith("eusc-"):
        return "amazonaws.eu"
    return "amazonaws.com"


def _profile() -> str:
    return os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE") or "default"


def _ini(path_env: str, default: str) -> "configparser.ConfigParser":
    import configparser   # here, not at module level: kiln's start-up imports this module without reading ~/.aws

    path = os.environ.get(path_env) or os.path.join(os.path.expanduser("~"), ".aws", default)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path)
    except configparser.Error as e:
        raise CloudError(f"AWS {default} file {path} cannot be read: {e}") from None
    return parser


def region(default: str = "us-east-1") -> str:
    """AWS_REGION, AWS_DEFAULT_REGION, the profile's region in ~/.aws/config, else `default`."""
    value = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if value:
        return value
    cfg = _ini("AWS_CONFIG_FILE", "config")
    profile = _profile()
    section = profile if profile == "default" else f"profile {profile}"
    if cfg.has_option(section, "region"):
        return cfg.get(section, "region")
    return default


def endpoint(service_env: str, default_url: str) -> str:
    """The SDKs' endpoint override for a service (AWS_ENDPOINT_URL_<ID>, then AWS_ENDPOINT_URL), or the default."""
    url = os.environ.get(f"AWS_ENDPOINT_URL_{service_env}") or os.environ.get("AWS_ENDPOINT_URL") or default_url
    return url.rstrip("/")


def _parse_time(value: str) -> float | None:
    if not value:
        return None
    try:
        return float(calendar.timegm(time.strptime(value.split(".")[0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


# ---- the chain -----------------------------------------------------------------------------------
def _from_env() -> AwsCredentials | None:
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID", ""), os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    if key and secret:
        return AwsCredentials(key, secret, os.environ.get("AWS_SESSION_TOKEN", ""), source="environment")
    return None


def _sts_url() -> str:
    reg = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    default = f"https://sts.{reg}.{dns_suffix(reg)}" if reg else "https://sts.amazonaws.com"
    return endpoint("STS", default)


def _from_web_identity() -> AwsCredentials | None:
    token_file, role = os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE", ""), os.environ.get("AWS_ROLE_ARN", "")
    if not token_file or not role:
        return None
    what = f"AWS web identity (AWS_ROLE_ARN={role})"
    try:
        with open(token_file) as f:
            token = f.read().strip()
    except OSError as e:
        raise CloudError(f"{what}: cannot read AWS_WEB_IDENTITY_TOKEN_FILE {token_file}: {e.strerror}") from None
    session_name = os.environ.get("AWS_ROLE_SESSION_NAME") or f"kiln-{int(time.time())}"
    url = _sts_url()
    form = {"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15", "RoleArn": role,
            "RoleSessionName": session_name, "WebIdentityToken": token}
    resp = http.call("POST", url + "/", f"{what}: STS AssumeRoleWithWebIdentity", data=form,
                     expect=(200, 400, 403), headers={"Accept": "application/xml"})
    if resp.status_code != 200:
        raise CloudError(f"{what}: STS {url} refused AssumeRoleWithWebIdentity: {_sts_error(resp.text)}")
    import xml.etree.ElementTree as ET   # only an STS answer is XML: not at start-up

    try:
        root = ET.fromstring(resp.text)
        creds = root.find(f".//{_STS_NS}Credentials")
        if creds is None:
            creds = root.find(".//Credentials")
        value = {child.tag.split("}")[-1]: (child.text or "") for child in creds} if creds is not None else {}
    except ET.ParseError:
        value = {}
    if not value.get("AccessKeyId") or not value.get("SecretAccessKey"):
        raise CloudError(f"{what}: STS {url} answered without credentials")
    return AwsCredentials(value["AccessKeyId"], value["SecretAccessKey"], value.get("SessionToken", ""),
                          _parse_time(value.get("Expiration", "")), source=f"web identity ({role})")


def _sts_error(text: str) -> str:
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(text)
        code = next((e.text for e in root.iter() if e.tag.endswith("Code")), "")
        message = next((e.text for e in root.iter() if e.tag.endswith("Message")), "")
        return f"{code}: {message}".strip(": ") or text[:200]
    except ET.ParseError:
        return " ".join(text.split())[:200]


def _from_shared_file() -> AwsCredentials | None:
    cfg = _ini("AWS_SHARED_CREDENTIALS_FILE", "credentials")
    profile = _profile()
    if not cfg.has_section(profile):
        return None
    key = cfg.get(profile, "aws_access_key_id", fallback="")
    secret = cfg.get(profile, "aws_secret_access_key", fallback="")
    if key and secret:
        return AwsCredentials(key, secret, cfg.get(profile, "aws_session_token", fallback=""),
                              source=f"shared credentials file (profile {profile})")
    return None


def _container_url_allowed(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    if host in _CONTAINER_HOSTS or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _from_container() -> AwsCredentials | None:
    relative = os.environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")
    full = os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
    if relative:
        url = "http://169.254.170.2" + relative
    elif full:
        url = full
        if not _container_url_allowed(url):
            raise CloudError(f"AWS container credentials: AWS_CONTAINER_CREDENTIALS_FULL_URI {url} is plain HTTP to "
                             "a host that is neither loopback nor the ECS/EKS credential address")
    else:
        return None
    headers = {}
    token_file = os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "")
    if token_file:
        try:
            with open(token_file) as f:
                headers["Authorization"] = f.read().strip()
        except OSError as e:
            raise CloudError(f"AWS container credentials: cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE "
                             f"{token_file}: {e.strerror}") from None
    elif os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"):
        headers["Authorization"] = os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
    data = http.call_json("GET", url, "AWS container credentials", headers=headers, timeout=http.METADATA_TIMEOUT)
    if not data.get("AccessKeyId") or not data.get("SecretAccessKey"):
        raise CloudError(f"AWS container credentials: {url} answered without AccessKeyId/SecretAccessKey")
    source = "EKS Pod Identity" if (urlsplit(url).hostname or "") in ("169.254.170.23", "fd00:ec2::23") \
        else "container credentials"
    return AwsCredentials(data["AccessKeyId"], data["SecretAccessKey"], data.get("Token", ""),
                          _parse_time(data.get("Expiration", "")), source=f"{source} ({url})")


def imds_token(base: str) -> str:
    resp = http.call("PUT", base + "/latest/api/token", "AWS instance metadata (IMDSv2 token)",
                     headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"}, timeout=http.METADATA_TIMEOUT)
    return resp.text.strip()


def _from_imds() -> AwsCredentials | None:
    if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return None
    base = (os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or _IMDS_DEFAULT).rstrip("/")
    token = imds_token(base)
    headers = {"X-aws-ec2-metadata-token": token}
    what = "AWS instance metadata (IMDSv2)"
    roles = http.call("GET", base + "/latest/meta-data/iam/security-credentials/", what, headers=headers,
                      timeout=http.METADATA_TIMEOUT).text.split()
    if not roles:
        raise CloudError(f"{what}: the instance has no IAM role")
    data = http.call_json("GET", base + "/latest/meta-data/iam/security-credentials/" + roles[0], what,
                          headers=headers, timeout=http.METADATA_TIMEOUT)
    if data.get("Code", "Success") != "Success" or not data.get("AccessKeyId"):
        raise CloudError(f"{what}: role {roles[0]}: {data.get('Code')} {data.get('Message', '')}".strip())
    return AwsCredentials(data["AccessKeyId"], data["SecretAccessKey"], data.get("Token", ""),
                          _parse_time(data.get("Expiration", "")), source=f"instance metadata (role {roles[0]})")


_SOURCES = (("environment", _from_env), ("web identity", _from_web_identity),
            ("shared credentials file", _from_shared_file), ("container credentials", _from_container),
            ("instance metadata", _from_imds))
_cache: dict[str, AwsCredentials] = {}
_lock = threading.Lock()


def credentials() -> AwsCredentials:
    """The first source of the chain that has credentials (cached until 5 minutes before they expire).

    A source that applies (its variables are set) and fails raises at once with its reason, as the SDKs do;
    none applying is one CloudError naming them all."""
    with _lock:
        cached = _cache.get("chain")
        if cached and cached.fresh():
            return cached
        tried: list[str] = []
        for name, source in _SOURCES:
            try:
                creds = source()
            except CloudError as e:
                if name == "instance metadata":      # no IMDS off EC2: one of the reasons, not the error
                    tried.append(f"{name}: {e}")
                    continue
                raise
            if creds is not None:
                log.debug("AWS credentials from %s", creds.source)
                _cache["chain"] = creds
                return creds
            tried.append(f"{name}: not configured")
        raise CloudError("no AWS credentials found (" + "; ".join(tried) + ")")


def reset_cache() -> None:
    with _lock:
        _cache.clear()
        _ecr_cache.clear()


# ---- ECR -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EcrRegistry:
    """An Amazon ECR registry as its host name spells it (account, region, FIPS, domain) or ECR Public; where its
    GetAuthorizationToken is asked."""
    account: str
    fips: bool
    region: str
    domain: str
    public: bool = False


def ecr_registry(host: str) -> EcrRegistry | None:
    """The ECR registry a host names (amazon-ecr-credential-helper's ExtractRegistry), else None."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name in ECR_PUBLIC_HOSTS:
        return EcrRegistry("", False, "us-east-1", "amazonaws.com", public=True)
    m = ECR_PATTERN.match(name)
    if not m:
        return None
    return EcrRegistry(m.group(1), m.group(2) == "-fips", m.group(3), m.group(4))


def _api_domain(registry: EcrRegistry) -> str:
    # the dual-stack registry domains have their API under the partition's usual domain
    return {"on.aws": "amazonaws.com", "on.amazonwebservices.com.cn": "amazonaws.com.cn"}.get(
        registry.domain, registry.domain)


@dataclass(frozen=True)
class EcrToken:
    """The registry user and password ECR's GetAuthorizationToken gives, cached until shortly before they expire."""
    username: str
    password: str
    expires_at: float | None


_ecr_cache: dict[str, EcrToken] = {}


def ecr_token(host: str) -> EcrToken:
    """GetAuthorizationToken for the registry `host` names, signed with the chain's credentials; cached until
    5 minutes before `expiresAt`."""
    registry = ecr_registry(host)
    if registry is None:
        raise CloudError(f"{host} is not an Amazon ECR registry")
    key = "public" if registry.public else f"{registry.account}/{registry.region}"
    with _lock:
        cached = _ecr_cache.get(key)
    if cached and (cached.expires_at or 0) - EXPIRY_MARGIN > time.time():
        return cached
    creds = credentials()
    if registry.public:
        service, region_name, env = "ecr-public", "us-east-1", "ECR_PUBLIC"
        url = endpoint(env, "https://api.ecr-public.us-east-1.amazonaws.com")
        target, body = "SpencerFrontendService.GetAuthorizationToken", {}
    else:
        service, region_name, env = "ecr", registry.region, "ECR"
        prefix = "ecr-fips" if registry.fips else "api.ecr"
        url = endpoint(env, f"https://{prefix}.{registry.region}.{_api_domain(registry)}")
        target, body = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken", {"registryIds": [registry.account]}
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
    headers.update(sign("POST", url + "/", headers, payload, access_key=creds.access_key, secret_key=creds.secret_key,
                        session_token=creds.session_token, region=region_name, service=service))
    what = f"ECR GetAuthorizationToken for {host} (AWS credentials from {creds.source})"
    resp = http.call("POST", url + "/", what, data=payload, headers=headers, expect=(200, 400, 403))
    if resp.status_code != 200:
        try:
            err = resp.json()
            reason = f"{err.get('__type', '').split('#')[-1]}: {err.get('message') or err.get('Message', '')}"
        except ValueError:       # some answers (and moto's IAM checks) are XML
            reason = _sts_error(resp.text) if resp.text.lstrip().startswith("<") else http.gist(resp)
        raise CloudError(f"{what}: {url} refused (HTTP {resp.status_code}) {reason}".rstrip())
    data = resp.json().get("authorizationData")
    entry = data[0] if isinstance(data, list) and data else data
    if not isinstance(entry, dict) or not entry.get("authorizationToken"):
        raise CloudError(f"{what}: the answer has no authorizationToken")
    try:
        user, _, password = base64.b64decode(entry["authorizationToken"]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise CloudError(f"{what}: the authorizationToken is not base64 of user:password") from None
    expires = entry.get("expiresAt")
    token = EcrToken(user, password, float(expires) if isinstance(expires, (int, float)) else None)
    with _lock:
        _ecr_cache[key] = token
    return token


# ---- S3 ------------------------------------------------------------------------------------------
def s3_object(bucket: str, key: str):
    """A streaming GET of s3://bucket/key (a requests.Response, status 200), as kaniko's S3 context: S3_ENDPOINT
    (and S3_FORCE_PATH_STYLE=true) or AWS_ENDPOINT_URL_S3, the region of AWS_REGION/AWS_DEFAULT_REGION/the
    profile; a 301 naming another region (x-amz-bucket-region) is followed once."""
    creds = credentials()
    region_name = region()
    for _attempt in range(2):
        url = _s3_url(bucket, key, region_name)
        headers = sign("GET", url, {}, b"", access_key=creds.access_key, secret_key=creds.secret_key,
                       session_token=creds.session_token, region=region_name, service="s3")
        what = f"S3 (AWS credentials from {creds.source})"
        resp = http.call("GET", url, what, headers=headers, stream=True, allow_redirects=False,
                         expect=(200, 301, 307, 400, 401, 403, 404))
        if resp.status_code == 200:
            return resp
        other = resp.headers.get("x-amz-bucket-region")
        if resp.status_code in (301, 307, 400) and other and other != region_name:
            resp.close()
            log.debug("s3://%s is in %s, not %s", bucket, other, region_name)
            region_name = other
            continue
        reason = _s3_error(resp)
        resp.close()
        raise CloudError(f"{what}: {urlsplit(url).netloc} answered HTTP {resp.status_code}: {reason}")
    raise CloudError(f"S3: the region of bucket {bucket} keeps changing")


def _s3_url(bucket: str, key: str, region_name: str) -> str:
    path_key = quote(key, safe="/-_.~")
    base = os.environ.get("S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    force_path = os.environ.get("S3_FORCE_PATH_STYLE", "").lower() == "true"
    if base:
        if "://" not in base:
            base = "https://" + base
        parts = urlsplit(base.rstrip("/"))
        if force_path or "." in bucket and parts.scheme == "https":
            return f"{parts.scheme}://{parts.netloc}{parts.path}/{bucket}/{path_key}"
        return f"{parts.scheme}://{bucket}.{parts.netloc}{parts.path}/{path_key}"
    host = f"s3.{region_name}.{dns_suffix(region_name)}"
    if force_path or "." in bucket:
        return f"https://{host}/{bucket}/{path_key}"
    return f"https://{bucket}.{host}/{path_key}"


def _s3_error(resp) -> str:
    try:
        text = resp.content[:4096].decode(errors="replace")
    except Exception:  # noqa: BLE001 - a broken body is still an error answer
        text = ""
    reason = _sts_error(text) if text.strip().startswith("<") else " ".join(text.split())[:200]
    return reason or resp.reason or ""

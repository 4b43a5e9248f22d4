"""The HTTP shared by the cloud modules: one requests.Session per process, short timeouts for link-local
metadata services, answers turned into CloudError with the body's gist (never a secret)."""
from __future__ import annotations

import json
import threading
from typing import Any

import requests

from .errors import CloudError

USER_AGENT = "kiln/0.1 (cloud credentials)"
#: metadata services answer in milliseconds where they exist; elsewhere nothing answers at all
METADATA_TIMEOUT = (2.0, 5.0)
#: token and API endpoints on the internet
API_TIMEOUT = (10.0, 60.0)

_local = threading.local()


def session() -> requests.Session:
    s = getattr(_local, "session", None)
    if s is None:
        s = requests.Session()
        s.headers["User-Agent"] = USER_AGENT
        _local.session = s
    return s


def gist(resp: requests.Response, limit: int = 300) -> str:
    """A short, single-line description of an error answer: the JSON error fields or the text."""
    text = resp.text or ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error_description", "message", "Message", "error"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("Message") or json.dumps(value)
            if value:
                return " ".join(str(value).split())[:limit]
    return " ".join(text.split())[:limit] or (resp.reason or "")


def call(method: str, url: str, what: str, *, timeout: Any = API_TIMEOUT, expect: tuple[int, ...] = (200,),
         **kwargs: Any) -> requests.Response:
    """One request; CloudError naming `what` on a connection error or an unexpected status."""
    try:
        resp = session().request(method, url, timeout=timeout, **kwargs)
    except requests.exceptions.SSLError as e:
        raise CloudError(f"{what}: TLS error talking to {_origin(url)}: {_reason(e)}") from None
    except requests.exceptions.Timeout:
        raise CloudError(f"{what}: {_origin(url)} did not answer in time") from None
    except requests.exceptions.ConnectionError as e:
        raise CloudError(f"{what}: cannot reach {_origin(url)} ({_reason(e)})") from None
    if resp.status_code not in expect:
        raise CloudError(f"{what}: {_origin(url)} answered HTTP {resp.status_code}: {gist(resp)}")
    return resp


def call_json(method: str, url: str, what: str, **kwargs: Any) -> dict:
    resp = call(method, url, what, **kwargs)
    try:
        data = resp.json()
    except ValueError:
        raise CloudError(f"{what}: {_origin(url)} answered something that is not JSON") from None
    if not isinstance(data, dict):
        raise CloudError(f"{what}: {_origin(url)} answered JSON that is not an object")
    return data


def _origin(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else url


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "Temporary failure in name resolution",
                   "No route to host", "Network is unreachable", "certificate verify failed"):
        if marker in text:
            return marker.lower()
    return text[:200]

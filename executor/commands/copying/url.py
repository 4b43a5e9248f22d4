"""ADD of a URL: download one file (never extracted) as docker does.

* name: the last element of the URL path (``/a/b/`` gives ``b``, as Go's ``path.Base``); when the path
  gives none, the ``filename`` of a ``Content-Disposition`` header; else ``__unnamed__``;
* mode 0600 (the caller applies --chmod), mtime from ``Last-Modified``, else the Unix epoch (BuildKit's
  HTTP source and classic docker both leave 0 when the header is missing or unparsable);
* a status outside 2xx/3xx is an error naming the URL; ``checksum`` (``sha256:<hex>``, also sha384 and
  sha512 as go-digest) is verified on the bytes received.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import os
import posixpath
import re
import urllib.parse
from email.message import Message

import requests

from executor.commands.copying.errors import CopyError

log = logging.getLogger(__name__)

UNNAMED = "__unnamed__"
_ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def is_git_source(source: str) -> bool:
    """A git repository as BuildKit's dfgitutil sees one: ``git@host:...``, ``git://``, ``ssh://``, or an
    http(s) URL whose path ends in ``.git`` (a ``#ref:subdir`` fragment allowed)."""
    if source.startswith(("git@", "git://", "ssh://")):
        return True
    if is_url(source):
        path = urllib.parse.urlsplit(source.split("#", 1)[0]).path
        return path.endswith(".git")
    return False


def parse_checksum(checksum: str) -> tuple[str, str]:
    """``"sha256:<hex>"`` -> ``("sha256", "<hex>")``, or a CopyError naming the value."""
    algo, sep, hexpart = checksum.partition(":")
    if not sep or algo not in _ALGORITHMS:
        raise CopyError(f"invalid checksum {checksum!r}: expected sha256:<hex> (or sha384:, sha512:)")
    if len(hexpart) != _ALGORITHMS[algo] or not re.fullmatch(r"[0-9a-f]+", hexpart):
        raise CopyError(f"invalid checksum {checksum!r}: {algo} needs {_ALGORITHMS[algo]} lowercase hex digits")
    return algo, hexpart


def _safe(name: str) -> str:
    name = name.replace("\\", "/")
    base = posixpath.basename(name.rstrip("/"))
    return "" if base in ("", ".", "..") else base


def filename_for(url: str, content_disposition: str | None) -> str:
    """The file name docker gives a download (see module doc)."""
    path = urllib.parse.urlsplit(url).path
    if path:
        base = posixpath.basename(posixpath.normpath(path)) if path.strip("/") else ""
        if base and base not in (".", "/", ".."):
            return _safe(urllib.parse.unquote(base)) or UNNAMED
    if content_disposition:
        msg = Message()
        msg["content-disposition"] = content_disposition
        param = msg.get_param("filename", header="content-disposition")
        if isinstance(param, tuple):  # RFC 2231 encoded
            param = email.utils.collapse_rfc2231_value(param)
        if isinstance(param, str) and param and not param.endswith("/"):
            base = _safe(param)
            if base:
                return base
    return UNNAMED


def _mtime(last_modified: str | None) -> float:
    if last_modified:
        try:
            parsed = email.utils.parsedate_to_datetime(last_modified)
            return parsed.timestamp()
        except (TypeError, ValueError, IndexError):
            log.warning("ignoring unparsable Last-Modified %r", last_modified)
    return 0.0


def fetch_url(url: str, dest_dir: str, session: requests.Session | None = None,
              checksum: str | None = None, timeout: float = 300.0) -> tuple[str, float]:
    """Download ``url`` into ``dest_dir``; returns (path of the file, its mtime in seconds)."""
    expected = parse_checksum(checksum) if checksum else None
    own_session = session is None
    session = session or requests.Session()
    try:
        try:
            resp = session.get(url, stream=True, timeout=timeout)
        except requests.RequestException as exc:
            raise CopyError(f"ADD {url}: download failed: {exc}") from exc
        with resp:
            if not 200 <= resp.status_code < 400:
                raise CopyError(f"ADD {url}: download failed: invalid response status {resp.status_code}")
            name = filename_for(url, resp.headers.get("Content-Disposition"))
            path = os.path.join(dest_dir, name)
            digest = hashlib.new(expected[0]) if expected else None
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in resp.iter_content(1 << 20):
                        out.write(chunk)
                        if digest is not None:
                            digest.update(chunk)
            except requests.RequestException as exc:
                raise CopyError(f"ADD {url}: download interrupted: {exc}") from exc
            os.chmod(path, 0o600)
            if expected and digest is not None and digest.hexdigest() != expected[1]:
                os.unlink(path)
                raise CopyError(f"ADD {url}: digest mismatch: got {expected[0]}:{digest.hexdigest()} "
                                f"(expected {checksum})")
            mtime = _mtime(resp.headers.get("Last-Modified"))
            os.utime(path, (mtime, mtime))
            return path, mtime
    finally:
        if own_session:
            session.close()

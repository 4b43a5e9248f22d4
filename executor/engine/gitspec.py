"""Git build contexts, the pure rules: what a context URL names, which credentials go with it, where a
submodule lives. (The clone itself is `executor.engine.gitclone`.)

kaniko's `pkg/buildcontext/git.go` (GoogleContainerTools/kaniko 1.24 and osscontainertools/kaniko 1.28):

* `git://HOST/PATH` is fetched over HTTPS, or plain HTTP when `GIT_PULL_METHOD=http` (`getGitPullMethod`);
  never over the git daemon protocol. kiln also takes `git+https://`, `git+http://` (the URL after `git+`,
  so `git+git://` is the daemon protocol) and an `https://`/`http://` URL whose path ends in `.git`.
* The fragment: `#REF` and `#REF#COMMIT` (split on `#`); kiln also takes BuildKit's `:SUBDIR` after the last
  part (`#main:services/api`, `#:docs`), the same as `--context-sub-path` inside the clone.
* Credentials (`getGitAuth`): `GIT_TOKEN` wins and is sent as the basic-auth user name with an empty password
  (what GitHub takes); else `GIT_USERNAME` and `GIT_PASSWORD` (either may be empty; kaniko's README: "password
  being the token"); else the user and password of the URL itself (go-git's `basicAuthFromEndpoint`).
"""
from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

GIT_PULL_METHOD_ENV = "GIT_PULL_METHOD"
GIT_USERNAME_ENV = "GIT_USERNAME"
GIT_PASSWORD_ENV = "GIT_PASSWORD"
GIT_TOKEN_ENV = "GIT_TOKEN"

_HEX = re.compile(r"[0-9a-f]+")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)@")
MIN_ABBREV = 7   # the shortest commit abbreviation kiln takes (git's default core.abbrev)


class GitSpecError(ValueError):
    """The context URL cannot name a git repository as written."""


@dataclass(frozen=True)
class GitSpec:
    """A git build context as written (`git://`, `git+https://`, `https://...git`, then `#ref[#commit]` or
    `#ref:subdir`), split into its parts."""
    url: str                    # what is fetched, without user information: https://host/org/repo.git
    ref: str | None = None      # the first fragment part: a branch, tag, other ref, or commit id
    commit: str | None = None   # kaniko's second fragment part (#ref#commit): the commit checked out
    subdir: str = ""            # BuildKit's :subdir, inside the clone
    url_username: str | None = None   # user information of the URL (used without GIT_* credentials)
    url_password: str | None = None


@dataclass(frozen=True)
class GitCredentials:
    """The user and password for a git context (from GIT_TOKEN, GIT_USERNAME/GIT_PASSWORD or the URL), `source`
    naming which for messages."""
    username: str
    password: str
    source: str       # for messages: "GIT_TOKEN", "GIT_USERNAME and GIT_PASSWORD", "the context URL"

    @property
    def shown_user(self) -> str | None:
        """The user name when it is one (not a token sent as the user name)."""
        return self.username if self.username and self.password and self.source != GIT_TOKEN_ENV else None


def is_git_context(spec: str) -> bool:
    """A context kiln clones with git (kaniko's `git://`, kiln's `git+SCHEME://` and `https://...git`)."""
    if spec.startswith(("git://", "git+")):
        return True
    if spec.startswith(("https://", "http://")):
        return urlsplit(spec.split("#", 1)[0]).path.rstrip("/").endswith(".git")
    return False


def parse_git(spec: str, env: Mapping[str, str] | None = None) -> GitSpec:
    """Split a git context into URL (user information taken out), ref, commit and sub directory."""
    env = env or {}
    location, _, fragment = spec.partition("#")
    if location.startswith("git://"):
        method = env.get(GIT_PULL_METHOD_ENV, "")
        scheme = method if method in ("https", "http") else "https"
        location = f"{scheme}://{location[len('git://'):]}"
    elif location.startswith("git+"):
        location = location[len("git+"):]
    url, username, password = split_userinfo(location)
    ref = commit = None
    subdir = ""
    if fragment:
        pieces = fragment.split("#")
        last = pieces[-1]
        if ":" in last:
            last, subdir = last.split(":", 1)
        pieces[-1] = last
        ref = pieces[0] or None
        if len(pieces) > 1:
            commit = pieces[1] or None
            if commit is not None and not looks_like_commit(commit):
                raise GitSpecError(f"{url}#{fragment}: {commit!r} after the second '#' is not a commit id")
        if len(pieces) > 2:
            raise GitSpecError(f"{url}#{fragment}: expected #REF or #REF#COMMIT")
    return GitSpec(url=url, ref=ref, commit=commit.lower() if commit else None, subdir=subdir.strip("/"),
                   url_username=username, url_password=password)


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """`https://user:pw@host/x` -> (`https://host/x`, user, password), percent-decoded."""
    try:
        parts = urlsplit(url)
        hostname, port = parts.hostname, parts.port
    except ValueError as e:
        raise GitSpecError(f"{redact_url(url)} is not a valid URL: {e}") from None
    if not parts.scheme or not hostname:
        raise GitSpecError(f"{redact_url(url)} names no host")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return urlunsplit((parts.scheme, _netloc(hostname, port), parts.path, parts.query, "")), username, password


def _netloc(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


def redact_url(url: str) -> str:
    """`https://user:secret@host/x` -> `https://user:***@host/x`; a lone user (often a token) is masked too."""
    match = _USERINFO.match(url)
    if not match:
        return url
    user, sep, _ = match.group(2).partition(":")
    return f"{match.group(1)}{user + ':***' if sep else '***'}@{url[match.end():]}"


def redact_context(spec: str) -> str:
    """A context argument for messages: the user information of a git URL masked (other kinds as given)."""
    location, sep, fragment = spec.partition("#")
    return redact_url(location) + sep + fragment if "@" in location else spec


def credentials(spec: GitSpec, env: Mapping[str, str]) -> GitCredentials | None:
    """kaniko's getGitAuth, then the URL's own user information (see the module text)."""
    token = env.get(GIT_TOKEN_ENV, "")
    if token:
        return GitCredentials(token, "", GIT_TOKEN_ENV)
    username, password = env.get(GIT_USERNAME_ENV, ""), env.get(GIT_PASSWORD_ENV, "")
    if username or password:
        return GitCredentials(username, password, f"{GIT_USERNAME_ENV} and {GIT_PASSWORD_ENV}")
    if spec.url_username:
        return GitCredentials(spec.url_username, spec.url_password or "", "the context URL")
    return None


def looks_like_commit(text: str) -> bool:
    """A full or abbreviated commit id (7 to 64 hex digits)."""
    return MIN_ABBREV <= len(text) <= 64 and bool(_HEX.fullmatch(text.lower()))


def is_full_commit(text: str) -> bool:
    """A full SHA-1 (40) or SHA-256 (64) object id, as go-git's plumbing.IsHash (which takes only 40)."""
    return len(text) in (40, 64) and bool(_HEX.fullmatch(text.lower()))


def same_origin(a: str, b: str) -> bool:
    """Scheme, host and port equal (default ports filled in): where credentials may follow a URL."""
    pa, pb = urlsplit(a), urlsplit(b)
    defaults = {"https": 443, "http": 80, "git": 9418}
    return (pa.scheme, pa.hostname, pa.port or defaults.get(pa.scheme)) == \
           (pb.scheme, pb.hostname, pb.port or defaults.get(pb.scheme))


def resolve_submodule_url(parent: str, url: str) -> str:
    """A `.gitmodules` URL against the superproject's URL, as git's `resolve_relative_url`: `../x.git` replaces
    the last path component of the parent, `./x` appends to it; anything else is taken as written."""
    if not url.startswith(("./", "../")):
        return url
    parts = urlsplit(parent)
    base = parts.path.rstrip("/")
    rel = url
    while True:
        if rel.startswith("./"):
            rel = rel[2:]
        elif rel.startswith("../"):
            rel = rel[3:]
            if not base or base == "/":
                raise GitSpecError(f"submodule URL {url!r} climbs above the host of {parent}")
            base = posixpath.dirname(base)
        else:
            break
    path = posixpath.join(base or "/", rel) if rel else base
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def valid_submodule_name(name: str) -> bool:
    """git's check_submodule_name: not empty, not absolute, no `..` component (the name is a directory under
    `.git/modules`)."""
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        return False
    return ".." not in name.split("/")

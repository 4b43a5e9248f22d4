"""Cloning a git build context with dulwich (the executor image has no git binary), as kaniko's go-git clone.

The result is a working tree *with* its `.git`, as kaniko's (`git.PlainClone` into the context directory;
kaniko issue 1513 shows `.git` in an image after `COPY . .`), so `RUN git describe` works and `--git depth=`
and `single-branch=` are visible in the build: `.git/shallow`, `refs/remotes/origin/*`. Unlike kaniko, the
remote URL written to `.git/config` never holds credentials.

Steps: list the server's refs, decide what to fetch (`executor.engine.gitplan`), fetch it (smart HTTP through
urllib3; basic auth from `executor.engine.gitspec.credentials`, sent only to the repository's own origin),
fetch a named commit on its own when the first fetch did not bring it, write refs and HEAD as `git clone`
would, check the tree out, then the submodules when asked (`--git recurse-submodules=true`): each one cloned
from its `.gitmodules` URL (relative ones against the superproject's URL) into `.git/modules/NAME`, every
`refs/heads/*` tip plus the recorded commit, whole history (go-git without ShallowSubmodules), nested ones
too, 10 levels deep as go-git's DefaultSubmoduleRecursionDepth. The context's credentials go to submodules
on the same scheme, host and port only (go-git sends them everywhere; git's credential helpers match the
host).

Every failure is one `GitCloneError` line naming the URL without credentials; the library's text is
logged at debug level.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import socket
import ssl
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from executor.engine.gitplan import HEADS, TAGS, FetchPlan, GitRefError, RemoteRefs, plan_fetch
from executor.engine.gitspec import (GitCredentials, GitSpec, GitSpecError, is_full_commit, resolve_submodule_url,
                                     same_origin, split_userinfo, valid_submodule_name)
from executor.logs import register_secret
from executor.options import GitOptions

log = logging.getLogger(__name__)

SUBMODULE_DEPTH = 10            # go-git's DefaultSubmoduleRecursionDepth
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 300.0
_TLS_HINT = "pass --git insecure-skip-tls=true to skip the check, or trust its CA (SSL_CERT_FILE)"
_CREDENTIALS_HINT = "set GIT_USERNAME and GIT_PASSWORD, or GIT_TOKEN"


class GitCloneError(Exception):
    """The context cannot be cloned; one line naming the URL (never its credentials) and what to do."""


@dataclass
class _Remote:
    """A git remote opened with dulwich for one clone (the context's repository or a submodule's), with its
    credentials and the prefix of its messages."""
    url: str                        # without credentials
    client: object                  # a dulwich GitClient
    path: str
    credentials: GitCredentials | None
    insecure: bool
    label: str = ""                 # "submodule libs/x (URL): " before messages; "" for the context itself


def clone_git_context(spec: GitSpec, dest: str, options: GitOptions, credentials: GitCredentials | None) -> str:
    """Clone `spec` into the existing empty directory `dest`; returns the commit id checked out."""
    from dulwich.repo import Repo

    url = spec.url
    remote = _open_remote(url, credentials, options.insecure_skip_tls)
    refs = _list_refs(remote)
    try:
        plan = plan_fetch(spec, options, refs)
    except GitRefError as e:
        raise GitCloneError(str(e)) from None
    for note in plan.notes:
        log.warning("%s", note)
    depth = f", depth {plan.depth}" if plan.depth else ""
    single = ", single branch" if options.single_branch else ""
    log.info("Cloning %s (%s%s%s)", url, plan.describe(), depth, single)
    repo = Repo.init(dest)
    try:
        _configure(repo, url, plan, options.single_branch)
        _fetch(remote, repo, plan.wants, plan.depth)
        commit = _checkout_target(remote, repo, plan, refs)
        _write_refs(repo, plan, refs, commit)
        _check_out(repo, dest, os.path.join(repo.controldir(), "index"), commit)
        log.info("Checked out %s (%s) from %s", commit, plan.describe(), url)
        if options.recurse_submodules:
            _update_submodules(repo, dest, repo.controldir(), url, commit, remote, options, level=1)
    finally:
        repo.close()
    return commit


# ---- transport ---------------------------------------------------------------------------------------------


def _open_remote(url: str, credentials: GitCredentials | None, insecure: bool, label: str = "") -> _Remote:
    from dulwich.client import Urllib3HttpGitClient, default_urllib3_manager, get_transport_and_path

    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        import urllib3

        https_insecure = insecure and parts.scheme == "https"
        pool = default_urllib3_manager(None, base_url=url, cert_reqs="CERT_NONE" if https_insecure else None,
                                       timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT))
        # one attempt per request, as git and go-git make (urllib3 would retry thrice, logging each); redirects
        # are followed (a moved repository, http -> https)
        pool.connection_pool_kw["retries"] = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0,
                                                           redirect=5)
        if https_insecure:
            log.warning("TLS certificate of %s is not verified (--git insecure-skip-tls=true)", parts.netloc)
        client = Urllib3HttpGitClient(f"{parts.scheme}://{parts.netloc}/", pool_manager=pool,
                                      username=credentials.username if credentials else None,
                                      password=credentials.password if credentials else None,
                                      include_tags=True, quiet=True)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return _Remote(url, client, path, credentials, https_insecure, label)
    if parts.scheme == "git":
        client, path = get_transport_and_path(url, include_tags=True, quiet=True)
        return _Remote(url, client, path, None, False, label)
    raise GitCloneError(f"{label}cannot clone {url}: kiln clones over https://, http:// and git:// only")


def _list_refs(remote: _Remote) -> RemoteRefs:
    with _talking_to(remote, "listing the refs of"):
        result = remote.client.get_refs(remote.path)      # type: ignore[attr-defined]
    raw = getattr(result, "refs", result)
    symrefs = getattr(result, "symrefs", {}) or {}
    refs = {name.decode(): oid.decode() for name, oid in raw.items()
            if oid is not None and not name.endswith(b"^{}")}
    head = symrefs.get(b"HEAD")
    return RemoteRefs(refs=refs, head=head.decode() if head else None)


def _fetch(remote: _Remote, repo, wants: tuple[str, ...] | list[str], depth: int | None) -> None:
    missing = [w.encode() for w in wants if w.encode() not in repo.object_store]
    if not missing:
        return

    def determine_wants(refs, depth=None):   # noqa: ANN001, ANN202 - dulwich's callback
        return missing

    with _talking_to(remote, "fetching from"):
        remote.client.fetch(remote.path, repo, determine_wants=determine_wants,   # type: ignore[attr-defined]
                            progress=_Progress(remote.url), depth=depth)


class _Progress:
    """The server's progress messages at debug level, without the percentage updates in between."""

    _COUNTER = re.compile(r"\(\d+/\d+\)")
    _LOCAL = re.compile(r"\d+/\d+$")       # dulwich's own counters (copying pack entries: 3/15)

    def __init__(self, url: str):
        self.url = url
        self.pending = ""

    def __call__(self, data: bytes) -> None:
        self.pending += data.decode("utf-8", errors="replace")
        *pieces, self.pending = re.split(r"[\r\n]", self.pending)
        for piece in pieces:
            piece = piece.strip()
            if piece and not self._LOCAL.search(piece) and (not self._COUNTER.search(piece) or piece.endswith("done.")):
                log.debug("git %s: %s", self.url, piece)


@contextlib.contextmanager
def _quiet_tls(insecure: bool) -> Iterator[None]:
    """urllib3 warns on every unverified request; kiln has said so once."""
    if not insecure:
        yield
        return
    import urllib3

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        yield


@contextlib.contextmanager
def _talking_to(remote: _Remote, doing: str) -> Iterator[None]:
    """dulwich's and urllib3's errors as one line each (their text at debug level)."""
    from dulwich.client import HTTPProxyUnauthorized, HTTPUnauthorized
    from dulwich.errors import GitProtocolError, HangupException, NotGitRepository

    try:
        with _quiet_tls(remote.insecure):
            yield
    except GitCloneError:
        raise
    except HTTPUnauthorized:
        log.debug("git: %s %s", doing, remote.url, exc_info=True)
        raise GitCloneError(_unauthorized(remote)) from None
    except HTTPProxyUnauthorized:
        log.debug("git: %s %s", doing, remote.url, exc_info=True)
        raise GitCloneError(f"{remote.label}the HTTP proxy wants credentials (HTTP 407); "
                            "put them in the proxy URL (https_proxy=http://user:password@proxy:port)") from None
    except NotGitRepository:
        log.debug("git: %s %s", doing, remote.url, exc_info=True)
        hint = ("; if it is private, check that the credentials from "
                f"{remote.credentials.source} may read it" if remote.credentials else
                f"; if it is private, {_CREDENTIALS_HINT}")
        raise GitCloneError(f"{remote.label}no git repository at this URL (HTTP 404){hint}") from None
    except HangupException:
        log.debug("git: %s %s", doing, remote.url, exc_info=True)
        raise GitCloneError(f"{remote.label}the git server hung up while {doing} the repository") from None
    except GitProtocolError as e:
        log.debug("git: %s %s", doing, remote.url, exc_info=True)
        raise GitCloneError(_protocol_error(remote, e, doing)) from None
    except OSError as e:
        log.debug("git: %s %s", doing, remote.url, exc_info=True)
        if _network_error(e):
            raise GitCloneError(_unreachable(remote, e)) from None
        raise GitCloneError(f"{remote.label}{doing} the repository failed: {e.strerror or e}") from None
    except Exception as e:   # noqa: BLE001 - urllib3's errors that dulwich lets through (a read timeout...)
        import urllib3.exceptions

        if not isinstance(e, urllib3.exceptions.HTTPError):
            raise
        log.debug("git: %s %s", doing, remote.url, exc_info=True)
        reason = _connection_reason(e) or str(e).splitlines()[0][:200]
        raise GitCloneError(f"{remote.label}the connection to the git server failed while {doing} the "
                            f"repository ({reason})") from None


def _unauthorized(remote: _Remote) -> str:
    where = remote.label
    creds = remote.credentials
    if creds is None:
        return f"{where}the git server wants credentials (HTTP 401); {_CREDENTIALS_HINT}"
    user = f" (user {creds.shown_user})" if creds.shown_user else ""
    return f"{where}the git server refused the credentials from {creds.source}{user} (HTTP 401); check them"


def _protocol_error(remote: _Remote, error: Exception, doing: str) -> str:
    where = remote.label
    if _network_error(error):
        return _unreachable(remote, error)
    text = str(error)
    status = re.search(r"unexpected http resp (\d+)", text)
    if status:
        code = int(status.group(1))
        if code == 403:
            if remote.credentials:
                return f"{where}the git server denied access with the credentials from {remote.credentials.source} " \
                       "(HTTP 403)"
            return f"{where}the git server denied access (HTTP 403); if the repository is private, {_CREDENTIALS_HINT}"
        return f"{where}the git server answered HTTP {code} while {doing} the repository"
    first = text.strip().splitlines()[0][:200] if text.strip() else error.__class__.__name__
    return f"{where}the git server refused {doing} the repository: {first}"


def _network_error(error: BaseException) -> bool:
    return _connection_reason(error) is not None


def _unreachable(remote: _Remote, error: BaseException) -> str:
    reason = _connection_reason(error) or str(error)
    host = urlsplit(remote.url).netloc
    return f"{remote.label}cannot reach git server {host} ({reason})"


def _connection_reason(error: BaseException) -> str | None:
    """Why a connection failed, in a few words, or None when the failure was not the connection's. The whole
    exception chain is read first: urllib3's NewConnectionError is a ConnectTimeoutError even when the
    connection was refused, so the operating system's error decides."""
    import urllib3.exceptions as u3

    chain: list[BaseException] = []
    todo: list[BaseException] = [error]
    while todo:
        e = todo.pop(0)
        if any(e is seen for seen in chain):
            continue
        chain.append(e)
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            detail = f": {e.verify_message}" if e.verify_message else ""
            return f"TLS: certificate verify failed{detail}; {_TLS_HINT}"
        if isinstance(e, ssl.SSLError):
            if e.reason == "WRONG_VERSION_NUMBER":
                return "TLS: the server does not speak TLS there; use http://"
            return f"TLS: {(e.reason or 'handshake failed').lower().replace('_', ' ')}"
        if isinstance(e, socket.gaierror):
            return "unknown host"
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, ConnectionResetError):
            return "connection reset"
    for e in chain:
        if isinstance(e, u3.NameResolutionError):
            return "unknown host"
        if isinstance(e, (TimeoutError, socket.timeout, u3.ConnectTimeoutError, u3.ReadTimeoutError)):
            return "timed out"
    text = str(error)
    for needle, reason in (("Connection refused", "connection refused"), ("Name or service not known", "unknown host"),
                           ("Temporary failure in name resolution", "unknown host"),
                           ("CERTIFICATE_VERIFY_FAILED", f"TLS: certificate verify failed; {_TLS_HINT}")):
        if needle in text:
            return reason
    return None


# ---- the repository ----------------------------------------------------------------------------------------


def _configure(repo, url: str, plan: FetchPlan, single_branch: bool) -> None:
    config = repo.get_config()
    spec = (f"+{HEADS}{plan.branch}:refs/remotes/origin/{plan.branch}" if single_branch and plan.branch
            else "+refs/heads/*:refs/remotes/origin/*")
    config.set((b"remote", b"origin"), b"url", url.encode())
    config.set((b"remote", b"origin"), b"fetch", spec.encode())
    if plan.branch:
        config.set((b"branch", plan.branch.encode()), b"remote", b"origin")
        config.set((b"branch", plan.branch.encode()), b"merge", f"{HEADS}{plan.branch}".encode())
    config.write_to_path()


def _checkout_target(remote: _Remote, repo, plan: FetchPlan, refs: RemoteRefs) -> str:
    """The commit id to check out: the named commit (fetched on its own when missing), else the tip of the
    non-branch ref, the cloned ref, or HEAD."""
    store = repo.object_store
    if plan.commit:
        if is_full_commit(plan.commit):
            if plan.commit.encode() not in store:
                try:
                    _fetch(remote, repo, [plan.commit], plan.depth)
                except GitCloneError as e:
                    if "not our ref" in str(e) or "upload-pack" in str(e):
                        raise GitCloneError(f"commit {plan.commit} not found in the repository") from None
                    raise
            if plan.commit.encode() not in store:
                raise GitCloneError(f"commit {plan.commit} not found in the repository")
            return _peel(store, plan.commit, f"commit {plan.commit}", remote.url)
        return _abbreviated(repo, plan, remote.url)
    name = plan.checkout_ref or plan.clone_ref or "HEAD"
    return _peel(store, refs.refs[name], name, remote.url)


def _abbreviated(repo, plan: FetchPlan, url: str) -> str:
    from dulwich.objects import Commit

    prefix = plan.commit.encode()      # type: ignore[union-attr]
    store = repo.object_store
    found = [oid for oid in _iter_prefix(store, prefix) if isinstance(store[oid], Commit)]
    if len(found) > 1:
        raise GitCloneError(f"commit {plan.commit} is ambiguous: "
                            f"{', '.join(o.decode()[:12] for o in found[:4])}; give more digits")
    if not found:
        scope = "the branch fetched" if len(plan.fetch_refs) == 1 else "the branches fetched"
        shallow = f" to depth {plan.depth}" if plan.depth else ""
        raise GitCloneError(f"no commit {plan.commit} in {scope}{shallow}; give the full commit id "
                            "(kiln then fetches it by id)")
    return found[0].decode()


def _iter_prefix(store, prefix: bytes) -> Iterator[bytes]:
    if hasattr(store, "iter_prefix"):
        yield from store.iter_prefix(prefix)
        return
    yield from (oid for oid in store if oid.startswith(prefix))


def _peel(store, oid: str, what: str, url: str) -> str:
    from dulwich.objects import Commit, Tag

    obj = store[oid.encode()]
    while isinstance(obj, Tag):
        obj = store[obj.object[1]]
    if not isinstance(obj, Commit):
        raise GitCloneError(f"{what} is a {obj.type_name.decode()}, not a commit")
    return obj.id.decode()


def _write_refs(repo, plan: FetchPlan, remote: RemoteRefs, commit: str) -> None:
    """As `git clone` leaves them: remote-tracking branches, tags that came along, the ref named by the URL
    under its own name, the local branch, and HEAD (on the branch, or detached at the commit)."""
    store, refs = repo.object_store, repo.refs
    written_remote: set[str] = set()
    for name in plan.fetch_refs:
        oid = remote.refs[name].encode()
        if name == "HEAD" or oid not in store:
            continue
        if name.startswith(HEADS):
            short = name[len(HEADS):]
            refs[f"refs/remotes/origin/{short}".encode()] = oid
            written_remote.add(short)
        else:
            refs[name.encode()] = oid                   # kaniko's refspec FETCHREF:FETCHREF
    if remote.head and remote.head.startswith(HEADS) and remote.head[len(HEADS):] in written_remote:
        refs.set_symbolic_ref(b"refs/remotes/origin/HEAD", f"refs/remotes/origin/{remote.head[len(HEADS):]}".encode())
    for name, oid in remote.refs.items():            # tags following the history fetched
        if name.startswith(TAGS) and oid.encode() in store:
            refs[name.encode()] = oid.encode()
    if plan.branch:
        refs[f"{HEADS}{plan.branch}".encode()] = remote.refs[plan.clone_ref].encode()   # type: ignore[index]
    if plan.branch and not plan.detached:
        refs.set_symbolic_ref(b"HEAD", f"{HEADS}{plan.branch}".encode())
    else:
        _detach_head(repo, commit)


def _detach_head(repo, commit: str) -> None:
    with contextlib.suppress(KeyError):
        del repo.refs[b"HEAD"]                       # the symbolic HEAD itself, not what it points at
    repo.refs[b"HEAD"] = commit.encode()


def _check_out(repo, worktree: str, index_path: str, commit: str) -> None:
    from dulwich.index import build_index_from_tree

    tree = repo.object_store[commit.encode()].tree
    try:
        build_index_from_tree(worktree, index_path, repo.object_store, tree, honor_filemode=True)
    except (ValueError, OSError) as e:
        raise GitCloneError(f"cannot check out {commit}: {e}") from None


# ---- submodules --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submodule:
    """A submodule a commit records: its name and URL from `.gitmodules` and its path and commit from the tree's
    gitlink."""
    name: str
    path: str            # inside the work tree
    url: str             # as .gitmodules writes it
    commit: str          # the gitlink's commit id


def submodules_of(store, commit: str) -> tuple[list[Submodule], list[str]]:
    """The submodules a commit records (gitlinks with a `.gitmodules` entry), and the gitlink paths that have
    none (git leaves those empty too)."""
    from dulwich.config import ConfigFile, parse_submodules
    from dulwich.object_store import iter_tree_contents
    from dulwich.objects import S_ISGITLINK, Blob

    tree = store[commit.encode()].tree
    links = {e.path.decode(): e.sha.decode() for e in iter_tree_contents(store, tree) if S_ISGITLINK(e.mode)}
    if not links:
        return [], []
    try:
        _, blob_id = store[tree].lookup_path(store.__getitem__, b".gitmodules")
        blob = store[blob_id]
    except KeyError:
        return [], sorted(links)
    if not isinstance(blob, Blob):
        return [], sorted(links)
    config = ConfigFile.from_file(io.BytesIO(blob.data))
    found: list[Submodule] = []
    for path, url, name in parse_submodules(config):
        p = path.decode().strip("/")
        if p in links:
            found.append(Submodule(name.decode(), p, url.decode(), links.pop(p)))
    return found, sorted(links)


def _update_submodules(repo, worktree: str, gitdir: str, parent_url: str, commit: str, parent: _Remote,
                       options: GitOptions, level: int) -> None:
    subs, orphans = submodules_of(repo.object_store, commit)
    for path in orphans:
        log.warning("submodule at %s has no entry in .gitmodules: left empty (as git does)", path)
    if not subs:
        return
    if level > SUBMODULE_DEPTH:
        log.warning("submodules nested deeper than %d levels are not cloned (go-git's limit): %s",
                    SUBMODULE_DEPTH, ", ".join(s.path for s in subs))
        return
    config = repo.get_config()
    for sub in subs:
        url = _submodule_url(sub, parent_url)
        config.set((b"submodule", sub.name.encode()), b"url", url.encode())
        config.set((b"submodule", sub.name.encode()), b"active", b"true")
        config.write_to_path()
        _clone_submodule(sub, url, worktree, gitdir, parent, options, level)


def _submodule_url(sub: Submodule, parent_url: str) -> str:
    if not valid_submodule_name(sub.name):
        raise GitCloneError(f"submodule name {sub.name!r} (path {sub.path}) is not allowed (it would leave "
                            ".git/modules)")
    try:
        url = resolve_submodule_url(parent_url, sub.url)
    except GitSpecError as e:
        raise GitCloneError(f"submodule {sub.path}: {e}") from None
    if urlsplit(url).scheme not in ("https", "http", "git"):
        raise GitCloneError(f"submodule {sub.path}: cannot clone {url!r}: kiln clones submodules over https://, "
                            "http:// and git:// only")
    return url


def _clone_submodule(sub: Submodule, url: str, worktree: str, gitdir: str, parent: _Remote, options: GitOptions,
                     level: int) -> None:
    from dulwich.repo import Repo

    url, user, password = split_userinfo(url)
    for secret in (password, user if password is None else None):
        if secret:
            register_secret(secret)
    creds = parent.credentials if parent.credentials and same_origin(url, parent.url) else None
    if creds is None and user:
        creds = GitCredentials(user, password or "", f"the URL of submodule {sub.path} in .gitmodules")
    label = f"submodule {sub.path} ({url}): "
    remote = _open_remote(url, creds, options.insecure_skip_tls, label)
    refs = _list_refs(remote)
    sub_worktree = os.path.join(worktree, sub.path)
    moddir = os.path.join(gitdir, "modules", sub.name)
    os.makedirs(os.path.dirname(moddir), exist_ok=True)
    log.info("Cloning submodule %s from %s (commit %s)", sub.path, url, sub.commit[:12])
    repo = Repo.init_bare(moddir, mkdir=True)
    try:
        config = repo.get_config()
        config.set((b"core",), b"bare", False)
        config.set((b"core",), b"worktree", os.path.relpath(sub_worktree, moddir).encode())
        config.set((b"remote", b"origin"), b"url", url.encode())
        config.set((b"remote", b"origin"), b"fetch", b"+refs/heads/*:refs/remotes/origin/*")
        config.write_to_path()
        os.makedirs(sub_worktree, exist_ok=True)
        with open(os.path.join(sub_worktree, ".git"), "w") as f:
            f.write(f"gitdir: {os.path.relpath(moddir, sub_worktree)}\n")
        heads = [oid for name, oid in sorted(refs.refs.items()) if name.startswith(HEADS)]
        _fetch(remote, repo, heads, None)
        if sub.commit.encode() not in repo.object_store:
            try:
                _fetch(remote, repo, [sub.commit], None)
            except GitCloneError as e:
                raise GitCloneError(f"{e} (asking for the commit {sub.commit} the superproject records)") from None
        if sub.commit.encode() not in repo.object_store:
            raise GitCloneError(f"{label}commit {sub.commit} not found in the repository")
        for name, oid in refs.refs.items():
            if oid.encode() not in repo.object_store:
                continue
            if name.startswith(HEADS):
                repo.refs[f"refs/remotes/origin/{name[len(HEADS):]}".encode()] = oid.encode()
            elif name.startswith(TAGS):
                repo.refs[name.encode()] = oid.encode()
        _detach_head(repo, sub.commit)
        _check_out(repo, sub_worktree, os.path.join(moddir, "index"), sub.commit)
        _update_submodules(repo, sub_worktree, moddir, url, sub.commit, remote, options, level + 1)
    finally:
        repo.close()


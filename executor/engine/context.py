"""Build contexts: where the files COPY and ADD read come from.

kaniko's `--context` takes a directory (plain or `dir://`), `tar://PATH` (or `tar://stdin`), an `https://`
URL of a tar.gz, object-store URLs (`gs://`, `s3://`, Azure Blob: buckets.py), and `git://` repositories
(fetched over HTTPS) with `#ref`, `#ref#commit` and kiln's `:subdir`; kiln also clones `git+https://`,
`git+http://` and `https://.../x.git` (executor.engine.gitspec, gitplan, gitclone). Whatever the source, the
result is a local directory; `--context-sub-path` then narrows it.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

from executor.engine.gitspec import GitSpec, GitSpecError, credentials, is_git_context, parse_git, redact_context
from executor.options import GitOptions

__all__ = ["BuildContext", "ContextError", "GitSpec", "parse_git", "prepare_context", "resolve_dockerfile",
           "safe_extract_tar"]

log = logging.getLogger(__name__)


class ContextError(Exception):
    """The build context cannot be had; the message names the context and the reason."""


@dataclass
class BuildContext:
    """The build context made local (a directory, or a tar, URL, git repository or bucket fetched into one), and
    what it came from; `close` removes what kiln fetched."""
    directory: str                     # local directory holding the context (after --context-sub-path)
    source: str                        # what the user passed, for messages
    git_url: str = ""                  # a git context: its URL (#ref kept, credentials not) and the commit cloned
    git_commit: str = ""
    _cleanup: list[str] = field(default_factory=list)

    def close(self) -> None:
        for path in self._cleanup:
            shutil.rmtree(path, ignore_errors=True)
        self._cleanup.clear()


def safe_extract_tar(fileobj: BinaryIO, dest: str, source: str) -> None:
    """Extract a context tar into `dest`, refusing any member that would land outside it.

    Refused: absolute names, `..` components, members whose parent resolves through a symlink out of
    `dest`, and hard links to targets outside. Symlinks themselves may point anywhere (they are data).
    """
    dest_real = os.path.realpath(dest)
    with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
        for member in tar:
            name = member.name
            parts = [p for p in name.split("/") if p not in ("", ".")]
            if name.startswith("/") or ".." in parts:
                raise ContextError(f"context {source}: tar entry {name!r} would be written outside the context")
            if not parts:
                continue
            parent = os.path.join(dest_real, *parts[:-1])
            if not _within(os.path.realpath(parent), dest_real):
                raise ContextError(f"context {source}: tar entry {name!r} is written through a symlink "
                                   "that leaves the context")
            if member.islnk():
                target = os.path.realpath(os.path.join(dest_real, member.linkname.lstrip("/")))
                if not _within(target, dest_real):
                    raise ContextError(f"context {source}: hard link {name!r} points outside the context")
            member.name = "/".join(parts)
            if member.isdev():
                log.warning("context %s: skipping device node %s", source, name)
                continue
            tar.extract(member, dest_real, set_attrs=True, numeric_owner=True, **_NO_FILTER)


# Python 3.11.4+ warns unless a filter is named; the checks above are ours, so the stdlib's are not needed.
_NO_FILTER = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _new_dir(work_dir: str, prefix: str) -> str:
    os.makedirs(work_dir, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=work_dir)


def _from_tar(spec: str, work_dir: str, stdin: BinaryIO | None) -> tuple[str, list[str]]:
    path = spec[len("tar://"):]
    dest = _new_dir(work_dir, "context-")
    if path == "stdin":
        stream = stdin if stdin is not None else sys.stdin.buffer
        safe_extract_tar(stream, dest, spec)
    else:
        if not os.path.isfile(path):
            raise ContextError(f"context {spec}: {path} is not a file")
        with open(path, "rb") as f:
            safe_extract_tar(f, dest, spec)
    return dest, [dest]


def _from_url(spec: str, work_dir: str, session_factory: Callable | None) -> tuple[str, list[str]]:
    import requests

    session = session_factory() if session_factory else requests.Session()
    dest = _new_dir(work_dir, "context-")
    try:
        with session.get(spec, stream=True, timeout=60) as resp:
            if resp.status_code != 200:
                raise ContextError(f"context {spec}: download failed with HTTP {resp.status_code}")
            resp.raw.decode_content = True
            safe_extract_tar(resp.raw, dest, spec)
    except (OSError, tarfile.TarError) as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise ContextError(f"context {spec}: not a readable tar archive: {e}") from e
    except Exception:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest, [dest]


def _is_blob(spec: str) -> bool:
    from executor.engine.buckets import is_bucket_context

    return is_bucket_context(spec)


def _from_bucket(spec: str, work_dir: str) -> tuple[str, list[str]]:
    """gs://, s3:// and Azure Blob contexts (executor/engine/buckets.py), extracted as tar:// ones are."""
    from executor.engine.buckets import CloudError, extract_bucket_context

    dest = _new_dir(work_dir, "context-")
    try:
        extract_bucket_context(spec, dest, safe_extract_tar)
    except CloudError as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise ContextError(f"context {spec}: {e}") from None
    except (OSError, tarfile.TarError) as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise ContextError(f"context {spec}: not a readable tar archive: {e}") from e
    except Exception:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest, [dest]


def _from_git(spec: str, work_dir: str, options: GitOptions, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Clone as kaniko does (see executor.engine.gitclone); the working tree keeps its .git, as kaniko's."""
    shown = redact_context(spec)
    try:
        git = parse_git(spec, env)
    except GitSpecError as e:
        raise ContextError(f"context {shown}: {e}") from None
    # name the URL fetched when it is not what the user wrote (git:// is fetched over https://)
    where = shown if shown.partition("#")[0] == git.url else f"{shown} ({git.url})"
    dest = _new_dir(work_dir, "context-git-")
    # the clone machinery (and its ssl, socket, dulwich) loads for a git context only: start-up (issue 21)
    from executor.engine.gitclone import GitCloneError, clone_git_context

    try:
        clone_git_context(git, dest, options, credentials(git, env))
    except GitCloneError as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise ContextError(f"context {where}: {e}") from None
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    directory = dest
    if git.subdir:
        directory = _sub_path(dest, git.subdir, shown)
    return directory, [dest]


def _sub_path(base: str, sub: str, spec: str) -> str:
    directory = os.path.realpath(os.path.join(base, sub))
    if not _within(directory, os.path.realpath(base)):
        raise ContextError(f"context {spec}: sub path {sub!r} leaves the context")
    if not os.path.isdir(directory):
        raise ContextError(f"context {spec}: sub path {sub!r} is not a directory in the context")
    return directory


def prepare_context(spec: str, work_dir: str, sub_path: str = "", *, stdin: BinaryIO | None = None,
                    session_factory: Callable | None = None, git: GitOptions | None = None,
                    env: Mapping[str, str] | None = None) -> BuildContext:
    """Make the context named by `spec` available as a local directory under `work_dir` if need be.

    `git` is `--git` (kaniko's KanikoGitOptions); `env` (default: the process's) holds GIT_USERNAME,
    GIT_PASSWORD, GIT_TOKEN and GIT_PULL_METHOD for a git context.
    """
    cleanup: list[str] = []
    git_url = git_commit = ""
    if spec.startswith("tar://"):
        directory, cleanup = _from_tar(spec, work_dir, stdin)
    elif is_git_context(spec):
        directory, cleanup = _from_git(spec, work_dir, git or GitOptions(), os.environ if env is None else env)
        git_url, git_commit = redact_context(spec), _head_commit(cleanup[0])
    elif spec.startswith(("gs://", "s3://")) or spec.startswith("https://") and _is_blob(spec):
        directory, cleanup = _from_bucket(spec, work_dir)
    elif spec.startswith(("https://", "http://")):
        directory, cleanup = _from_url(spec, work_dir, session_factory)
    elif spec.startswith("az://"):
        raise ContextError(f"context {spec}: az:// is not a kaniko context; name the blob by its URL, "
                           "https://<account>.blob.core.windows.net/<container>/<blob>")
    else:
        directory = spec[len("dir://"):] if spec.startswith("dir://") else spec
        if not os.path.isdir(directory):
            raise ContextError(f"context {spec}: no such directory")
        directory = os.path.realpath(directory)
    if sub_path:
        directory = _sub_path(directory, sub_path, redact_context(spec))
    log.debug("build context %s at %s", redact_context(spec), directory)
    return BuildContext(directory=directory, source=redact_context(spec), git_url=git_url, git_commit=git_commit,
                        _cleanup=cleanup)


def _head_commit(clone: str) -> str:
    """The commit a git context's clone checked out (its .git is kept), for the provenance."""
    from dulwich.repo import Repo

    try:
        with Repo(clone) as repo:
            return repo.head().decode()
    except Exception as e:      # noqa: BLE001 - no commit to name is no reason to fail the build
        log.debug("no HEAD commit in %s: %s", clone, e)
        return ""


def resolve_dockerfile(dockerfile: str, context_dir: str, work_dir: str,
                       session_factory: Callable | None = None) -> str:
    """kaniko's rule: an existing path as given, else relative to the context; a URL is downloaded."""
    if dockerfile.startswith(("https://", "http://")):
        import requests

        session = session_factory() if session_factory else requests.Session()
        resp = session.get(dockerfile, timeout=60)
        if resp.status_code != 200:
            raise ContextError(f"dockerfile {dockerfile}: download failed with HTTP {resp.status_code}")
        os.makedirs(work_dir, exist_ok=True)
        path = os.path.join(work_dir, "Dockerfile")
        with open(path, "wb") as f:
            f.write(resp.content)
        return path
    if os.path.isabs(dockerfile) and os.path.isfile(dockerfile):
        return dockerfile
    candidate = os.path.join(context_dir, dockerfile)
    if os.path.isfile(candidate):
        return os.path.realpath(candidate)
    if os.path.isfile(dockerfile):
        return os.path.realpath(dockerfile)
    raise ContextError(f"dockerfile {dockerfile}: not found (looked in the context {context_dir} and "
                       "the current directory)")

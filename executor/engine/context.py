"""Build contexts: where the files COPY and ADD read come from.

kaniko's `--context` takes a directory (plain or `dir://`), `tar://PATH` (or `tar://stdin`), an `https://`
URL of a tar.gz, and `git://` / `git+https://` repositories with `#ref` and `:subdir`. Whatever the source,
the result is a local directory; `--context-sub-path` then narrows it.
"""
from __future__ import annotations

import io
import logging
import os
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from typing import BinaryIO, Callable
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


class ContextError(Exception):
    """The build context cannot be had; the message names the context and the reason."""


@dataclass
class BuildContext:
    directory: str                     # local directory holding the context (after --context-sub-path)
    source: str                        # what the user passed, for messages
    git_url: str = ""                  # a git context: its URL (with #ref) and the commit checked out
    git_commit: str = ""
    _cleanup: list[str] = field(default_factory=list)

    def close(self) -> None:
        for path in self._cleanup:
            shutil.rmtree(path, ignore_errors=True)
        self._cleanup.clear()


@dataclass(frozen=True)
class GitSpec:
    url: str
    ref: str | None = None
    subdir: str = ""


def parse_git(spec: str) -> GitSpec:
    """`git://host/repo.git#ref:subdir`, `git+https://...`, and kaniko's `#refs/heads/x#<commit>`."""
    url = spec
    if url.startswith("git+"):
        url = url[len("git+"):]
    fragment = ""
    if "#" in url:
        url, fragment = url.split("#", 1)
    ref: str | None = None
    subdir = ""
    if fragment:
        # kaniko's form: #refs/heads/branch#commit -> the commit wins.
        if "#" in fragment:
            _, fragment = fragment.rsplit("#", 1)
        if ":" in fragment:
            ref, subdir = fragment.split(":", 1)
        else:
            ref = fragment
        ref = ref or None
    return GitSpec(url=url, ref=ref, subdir=subdir.strip("/"))


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


def _from_git(spec: str, work_dir: str) -> tuple[str, list[str]]:
    from dulwich import porcelain
    from dulwich.errors import GitProtocolError, HangupException, NotGitRepository

    git = parse_git(spec)
    dest = _new_dir(work_dir, "context-git-")
    errstream = io.BytesIO()
    try:
        branch_like = git.ref and not _looks_like_sha(git.ref)
        branch = git.ref.removeprefix("refs/heads/").removeprefix("refs/tags/") if branch_like else None
        repo = porcelain.clone(git.url, dest, checkout=True, branch=branch, depth=None if git.ref and not branch_like else 1,
                               errstream=errstream)
        if git.ref and not branch_like:
            _checkout_commit(repo, git.ref, spec)
        commit = repo.head().decode()
        repo.close()
    except (GitProtocolError, HangupException, NotGitRepository, OSError, KeyError) as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise ContextError(f"context {spec}: git clone of {git.url} failed: {e}") from e
    shutil.rmtree(os.path.join(dest, ".git"), ignore_errors=True)
    directory = dest
    if git.subdir:
        directory = _sub_path(dest, git.subdir, spec)
    _GIT_SOURCES[directory] = (git.url + (f"#{git.ref}" if git.ref else ""), commit)
    return directory, [dest]


#: the URL and commit of each git context cloned, by its directory (BuildContext records them)
_GIT_SOURCES: dict[str, tuple[str, str]] = {}


def _looks_like_sha(ref: str) -> bool:
    return 7 <= len(ref) <= 40 and all(c in "0123456789abcdef" for c in ref.lower())


def _checkout_commit(repo, ref: str, spec: str) -> None:
    from dulwich.objects import Commit

    wanted = ref.lower().encode()
    match = None
    for sha in repo.object_store:
        if sha.startswith(wanted):
            obj = repo.object_store[sha]
            if isinstance(obj, Commit):
                match = sha
                break
    if match is None:
        raise ContextError(f"context {spec}: commit {ref} not found in the repository")
    # Reset the working tree to that commit's tree.
    from dulwich import porcelain

    porcelain.reset(repo, "hard", match)


def _sub_path(base: str, sub: str, spec: str) -> str:
    directory = os.path.realpath(os.path.join(base, sub))
    if not _within(directory, os.path.realpath(base)):
        raise ContextError(f"context {spec}: sub path {sub!r} leaves the context")
    if not os.path.isdir(directory):
        raise ContextError(f"context {spec}: sub path {sub!r} is not a directory in the context")
    return directory


def prepare_context(spec: str, work_dir: str, sub_path: str = "", *, stdin: BinaryIO | None = None,
                    session_factory: Callable | None = None) -> BuildContext:
    """Make the context named by `spec` available as a local directory under `work_dir` if need be."""
    cleanup: list[str] = []
    if spec.startswith("tar://"):
        directory, cleanup = _from_tar(spec, work_dir, stdin)
    elif spec.startswith(("git://", "git+https://", "git+http://")):
        directory, cleanup = _from_git(spec, work_dir)
    elif spec.startswith(("https://", "http://")):
        if urlsplit(spec).path.endswith(".git") or "#" in spec and ".git" in spec:
            directory, cleanup = _from_git(spec, work_dir)
        else:
            directory, cleanup = _from_url(spec, work_dir, session_factory)
    elif spec.startswith(("gs://", "s3://", "az://")):
        raise ContextError(f"context {spec}: cloud storage contexts are not supported by kiln; "
                           "use tar:// or an https:// URL")
    else:
        directory = spec[len("dir://"):] if spec.startswith("dir://") else spec
        if not os.path.isdir(directory):
            raise ContextError(f"context {spec}: no such directory")
        directory = os.path.realpath(directory)
    git_url, git_commit = _GIT_SOURCES.pop(directory, ("", ""))
    if sub_path:
        directory = _sub_path(directory, sub_path, spec)
    log.debug("build context %s at %s", spec, directory)
    return BuildContext(directory=directory, source=spec, git_url=git_url, git_commit=git_commit,
                        _cleanup=cleanup)


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

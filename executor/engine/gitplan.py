"""What a git context clone fetches and checks out, decided from the server's ref listing (pure rules).

kaniko's `pkg/buildcontext/git.go` (osscontainertools/kaniko 1.28; 1.24 differs only in taking refs/pull/ as
a branch and in never passing a depth), with go-git's `Clone`:

* `#<full commit id>`: the default branch is cloned, then the commit is fetched and checked out (detached).
* `#refs/heads/X`: branch X is cloned and checked out.
* `#refs/...` other than heads (a tag, `refs/pull/1/head`, `refs/changes/...`): the default branch is cloned,
  then that ref is fetched under its own name and its commit checked out (detached).
* `#X` (a short name): go-git expands it with git's rev-parse rules (`X`, `refs/X`, `refs/tags/X`,
  `refs/heads/X`, first found). kiln also takes an abbreviated commit id (7+ hex digits) that names no ref.
* `#REF#COMMIT`: REF as above, then COMMIT checked out (detached).
* `--git branch=B` (`getGitReferenceName`): `refs/heads/B`, else `refs/tags/B`, else "invalid branch"; it
  replaces the branch the URL names, but the URL's commit (or non-branch ref) is still what is checked out.
* `--git single-branch=true`: only the cloned branch's tip is asked for; otherwise every `refs/heads/*` tip
  (go-git's `+refs/heads/*:refs/remotes/origin/*`); a tag is cloned without the branches either way (go-git's
  tag refspec). Every tag comes along in all cases: go-git's Clone defaults to `AllTags`
  (`+refs/tags/*:refs/tags/*`), so `git describe --tags` works in a RUN.
* `--git depth=N`: N commits of history for every tip asked for; 0 is the whole history.
"""
from __future__ import annotations

from dataclasses import dataclass

from executor.engine.gitspec import GitSpec, is_full_commit, looks_like_commit
from executor.options import GitOptions

HEADS = "refs/heads/"
TAGS = "refs/tags/"
_LISTED = 8   # names shown in a "not found" message


class GitRefError(ValueError):
    """A ref, branch or commit the context names is not on the server (the message says what is)."""


@dataclass(frozen=True)
class RemoteRefs:
    """The server's ref listing: name -> object id (peeled `^{}` entries left out), and where HEAD points."""

    refs: dict[str, str]
    head: str | None = None      # the symbolic target of HEAD (refs/heads/main), when advertised

    @property
    def branches(self) -> list[str]:
        return sorted(n[len(HEADS):] for n in self.refs if n.startswith(HEADS))

    @property
    def tags(self) -> list[str]:
        return sorted(n[len(TAGS):] for n in self.refs if n.startswith(TAGS))

    def inventory(self) -> str:
        """`branches: main, dev; tags: v1` (the first few of each), for messages."""
        def few(names: list[str]) -> str:
            more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
            return ", ".join(names[:_LISTED]) + more if names else "none"
        return f"branches: {few(self.branches)}; tags: {few(self.tags)}"


@dataclass(frozen=True)
class FetchPlan:
    """What to fetch and check out for a git context's `#ref[#commit]`, decided from the server's refs before
    anything is fetched."""
    clone_ref: str | None        # the ref cloned (refs/heads/X or refs/tags/X); None: the server's HEAD, detached
    fetch_refs: tuple[str, ...]  # remote refs whose tips the first fetch asks for (branches, tags, the ref)
    wants: tuple[str, ...]       # their object ids (deduplicated, in order)
    checkout_ref: str | None     # a non-branch ref whose commit is checked out (fetched under its own name)
    commit: str | None           # a commit id (full or abbreviated) checked out; asked for later if missing
    depth: int | None            # None: the whole history
    notes: tuple[str, ...] = ()  # warnings for the log

    @property
    def branch(self) -> str | None:
        """The branch name the clone is on (refs/heads/X -> X), if it is a branch."""
        return self.clone_ref[len(HEADS):] if self.clone_ref and self.clone_ref.startswith(HEADS) else None

    @property
    def detached(self) -> bool:
        """HEAD is a commit id rather than the cloned branch."""
        return self.branch is None or self.commit is not None or self.checkout_ref is not None

    def describe(self) -> str:
        """`branch main`, `tag v1`, `commit 0123abcd (on branch main)`... for the log."""
        if self.commit:
            what = f"commit {self.commit[:12]}"
        elif self.checkout_ref:
            what = self.checkout_ref
        elif self.clone_ref:
            what = f"branch {self.branch}" if self.branch else f"tag {self.clone_ref[len(TAGS):]}"
        else:
            what = "the default HEAD"
        return what


def plan_fetch(spec: GitSpec, options: GitOptions, remote: RemoteRefs) -> FetchPlan:
    """The fetch and checkout for `spec` under `options` given the server's refs (see the module text)."""
    if options.depth < 0:
        raise GitRefError(f"--git depth={options.depth}: the depth is a number of commits, 0 for the whole history")
    clone: str | None = None
    checkout_ref: str | None = None
    commit: str | None = None
    url_named: str | None = None      # the branch or tag the URL named, if any
    ref = spec.ref
    if ref:
        if is_full_commit(ref):
            commit = ref.lower()
        elif ref.startswith(HEADS):
            if ref not in remote.refs:
                raise GitRefError(f"branch {ref[len(HEADS):]!r} ({ref}) not found; {remote.inventory()}")
            clone = url_named = ref
        elif ref.startswith("refs/"):
            if ref not in remote.refs:
                raise GitRefError(f"ref {ref} not found; {remote.inventory()}")
            checkout_ref = ref
        else:
            found = next((c for c in (ref, f"refs/{ref}", f"{TAGS}{ref}", f"{HEADS}{ref}") if c in remote.refs), None)
            if found is None or found == "HEAD":
                if looks_like_commit(ref):
                    commit = ref.lower()
                else:
                    raise GitRefError(f"{ref!r} is no branch, tag or ref of the repository; {remote.inventory()}")
            elif found.startswith((HEADS, TAGS)):
                clone = url_named = found
            else:
                checkout_ref = found
    if spec.commit:
        commit = spec.commit
    notes: list[str] = []
    if options.branch:
        branch = options.branch
        found = next((c for c in (f"{HEADS}{branch}", f"{TAGS}{branch}") if c in remote.refs), None)
        if found is None:
            raise GitRefError(f"invalid branch {branch!r} (--git branch=): no branch or tag {branch!r}; "
                              f"{remote.inventory()}")
        if url_named and url_named != found:
            notes.append(f"--git branch={branch} replaces {url_named}, named by the context URL")
        clone = found
    if clone is None:
        if remote.head and remote.head in remote.refs:
            clone = remote.head
        elif "HEAD" not in remote.refs:
            if not remote.refs:
                raise GitRefError("the repository is empty: it has no commits to build from")
            raise GitRefError(f"the repository has no HEAD; name a branch with #refs/heads/NAME or --git branch=NAME; "
                              f"{remote.inventory()}")
    head_or_clone = clone or "HEAD"                  # HEAD without a symbolic target: its commit, detached
    if head_or_clone.startswith(TAGS) or options.single_branch:
        fetch_refs = [head_or_clone]
    else:
        fetch_refs = sorted(n for n in remote.refs if n.startswith(HEADS))
        if clone is None:
            fetch_refs.insert(0, "HEAD")
    fetch_refs += [n for n in sorted(remote.refs) if n.startswith(TAGS) and n not in fetch_refs]
    if checkout_ref and checkout_ref not in fetch_refs:
        fetch_refs.append(checkout_ref)
    wants: list[str] = []
    for name in fetch_refs:
        oid = remote.refs[name]
        if oid not in wants:
            wants.append(oid)
    return FetchPlan(clone_ref=clone, fetch_refs=tuple(fetch_refs), wants=tuple(wants), checkout_ref=checkout_ref,
                     commit=commit, depth=options.depth or None, notes=tuple(notes))

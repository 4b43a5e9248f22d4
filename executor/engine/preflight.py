"""What a build checks before it pulls or runs anything: that it will be able to write its image.

kaniko checks the destinations before building (go-containerregistry's CheckPushPermission); a build that
cannot push must not run its RUNs first. Here, in order:

* every `--destination` and the cache repository parse as references (`invalid --destination ...`);
* the push permission of each destination repository (or, with `--no-push`, of the cache repository the
  build will store layers in), unless `--skip-push-permission-check` or `--dryrun`: an upload session is
  opened in the repository (as go-containerregistry's CheckPushPermission does; the registry purges it).
  An unreachable registry, a refused credential or an unknown repository is one line naming the
  destination.
"""
from __future__ import annotations

import logging

from executor.cache import cache_repo_for
from executor.options import Options
from executor.registry import Reference, ReferenceError, RegistryClient, RegistryError, UnreachableError

log = logging.getLogger(__name__)


class PreflightError(Exception):
    """The build would not be able to write its image; nothing was pulled, run or pushed."""


def parse_destinations(opts: Options) -> list[Reference]:
    refs = []
    for destination in opts.destinations:
        try:
            refs.append(Reference.parse(destination))
        except ReferenceError as e:
            raise PreflightError(f"invalid --destination {destination!r}: {_why(e)}") from None
    return refs


def cache_repository(opts: Options) -> str:
    """The registry repository the layer cache stores into ("" when there is none, or it is an OCI layout)."""
    if not opts.cache:
        return ""
    repo = cache_repo_for(opts.cache_repo, list(opts.destinations))
    if not repo or repo.startswith("oci:"):
        return ""
    try:
        Reference.parse(repo)
    except ReferenceError as e:
        raise PreflightError(f"invalid --cache-repo {repo!r}: {_why(e)}") from None
    return repo


def push_targets(opts: Options) -> list[str]:
    """Where the build will push, for the permission check (kaniko's CheckPushPermissions)."""
    if opts.skip_push_permission_check or opts.dryrun:
        return []
    if not opts.no_push:
        return list(opts.destinations)
    if opts.no_push_cache:
        return []
    repo = cache_repository(opts)
    return [repo] if repo else []


def check(opts: Options, client: RegistryClient) -> None:
    """Raise PreflightError unless every destination parses and may be pushed to."""
    parse_destinations(opts)
    cache_repository(opts)
    check_push_permissions(push_targets(opts), client)


def check_push_permissions(targets: list[str], client: RegistryClient) -> None:
    """Raise PreflightError unless each target repository accepts an upload (each repository once)."""
    checked: set[str] = set()
    for target in targets:
        ref = Reference.parse(target)
        repository = f"{ref.registry}/{ref.repository}"
        if repository in checked:
            continue
        log.debug("checking push permission for %s", target)
        try:
            client.check_push_permission(ref)
        except UnreachableError as e:
            raise PreflightError(str(e.for_reference(target))) from None
        except RegistryError as e:
            raise PreflightError(f"cannot push to {target}: {e} (checked before building; "
                                 "--skip-push-permission-check skips the check)") from None
        checked.add(repository)


def _why(error: ReferenceError) -> str:
    text = str(error)
    return text.split(": ", 1)[1] if text.startswith("invalid reference") and ": " in text else text

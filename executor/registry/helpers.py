"""kaniko's built-in credential helpers (`--credential-helpers`), asked after config.json, in the order given.

As the osscontainertools fork's pkg/creds/creds.go builds its keychain: config.json (go-containerregistry's
DefaultKeychain) first, then each named helper; a helper answers only for its registries:
  * env: any registry; KANIKO_<HOST>_USER / KANIKO_<HOST>_PASSWORD, the host upper-cased with '-' as '_' and
    '.' as '_', then each shorter suffix of its labels (pkg/creds/env_keychain.go);
  * google: gcr.io, *.gcr.io, *.pkg.dev, *.google.com (go-containerregistry pkg/v1/google/keychain.go);
    user `oauth2accesstoken` with an access token (executor.cloud.google);
  * ecr: <account>.dkr.ecr[-fips].<region>.<partition domain> and public.ecr.aws (amazon-ecr-credential-helper's
    pattern); GetAuthorizationToken (executor.cloud.aws);
  * acr: *.azurecr.io/.cn/.de/.us and mcr.microsoft.com; an ACR refresh token from /oauth2/exchange, used as
    an identity token (executor.cloud.azure);
  * gitlab: the host of $CI_REGISTRY; $CI_REGISTRY_USER / $CI_REGISTRY_PASSWORD (ePirat/docker-credential-gitlabci).
go-containerregistry turns a helper's error into "anonymous"; kiln does too, and a later 401 or 403 names the
helper's reason in its error line (auth.resolve keeps it in the anonymous credentials' origin).
"""
from __future__ import annotations

import logging
import os
from typing import Callable
from urllib.parse import urlsplit

from executor.cloud import CloudError   # aws, azure, google: imported by the helper that needs them (start-up)

from .auth import Credentials

log = logging.getLogger(__name__)

KNOWN = ("env", "google", "ecr", "acr", "gitlab")


def hostname(host: str) -> str:
    """The name without a port (url.Hostname())."""
    return urlsplit("https://" + host).hostname or host


def is_google(host: str) -> bool:
    name = hostname(host) if host.count(":") == 1 else host
    return name == "gcr.io" or name.endswith((".gcr.io", ".pkg.dev", ".google.com"))


def _env(host: str, verify: bool | str) -> Credentials | None:
    fqdn = host.replace("-", "_").upper().split(".")
    for i in range(len(fqdn)):
        name = "_".join(fqdn[i:])
        user = os.environ.get(f"KANIKO_{name}_USER")
        if user is None:
            continue
        password = os.environ.get(f"KANIKO_{name}_PASSWORD")
        if password is not None:
            return Credentials(user, password, origin=f"$KANIKO_{name}_USER/$KANIKO_{name}_PASSWORD")
    return None


def _google(host: str, verify: bool | str) -> Credentials | None:
    if not is_google(host):
        return None
    from executor.cloud import google

    token = google.access_token()
    return Credentials("oauth2accesstoken", token.value, origin=f"the google helper ({token.source})")


def _ecr(host: str, verify: bool | str) -> Credentials | None:
    from executor.cloud import aws

    if aws.ecr_registry(host) is None:
        return None
    token = aws.ecr_token(host)
    return Credentials(token.username, token.password, origin="the ecr helper (GetAuthorizationToken)")


def _acr(host: str, verify: bool | str) -> Credentials | None:
    from executor.cloud import azure

    if not azure.is_acr(host):
        return None
    refresh, source = azure.acr_refresh_token(host, verify)
    return Credentials(identity_token=refresh, origin=f"the acr helper ({source})")


def _gitlab(host: str, verify: bool | str) -> Credentials | None:
    ci_registry = os.environ.get("CI_REGISTRY")
    if ci_registry is None:
        return None
    env_url = urlsplit(ci_registry if ci_registry.startswith(("https://", "http://")) else "https://" + ci_registry)
    # the server URL go-containerregistry passes is the bare host: https, as the helper assumes
    if env_url.scheme != "https" or (env_url.hostname or "") != hostname(host):
        return None
    user, password = os.environ.get("CI_REGISTRY_USER"), os.environ.get("CI_REGISTRY_PASSWORD")
    if user is None or password is None:
        return None
    return Credentials(user, password, origin="$CI_REGISTRY_USER/$CI_REGISTRY_PASSWORD (the gitlab helper)")


HELPERS: dict[str, Callable[[str, bool | str], Credentials | None]] = {
    "env": _env, "google": _google, "ecr": _ecr, "acr": _acr, "gitlab": _gitlab}


def applies(helper: str, host: str) -> bool:
    """Whether `helper` answers for `host` at all (the routing table)."""
    if helper == "env":
        return True
    if helper == "google":
        return is_google(host)
    if helper == "ecr":
        from executor.cloud import aws

        return aws.ecr_registry(host) is not None
    if helper == "acr":
        from executor.cloud import azure

        return azure.is_acr(host)
    if helper == "gitlab":
        ci = os.environ.get("CI_REGISTRY", "")
        url = urlsplit(ci if ci.startswith(("https://", "http://")) else "https://" + ci)
        return bool(ci) and url.scheme == "https" and url.hostname == hostname(host)
    return False


def resolve(host: str, helpers: list[str], verify: bool | str = True,
            failures: list[str] | None = None) -> Credentials | None:
    """The first credentials a helper in `helpers` yields for `host`; None when none answers. Each helper that
    applied and failed is appended to `failures` ("credential helper ecr failed: ...")."""
    for name in helpers:
        helper = HELPERS.get(name)
        if helper is None:
            log.warning("unknown credential helper %r, skipping (known: %s)", name, ", ".join(KNOWN))
            continue
        try:
            creds = helper(host, verify)
        except CloudError as e:
            # debug, not warning: off the cloud, every anonymous pull of a public gcr.io or public.ecr.aws image
            # comes here; where credentials were needed, the 401's error line carries this reason
            log.debug("credential helper %s for %s: %s", name, host, e)
            if failures is not None:
                failures.append(f"credential helper {name} failed: {e}")
            continue
        if creds is not None:
            log.debug("credentials for %s from %s", host, creds.origin)
            return creds
    return None

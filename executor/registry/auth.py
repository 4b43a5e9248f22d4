"""Credentials: docker config.json (auths, credHelpers, credsStore), credential helpers, GitLab CI.

Search order of config.json: `options.docker_config_dir`, then $DOCKER_CONFIG, /kaniko/.docker and
~/.docker; the first directory that holds a config.json is used (as docker and kaniko read one file).
Within it: a `credHelpers` entry for the registry, else `credsStore`, else the `auths` entry. When
none of those yields anything, the built-in credential helpers named by --credential-helpers are asked
in order (env, google, ecr, acr, gitlab by default: see helpers.py), as the kaniko fork's keychain does.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
from dataclasses import dataclass

from .reference import DOCKER_HUB, DOCKER_HUB_AUTH_KEY, registry_host

log = logging.getLogger(__name__)

KANIKO_DOCKER_DIR = "/kaniko/.docker"


class CredentialError(Exception):
    pass


@dataclass(frozen=True)
class Credentials:
    """What one registry is asked with (config.json, a credential helper, a cloud's token): a user and password or
    a token, and where it came from; its repr shows no secret."""
    username: str = ""
    password: str = ""
    #: an OAuth2 refresh token (docker's `identitytoken`): exchanged at the token endpoint
    identity_token: str = ""
    #: a bearer token to send as is (docker's `registrytoken`)
    registry_token: str = ""
    #: where these came from, for log and error messages (never the secret)
    origin: str = ""

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"Credentials(username={self.username!r}, origin={self.origin!r})"


ANONYMOUS = Credentials(origin="anonymous")


def config_candidates(override: str | None = None) -> list[str]:
    dirs = []
    if override:
        dirs.append(override)
    if os.environ.get("DOCKER_CONFIG"):
        dirs.append(os.environ["DOCKER_CONFIG"])
    dirs.append(KANIKO_DOCKER_DIR)
    dirs.append(os.path.join(os.path.expanduser("~"), ".docker"))
    return [os.path.join(d, "config.json") for d in dirs]


# config.json as read before the build's first RUN (executor.floor): a RUN may remove /kaniko/.docker later,
# and the credentials then come from this copy
_HELD: dict[str, bytes] = {}


def hold_config(override: str | None = None) -> str | None:
    """Read the config.json `find_config` picks into memory now; `find_config` and `load_config` fall back to it
    once the file is gone or unreadable."""
    path = find_config(override)
    if path:
        try:
            with open(path, "rb") as f:
                _HELD[path] = f.read()
        except OSError:
            return None
    return path


def find_config(override: str | None = None) -> str | None:
    for path in config_candidates(override):
        if os.path.isfile(path) or path in _HELD:
            return path
    return None


def load_config(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        if path not in _HELD:
            raise CredentialError(f"cannot read docker config {path}: {e.strerror}") from None
        log.debug("docker config %s: %s; using the copy read before the first RUN", path, e.strerror)
        data = _HELD[path]
    if not data.strip():
        return {}
    try:
        cfg = json.loads(data)
    except ValueError as e:
        raise CredentialError(f"docker config {path} is not valid JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise CredentialError(f"docker config {path} is not a JSON object")
    return cfg


def _auth_keys(registry: str) -> set[str]:
    host = registry_host(registry)
    if host == DOCKER_HUB:
        return {DOCKER_HUB, "index.docker.io", DOCKER_HUB_AUTH_KEY, "registry-1.docker.io",
                "https://index.docker.io/v1", "https://registry-1.docker.io"}
    return {host}


def _matches(key: str, registry: str) -> bool:
    return registry_host(key) in {registry_host(k) for k in _auth_keys(registry)} or key in _auth_keys(registry)


def _from_auths(cfg: dict, registry: str, path: str) -> Credentials | None:
    auths = cfg.get("auths") or {}
    if not isinstance(auths, dict):
        raise CredentialError(f"docker config {path}: 'auths' is not an object")
    # exact key first, then any key that normalises to the same host (https://host/v1/ etc.)
    keys = [k for k in auths if k in _auth_keys(registry)] + [k for k in auths if _matches(k, registry)]
    for key in keys:
        entry = auths[key] or {}
        username, password = entry.get("username", "") or "", entry.get("password", "") or ""
        if entry.get("auth"):
            try:
                decoded = base64.b64decode(entry["auth"], validate=False).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise CredentialError(f"docker config {path}: auths[{key!r}].auth is not base64 of "
                                      "'username:password'") from None
            if ":" not in decoded:
                raise CredentialError(f"docker config {path}: auths[{key!r}].auth does not decode to "
                                      "'username:password'")
            username, password = decoded.split(":", 1)
        creds = Credentials(username, password, entry.get("identitytoken", "") or "",
                            entry.get("registrytoken", "") or "", origin=f"{path} auths[{key!r}]")
        if not creds.anonymous:
            return creds
    return None


def run_helper(helper: str, server: str) -> Credentials | None:
    """`docker-credential-<helper> get` with the server URL on stdin; None when it has nothing."""
    program = f"docker-credential-{helper}"
    try:
        proc = subprocess.run([program, "get"], input=server.encode(), capture_output=True, timeout=60)
    except FileNotFoundError:
        raise CredentialError(f"credential helper {program} is not on PATH (named in docker config for "
                              f"{server})") from None
    except subprocess.TimeoutExpired:
        raise CredentialError(f"credential helper {program} did not answer within 60s for {server}") from None
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        if "credentials not found" in out.lower() or "credentials not found" in proc.stderr.decode(errors="replace").lower():
            return None
        raise CredentialError(f"credential helper {program} failed for {server} (exit {proc.returncode}): "
                              f"{(out or proc.stderr.decode(errors='replace')).strip()[:300]}")
    try:
        data = json.loads(out)
    except ValueError:
        raise CredentialError(f"credential helper {program} answered for {server} with something that is not "
                              "JSON") from None
    username, secret = data.get("Username", "") or "", data.get("Secret", "") or ""
    if not username and not secret:
        return None
    if username == "<token>":
        return Credentials(identity_token=secret, origin=program)
    return Credentials(username, secret, origin=program)


def _helper_server(registry: str) -> str:
    return DOCKER_HUB_AUTH_KEY if registry_host(registry) == DOCKER_HUB else registry_host(registry)


#: kaniko's default --credential-helpers ("all of them")
DEFAULT_HELPERS: tuple[str, ...] = ("env", "google", "ecr", "acr", "gitlab")


def resolve(registry: str, docker_config_dir: str | None = None,
            helpers: list[str] | tuple[str, ...] = DEFAULT_HELPERS, verify: bool | str = True) -> Credentials:
    """The credentials for `registry` (a host[:port] or docker.io); ANONYMOUS when there are none.

    config.json first; a registry it has an entry for never reaches a helper. `verify` is the registry's TLS
    setting (ACR's token exchange is a request to the registry itself)."""
    host = registry_host(registry)
    path = find_config(docker_config_dir)
    if path:
        cfg = load_config(path)
        cred_helpers = cfg.get("credHelpers") or {}
        helper = next((h for k, h in cred_helpers.items() if _matches(k, host)), None)
        if helper:
            creds = run_helper(helper, _helper_server(host))
            if creds:
                log.debug("credentials for %s from %s (credHelpers in %s)", host, creds.origin, path)
                return creds
        elif cfg.get("credsStore"):
            creds = run_helper(cfg["credsStore"], _helper_server(host))
            if creds:
                log.debug("credentials for %s from %s (credsStore in %s)", host, creds.origin, path)
                return creds
        creds = _from_auths(cfg, host, path)
        if creds:
            log.debug("credentials for %s from %s", host, creds.origin)
            return creds
    if helpers:
        from .helpers import resolve as from_helpers

        failures: list[str] = []
        creds = from_helpers("index.docker.io" if host == DOCKER_HUB else host, list(helpers), verify, failures)
        if creds:
            return creds
        if failures:     # said again where a 401 is reported: the reason there are no credentials
            return Credentials(origin="anonymous; " + "; ".join(failures))
    return ANONYMOUS


def login_config_path(env: dict[str, str] | None = None) -> str:
    """Where `executor login` writes: $DOCKER_CONFIG/config.json, else ~/.docker/config.json (the docker CLI's,
    and the fork's `executor login`; kiln's executor image sets DOCKER_CONFIG=/kaniko/.docker/)."""
    env = os.environ if env is None else env
    directory = env.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(directory, "config.json")


def store_credentials(registry: str, username: str, password: str, path: str) -> str:
    """Save `username`/`password` for `registry` in the docker config at `path` (created 0600 if missing), or
    in the credential helper it names for that registry (credHelpers, then credsStore), as `docker login`
    does. Docker Hub is stored under https://index.docker.io/v1/. Returns where they went."""
    host = registry_host(registry)
    server = _helper_server(host)
    cfg = load_config(path) if os.path.exists(path) else {}
    helper = next((h for k, h in (cfg.get("credHelpers") or {}).items() if _matches(k, host)), None) \
        or cfg.get("credsStore")
    if helper:
        program = f"docker-credential-{helper}"
        payload = json.dumps({"ServerURL": server, "Username": username, "Secret": password}).encode()
        try:
            proc = subprocess.run([program, "store"], input=payload, capture_output=True, timeout=60)
        except FileNotFoundError:
            raise CredentialError(f"credential helper {program} is not on PATH (named in docker config {path} "
                                  f"for {server})") from None
        if proc.returncode != 0:
            raise CredentialError(f"credential helper {program} could not store credentials for {server} "
                                  f"(exit {proc.returncode}): {proc.stderr.decode(errors='replace').strip()[:300]}")
        return program
    auths = cfg.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise CredentialError(f"docker config {path}: 'auths' is not an object")
    for key in [k for k in auths if _matches(k, host)]:
        del auths[key]          # one entry per registry, as docker login leaves it
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    auths[server] = {"auth": token}
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.kiln-{os.getpid()}"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return path


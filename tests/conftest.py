"""Session fixtures of the test rig (see tests/rig/README.md). Everything starts lazily."""
from __future__ import annotations

import logging
import os
import tempfile

import pytest

from tests.rig.gitserver import GitServer, GitUsers, start_git_server
from tests.rig.images import BaseImages, make_base_images, push_debian
from tests.rig.registry import Registry, RunningRegistry, start_registry
from tests.rig.tls import TestPKI, make_pki

log = logging.getLogger("kiln.rig")


@pytest.fixture(scope="session")
def rig_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A session-wide scratch directory of the rig (registries' storage, logs, certificates)."""
    return str(tmp_path_factory.mktemp("rig"))


@pytest.fixture(scope="session")
def test_pki(rig_dir: str) -> TestPKI:
    """The session's CA, TLS server certificate (127.0.0.1) and token-signing certificate."""
    return make_pki(os.path.join(rig_dir, "pki"))


def _registry(flavour: str, rig_dir: str, request: pytest.FixtureRequest) -> Registry:
    pki = request.getfixturevalue("test_pki") if flavour != "plain" else None
    running: RunningRegistry = start_registry(flavour, os.path.join(rig_dir, f"registry-{flavour}"), pki)
    request.addfinalizer(running.stop)
    return running.registry


@pytest.fixture(scope="session")
def plain_registry(rig_dir: str, request: pytest.FixtureRequest) -> Registry:
    """HTTP registry without auth."""
    return _registry("plain", rig_dir, request)


@pytest.fixture(scope="session")
def basic_registry(rig_dir: str, request: pytest.FixtureRequest) -> Registry:
    """HTTPS registry (session CA) with htpasswd basic auth."""
    return _registry("basic", rig_dir, request)


@pytest.fixture(scope="session")
def token_registry(rig_dir: str, request: pytest.FixtureRequest) -> Registry:
    """HTTPS registry with bearer tokens from our token server (anonymous pull except private/)."""
    return _registry("token", rig_dir, request)


@pytest.fixture(scope="session")
def registries(plain_registry: Registry, basic_registry: Registry,
               token_registry: Registry) -> dict[str, Registry]:
    """The three flavours by name: {"plain": ..., "basic": ..., "token": ...}."""
    return {"plain": plain_registry, "basic": basic_registry, "token": token_registry}


@pytest.fixture
def make_registry(rig_dir: str, request: pytest.FixtureRequest):
    """Factory for private registries, stopped when the test ends:
    ``make_registry("token", token_expires_in=2)`` -> Registry (own storage, logs and token server)."""
    started: list[RunningRegistry] = []

    def make(flavour: str, **kwargs) -> Registry:
        pki = request.getfixturevalue("test_pki") if flavour != "plain" else None
        workdir = tempfile.mkdtemp(prefix=f"registry-{flavour}-", dir=rig_dir)
        running = start_registry(flavour, workdir, pki, **kwargs)
        started.append(running)
        return running.registry

    yield make
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def base_images(plain_registry: Registry, rig_dir: str) -> BaseImages:
    """busybox (index amd64 + arm64/v8, Docker v2s2, zstd) and broken images on the plain registry."""
    return make_base_images(plain_registry, os.path.join(rig_dir, "images"))


@pytest.fixture(scope="session")
def debian_base(plain_registry: Registry, rig_dir: str) -> str:
    """ "HOST/base/debian:bookworm": mmdebstrap minbase via umoci (cached in /var/cache/kiln-tests)."""
    return push_debian(plain_registry, os.path.join(rig_dir, "debian"))


@pytest.fixture(scope="session")
def git_users() -> GitUsers:
    """The credentials the rig's git servers take for `private/...` repositories (random per session)."""
    return GitUsers.random()


@pytest.fixture(scope="session")
def git_server(rig_dir: str, git_users: GitUsers, request: pytest.FixtureRequest) -> GitServer:
    """`git http-backend` over HTTP on 127.0.0.1; `private/...` repositories need `git_users`' credentials."""
    server = start_git_server(os.path.join(rig_dir, "git-http"), users=git_users.as_users())
    request.addfinalizer(server.stop)
    return server


@pytest.fixture(scope="session")
def git_server_tls(rig_dir: str, git_users: GitUsers, test_pki: TestPKI, request: pytest.FixtureRequest) -> GitServer:
    """The same over HTTPS, with the rig's certificate (signed by the session CA, which clients do not trust)."""
    server = start_git_server(os.path.join(rig_dir, "git-https"), users=git_users.as_users(), pki=test_pki)
    request.addfinalizer(server.stop)
    return server

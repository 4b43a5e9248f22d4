import pytest

from executor.registry import RegistryClient, RegistryOptions


def options_for(registry, **kw) -> RegistryOptions:
    """Options that reach a rig registry: its CA, its config.json, quick backoff."""
    certs = {registry.host: registry.ca_path} if registry.ca_path else {}
    kw.setdefault("docker_config_dir", registry.docker_config_dir)
    return RegistryOptions(registry_certificates=certs, retry_backoff=0.05, **kw)


@pytest.fixture
def client_for(tmp_path):
    def make(registry, **kw) -> RegistryClient:
        return RegistryClient(options_for(registry, **kw), blob_dir=str(tmp_path / "blobs"))
    return make


@pytest.fixture
def no_ambient_credentials(monkeypatch, tmp_path):
    """Only the config dir a test names counts: no $DOCKER_CONFIG, ~/.docker or GitLab variables."""
    for k in ("DOCKER_CONFIG", "CI_REGISTRY", "CI_REGISTRY_USER", "CI_REGISTRY_PASSWORD"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    empty = tmp_path / "empty-docker-config"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    return str(empty)

"""kaniko's /kaniko/ssl/certs/additional-ca-cert-bundle.crt: trusted besides the system CAs."""
from __future__ import annotations

import shutil

import pytest

from executor.registry import RegistryClient, RegistryOptions
from executor.registry.errors import RegistryError


def test_additional_bundle_is_trusted_with_the_system_cas(token_registry, base_images, tmp_path):
    ref = base_images.copy_image(base_images.busybox_index, token_registry, "public/busybox:ca")
    without = RegistryClient(RegistryOptions(transport_retries=0), blob_dir=str(tmp_path / "b1"))
    with pytest.raises(RegistryError) as err:
        without.get_manifest(ref)
    assert str(err.value) == (f"ping {token_registry.host}/public/busybox: https: TLS: unable to get local issuer "
                              "certificate; use --registry-certificate host=ca.pem, or --skip-tls-verify*")
    bundle = tmp_path / "ssl" / "certs" / "additional-ca-cert-bundle.crt"
    bundle.parent.mkdir(parents=True)
    shutil.copy(token_registry.ca_path, bundle)
    options = RegistryOptions(additional_ca_bundle=str(bundle))
    combined = options.verify_tls(token_registry.host, push=False)
    text = open(combined).read()
    assert open(token_registry.ca_path).read().strip() in text
    assert text.count("BEGIN CERTIFICATE") > 10, "the system CAs are still there"
    data, _, digest = RegistryClient(options, blob_dir=str(tmp_path / "b2")).get_manifest(ref)
    assert digest.startswith("sha256:") and data

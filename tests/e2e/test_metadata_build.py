"""Issue 2's first end-to-end path: FROM a base plus metadata-only instructions, to every sink."""
from __future__ import annotations

import json
import os

import pytest

from tests.e2e.conftest import skopeo_tags
from tests.rig.judge import judge_docker_tar, judge_oci_layout, judge_registry_image

DOCKERFILE = """\
FROM {base}
ENV APP_ENV=production PATH=/app/bin:$PATH
LABEL org.opencontainers.image.title="kiln e2e" maintainer=kiln
CMD ["/bin/sh", "-c", "echo hi"]
ENTRYPOINT ["/bin/busybox"]
EXPOSE 8080 53/udp
STOPSIGNAL SIGINT
"""


def _check_config(config: dict, base_layers: int, base_history: int) -> None:
    c = config["config"]
    assert "APP_ENV=production" in c["Env"]
    assert any(e.startswith("PATH=/app/bin:/usr/local/sbin") or e.startswith("PATH=/app/bin:") for e in c["Env"])
    assert c["Labels"] == {"org.opencontainers.image.title": "kiln e2e", "maintainer": "kiln"}
    assert c["Entrypoint"] == ["/bin/busybox"]
    assert c["Cmd"] == ["/bin/sh", "-c", "echo hi"], "CMD set in this stage survives a later ENTRYPOINT"
    assert c["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert c["StopSignal"] == "SIGINT"
    history = config["history"]
    new = history[base_history:]
    assert [h.get("empty_layer", False) for h in new] == [True] * 6
    assert [h["created_by"].split()[0] for h in new] == ["ENV", "LABEL", "CMD", "ENTRYPOINT", "EXPOSE", "STOPSIGNAL"]
    assert len(config["rootfs"]["diff_ids"]) == base_layers


def test_metadata_only_build_to_every_flavour_tar_and_layout(kiln, base_images, registries, tmp_path):
    base = judge_registry_image(registries["plain"], base_images.busybox_index, unpack=False)
    ctx = kiln.context({"Dockerfile": DOCKERFILE.format(base=base_images.busybox_index)})
    # CMD before ENTRYPOINT: CMD was set in this stage, so it stays; checked separately below.
    tar_path, layout = str(tmp_path / "image.tar"), str(tmp_path / "layout")
    dests = []
    for name, registry in registries.items():
        dests += ["--destination", registry.ref(f"e2e/meta-{name}:v1")]
    ca_args = []
    for name in ("basic", "token"):
        ca_args += ["--registry-certificate", f"{registries[name].host}={registries[name].ca_path}"]
    docker_config = str(tmp_path / "docker")
    os.makedirs(docker_config)
    auths = {}
    for name in ("basic", "token"):
        with open(os.path.join(registries[name].docker_config_dir, "config.json")) as f:
            auths.update(json.load(f)["auths"])
    with open(os.path.join(docker_config, "config.json"), "w") as f:
        json.dump({"auths": auths}, f)
    run = kiln.build(ctx, *dests, *ca_args, "--insecure-registry", registries["plain"].host,
                     "--tar-path", tar_path, "--oci-layout-path", layout, "--digest-file", str(tmp_path / "digest"),
                     docker_config=docker_config).check()
    digest = open(tmp_path / "digest").read()
    assert digest.startswith("sha256:") and len(digest) == 71 and not digest.endswith("\n")
    for name, registry in registries.items():
        report = judge_registry_image(registry, registry.ref(f"e2e/meta-{name}:v1"))
        assert report.manifest_digest == digest
        assert [l.digest for l in report.layers] == [l.digest for l in base.layers], "base layers reused as they are"
        _check_config(report.config, len(base.layers), len(base.config.get("history", [])))
    tar_report = judge_docker_tar(tar_path)
    assert sorted(tar_report.repo_tags) == sorted(r.ref(f"e2e/meta-{n}:v1") for n, r in registries.items())
    layout_report = judge_oci_layout(layout)
    assert layout_report.manifest_digest == digest
    # The base lives in another repository of the plain registry: its layers are mounted, not uploaded.
    log = registries["plain"].read_log().replace("%3A", ":")
    for layer in base.layers:
        assert f"POST /v2/e2e/meta-plain/blobs/uploads/?mount={layer.digest}&from=base/busybox" in log, \
            f"no cross-repo mount of {layer.digest} in the registry log"


def test_entrypoint_clears_inherited_cmd(kiln, base_images, plain_registry):
    ctx = kiln.context({"Dockerfile": f"FROM {base_images.busybox_index}\nENTRYPOINT [\"/bin/busybox\"]\n"})
    ref = plain_registry.ref("e2e/entry:v1")
    kiln.build(ctx, "--destination", ref, "--insecure-registry", plain_registry.host).check()
    config = judge_registry_image(plain_registry, ref, unpack=False).config["config"]
    assert config["Entrypoint"] == ["/bin/busybox"] and config.get("Cmd") is None


def test_token_registry_without_credentials_fails_and_leaves_no_tag(kiln, base_images, token_registry, tmp_path):
    ctx = kiln.context({"Dockerfile": f"FROM {base_images.busybox_index}\nLABEL a=b\n"})
    empty = tmp_path / "nocreds"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    run = kiln.build(ctx, "--destination", token_registry.ref("e2e/denied:v1"), "--registry-certificate",
                     f"{token_registry.host}={token_registry.ca_path}", "--insecure-registry",
                     base_images.busybox_index.split("/")[0], docker_config=str(empty))
    run.refused(f"upload POST {token_registry.host}/e2e/denied: POST /v2/e2e/denied/blobs/uploads/ denied (anonymous): "
                "UNAUTHORIZED: authentication required (HTTP 401)")
    assert skopeo_tags(token_registry, "e2e/denied") == []

"""Issue 13's first "Done when": a build FROM the rig's debian image that installs `hello` with apt and a small
wheel with pip, with `--sbom --provenance=mode=max`, pushes an index whose attestation manifest skopeo reads back;
the SBOM validates as SPDX 2.3 (spdx-tools) and lists base-files, hello and the wheel with versions and PURLs; the
provenance names the debian base's manifest digest and the Dockerfile; the statements' subject is the image
manifest digest. The same build writes an OCI layout and a docker tarball holding the same index, and the metadata
file's containerimage.digest is the digest file's.

Without the flags nothing changes: the push is the image manifest alone (tested in test_plain_build_pushes_no_index).
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import tarfile
import zipfile
from urllib.parse import unquote

import pytest

from tests.attest_helpers import spdx_errors

pytestmark = pytest.mark.slow

WHEEL_NAME = "kilntestpkg"
WHEEL_VERSION = "1.2.3"

DOCKERFILE = """\
ARG DEBIAN
FROM ${DEBIAN}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
        hello python3-pip && rm -rf /var/lib/apt/lists/*
COPY kilntestpkg-1.2.3-py3-none-any.whl /tmp/
RUN pip install --no-index --no-deps --break-system-packages /tmp/kilntestpkg-1.2.3-py3-none-any.whl \\
    && rm /tmp/kilntestpkg-1.2.3-py3-none-any.whl
LABEL org.example.purpose=attestations
"""


def make_wheel() -> bytes:
    """A small pure-Python wheel, as the wheel spec (PEP 427) lays it out: the module, the dist-info's METADATA,
    WHEEL and RECORD (each file's urlsafe-base64 sha256 and size; RECORD itself without)."""
    dist = f"{WHEEL_NAME}-{WHEEL_VERSION}.dist-info"
    files = {
        f"{WHEEL_NAME}/__init__.py": b'GREETING = "hello from a wheel"\n',
        f"{dist}/METADATA": (f"Metadata-Version: 2.1\nName: {WHEEL_NAME}\nVersion: {WHEEL_VERSION}\n"
                             "Summary: kiln's SBOM test wheel\nAuthor: Kiln Tests\nAuthor-email: tests@kiln.invalid\n"
                             "License: MIT\nClassifier: License :: OSI Approved :: MIT License\n").encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: kiln-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/top_level.txt": f"{WHEEL_NAME}\n".encode(),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


def skopeo_raw(ref: str, registry) -> bytes:
    proc = subprocess.run(["skopeo", "inspect", "--raw", *registry.skopeo_args(""), f"docker://{ref}"],
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def skopeo_dir(source: str, dest: str, *args: str) -> dict[str, bytes]:
    """`skopeo copy SOURCE dir:DEST`: byte-exact blobs; -> {digest: bytes} of every file it wrote."""
    proc = subprocess.run(["skopeo", "copy", "--quiet", *args, source, f"dir:{dest}"], capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    blobs = {}
    for name in os.listdir(dest):
        with open(os.path.join(dest, name), "rb") as f:
            blobs[name] = f.read()
    return blobs


def read_statements(manifest: dict, blobs: dict[str, bytes]) -> dict[str, dict]:
    """predicate type -> statement, each layer's bytes checked against its descriptor."""
    out = {}
    for layer in manifest["layers"]:
        assert layer["mediaType"] == "application/vnd.in-toto+json"
        data = blobs[layer["digest"].split(":", 1)[1]]
        assert "sha256:" + hashlib.sha256(data).hexdigest() == layer["digest"] and len(data) == layer["size"]
        statement = json.loads(data)
        assert statement["predicateType"] == layer["annotations"]["in-toto.io/predicate-type"]
        out[statement["predicateType"]] = statement
    return out


@pytest.fixture(scope="module")
def attested_build(kiln, plain_registry, debian_base, tmp_path_factory):
    ctx = kiln.context({"Dockerfile": DOCKERFILE, f"{WHEEL_NAME}-{WHEEL_VERSION}-py3-none-any.whl": make_wheel()})
    out = str(tmp_path_factory.mktemp("attest-out"))
    dest = plain_registry.ref("attest/app:1")
    run = kiln.build(
        ctx, "--destination", dest, "--insecure-registry", plain_registry.host, "--build-arg", f"DEBIAN={debian_base}",
        "--build-arg", "API_TOKEN=s3cr3t-value", "--sbom", "--provenance=mode=max",
        "--oci-layout-path", os.path.join(out, "layout"), "--tar-path", os.path.join(out, "image.tar"),
        "--digest-file", os.path.join(out, "digest"), "--metadata-file", os.path.join(out, "metadata.json"),
        "--progress", "plain", timeout=900)
    run.check()
    return {"run": run, "dest": dest, "out": out, "ctx": ctx}


def test_the_pushed_index_holds_the_image_and_its_attestation_manifest(attested_build, plain_registry, debian_base,
                                                                        tmp_path):
    dest = attested_build["dest"]
    raw = skopeo_raw(dest, plain_registry)
    index = json.loads(raw)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    image_desc, att_desc = index["manifests"]
    assert image_desc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert image_desc["platform"]["os"] == "linux"
    assert att_desc["platform"] == {"architecture": "unknown", "os": "unknown"}
    assert att_desc["annotations"] == {"vnd.docker.reference.digest": image_desc["digest"],
                                       "vnd.docker.reference.type": "attestation-manifest"}
    repo = dest.rsplit(":", 1)[0]
    blobs = skopeo_dir(f"docker://{repo}@{att_desc['digest']}", str(tmp_path / "att"),
                       *plain_registry.skopeo_args("src"))
    manifest = json.loads(blobs["manifest.json"])
    assert "sha256:" + hashlib.sha256(blobs["manifest.json"]).hexdigest() == att_desc["digest"]
    statements = read_statements(manifest, blobs)
    assert set(statements) == {"https://spdx.dev/Document", "https://slsa.dev/provenance/v1"}
    for statement in statements.values():
        assert statement["_type"] == "https://in-toto.io/Statement/v1"
        assert [s["digest"] for s in statement["subject"]] == [{"sha256": image_desc["digest"].split(":")[1]}]
        assert statement["subject"][0]["name"] == \
            f"pkg:docker/{repo}@1?platform=linux%2Famd64"

    sbom = statements["https://spdx.dev/Document"]["predicate"]
    assert spdx_errors(sbom) == []
    packages = {p["name"]: p for p in sbom["packages"]}
    purls = {p["name"]: [r["referenceLocator"] for r in p.get("externalRefs", [])] for p in sbom["packages"]}
    for name in ("base-files", "hello"):
        assert packages[name]["versionInfo"]
        assert [unquote(p) for p in purls[name]] == \
            [f"pkg:deb/debian/{name}@{packages[name]['versionInfo']}?arch=amd64&distro=debian-12"]
    assert packages["hello"]["licenseDeclared"].startswith("GPL-3.0")
    assert packages[WHEEL_NAME]["versionInfo"] == WHEEL_VERSION
    assert purls[WHEEL_NAME] == [f"pkg:pypi/{WHEEL_NAME}@{WHEEL_VERSION}"]
    assert packages[WHEEL_NAME]["licenseDeclared"] == "MIT"
    assert "pip" in packages                          # python3-pip's own dist-info, as Debian installs it
    files = {f["SPDXID"]: f for f in sbom["files"]}
    owned = {files[r["relatedSpdxElement"]]["fileName"] for r in sbom["relationships"]
             if r["spdxElementId"] == packages["hello"]["SPDXID"] and r["relationshipType"] == "CONTAINS"}
    assert "./usr/bin/hello" in owned
    hello_file = next(f for f in sbom["files"] if f["fileName"] == "./usr/bin/hello")
    image_manifest = json.loads(skopeo_raw(f"{repo}@{image_desc['digest']}", plain_registry))
    layer_digests = [l["digest"] for l in image_manifest["layers"]]
    assert hello_file["comment"] == f"layerID: {layer_digests[1]}"   # the apt-get RUN's layer
    wheel_module = next(f for f in sbom["files"] if f["fileName"].endswith(f"/{WHEEL_NAME}/__init__.py"))
    assert wheel_module["comment"] == f"layerID: {layer_digests[-1]}"

    provenance = statements["https://slsa.dev/provenance/v1"]["predicate"]
    base_digest = "sha256:" + hashlib.sha256(skopeo_raw(debian_base, plain_registry)).hexdigest()
    base_repo, base_tag = debian_base.rsplit(":", 1)
    deps = provenance["buildDefinition"]["resolvedDependencies"]
    assert {"uri": f"pkg:docker/{base_repo}@{base_tag}?platform=linux%2Famd64",
            "digest": {"sha256": base_digest.split(":")[1]}} in deps
    config_source = provenance["buildDefinition"]["externalParameters"]["configSource"]
    assert config_source == {"digest": {"sha256": hashlib.sha256(DOCKERFILE.encode()).hexdigest()},
                             "path": "Dockerfile"}
    request = provenance["buildDefinition"]["externalParameters"]["request"]
    assert request["args"]["build-arg:DEBIAN"] == debian_base
    assert "build-arg:API_TOKEN" not in request["args"]            # secret-looking: omitted
    assert "s3cr3t-value" not in json.dumps(statements)
    assert provenance["buildDefinition"]["buildType"] == \
        "https://github.com/moby/buildkit/blob/master/docs/attestations/slsa-definitions.md"
    metadata = provenance["runDetails"]["metadata"]
    assert metadata["startedOn"] <= metadata["finishedOn"]
    steps = provenance["buildDefinition"]["internalParameters"]["buildConfig"]["steps"]
    assert [s["instruction"].split()[0] for s in steps] == ["RUN", "COPY", "RUN", "LABEL"]
    layers = metadata["buildkit_metadata"]["layers"]
    assert [d["digest"] for d in layers["step3:0"][0]] == layer_digests
    assert base64.b64decode(metadata["buildkit_metadata"]["source"]["infos"][0]["data"]).decode() == DOCKERFILE


def test_layout_and_tarball_hold_the_same_index(attested_build, plain_registry, tmp_path):
    out = attested_build["out"]
    index_digest = "sha256:" + hashlib.sha256(skopeo_raw(attested_build["dest"], plain_registry)).hexdigest()
    layout = os.path.join(out, "layout")
    with open(os.path.join(layout, "index.json")) as f:
        top = json.load(f)
    assert [(m["mediaType"], m["digest"]) for m in top["manifests"]] == \
        [("application/vnd.oci.image.index.v1+json", index_digest)]
    # skopeo reads the attestation manifest from the layout (by the entry's ref name)
    name = top["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{layout}:{name}"], capture_output=True, timeout=60)
    assert raw.returncode == 0, raw.stderr.decode()
    assert hashlib.sha256(raw.stdout).hexdigest() == index_digest.split(":")[1]
    att = json.loads(raw.stdout)["manifests"][1]
    with open(os.path.join(layout, "blobs", "sha256", att["digest"].split(":")[1]), "rb") as f:
        manifest = json.load(f)
    blobs = {}
    for layer in manifest["layers"]:
        with open(os.path.join(layout, "blobs", "sha256", layer["digest"].split(":")[1]), "rb") as f:
            blobs[layer["digest"].split(":")[1]] = f.read()
    assert set(read_statements(manifest, blobs)) == {"https://spdx.dev/Document", "https://slsa.dev/provenance/v1"}
    # the docker tarball: docker load's manifest.json and the same index as an OCI layout
    with tarfile.open(os.path.join(out, "image.tar")) as tar:
        names = tar.getnames()
        top_tar = json.load(tar.extractfile("index.json"))
        docker = json.load(tar.extractfile("manifest.json"))
        assert top_tar["manifests"][0]["digest"] == index_digest
        assert f"blobs/sha256/{index_digest.split(':')[1]}" in names
        assert docker[0]["RepoTags"] == [attested_build["dest"]]
        assert all(layer in names for layer in docker[0]["Layers"]) and docker[0]["Config"] in names
    from executor.sinks import read_tarball
    image = read_tarball(os.path.join(out, "image.tar"), work_dir=str(tmp_path / "tar"))
    assert len(image.layers) == len(docker[0]["Layers"])


def test_metadata_file_digest_is_the_digest_files(attested_build, plain_registry):
    out = attested_build["out"]
    with open(os.path.join(out, "digest")) as f:
        digest = f.read()
    with open(os.path.join(out, "metadata.json")) as f:
        metadata = json.load(f)
    index_digest = "sha256:" + hashlib.sha256(skopeo_raw(attested_build["dest"], plain_registry)).hexdigest()
    assert metadata["containerimage.digest"] == digest == index_digest
    assert metadata["containerimage.descriptor"]["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert metadata["containerimage.descriptor"]["digest"] == digest
    assert metadata["image.name"] == attested_build["dest"]
    assert "containerimage.config.digest" not in metadata     # an index has no one config (as BuildKit)
    report = metadata["kiln.build"]
    assert [s["instruction"].split()[0] for s in report["steps"]] == ["RUN", "COPY", "RUN", "LABEL"]
    assert all(s["seconds"] >= 0 and s["cache"] == "none" for s in report["steps"])
    assert report["steps"][0]["layer"]["size"] > 100_000 and report["steps"][3]["layer"] is None
    push = report["pushes"]
    assert [p["repository"] for p in push] == [attested_build["dest"].rsplit(":", 1)[0]]
    assert len(push[0]["manifests"]) == 2                  # the image manifest and the attestation manifest
    assert sum(p["bytes"]["uploaded"] for p in push) > report["steps"][0]["layer"]["size"]


def test_plain_progress_has_one_line_per_step_with_its_duration(attested_build):
    stderr = attested_build["run"].stderr
    lines = [l for l in stderr.splitlines() if l.startswith("#") and ": done in " in l]
    assert [l.split(" ", 2)[1] for l in lines] == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    assert lines[0].startswith("#1 [1/4] RUN apt-get update") and " cache miss" not in lines[0]
    assert "image sha256:" in stderr


def test_plain_build_pushes_no_index(kiln, plain_registry, base_images, tmp_path):
    """Without --sbom and --provenance the output is what it always was: the tag names the image manifest, and
    the metadata file gives its config digest (as buildx for a single manifest)."""
    ctx = kiln.context({"Dockerfile": f"FROM {base_images.busybox_amd64}\nRUN echo hi > /hi\n"})
    dest = plain_registry.ref("attest/plain:1")
    meta, digest_file = str(tmp_path / "m.json"), str(tmp_path / "digest")
    kiln.build(ctx, "--destination", dest, "--insecure-registry", plain_registry.host, "--metadata-file", meta,
               "--digest-file", digest_file).check()
    raw = skopeo_raw(dest, plain_registry)
    manifest = json.loads(raw)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json" and "manifests" not in manifest
    with open(meta) as f:
        metadata = json.load(f)
    with open(digest_file) as f:
        digest = f.read()
    assert metadata["containerimage.digest"] == digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert metadata["containerimage.config.digest"] == manifest["config"]["digest"]
    assert metadata["containerimage.descriptor"] == {"mediaType": manifest["mediaType"], "digest": digest,
                                                     "size": len(raw),
                                                     "platform": {"architecture": "amd64", "os": "linux"}}


def test_provenance_names_images_copied_from_with_json_progress(kiln, plain_registry, base_images, tmp_path):
    """mode=min, SLSA v0.2, an OCI layout without a destination (the subject is BuildKit's "_"), an image that
    COPY --from reads besides the base; --progress=json: every line of stderr is a JSON object."""
    other = base_images.busybox_index
    ctx = kiln.context({"Dockerfile": f"FROM {base_images.busybox_amd64}\n"
                                      f"COPY --from={other} /bin/busybox /opt/busybox\nRUN /opt/busybox true\n"})
    layout = str(tmp_path / "layout")
    run = kiln.build(ctx, "--no-push", "--oci-layout-path", layout, "--insecure-registry", plain_registry.host,
                     "--provenance=mode=min,version=v0.2", "--build-arg", "VERSION=7", "--progress", "json").check()
    events = [json.loads(line) for line in run.stderr.splitlines() if line.strip()]
    assert [e["event"] for e in events if e.get("event", "").startswith("step.")] == \
        ["step.start", "step.end", "step.start", "step.end"]
    assert any(e.get("msg", "").startswith("Retrieving image") for e in events)      # the log lines, as JSON
    assert events[-1]["event"] == "summary" and len(events[-1]["steps"]) == 2
    with open(os.path.join(layout, "index.json")) as f:
        top = json.load(f)
    index = json.loads(open(os.path.join(layout, "blobs/sha256", top["manifests"][0]["digest"][7:]), "rb").read())
    att = json.loads(open(os.path.join(layout, "blobs/sha256", index["manifests"][1]["digest"][7:]), "rb").read())
    (layer,) = att["layers"]
    statement = json.loads(open(os.path.join(layout, "blobs/sha256", layer["digest"][7:]), "rb").read())
    assert statement["predicateType"] == "https://slsa.dev/provenance/v0.2"
    assert statement["subject"] == [{"name": "_", "digest": {"sha256": index["manifests"][0]["digest"][7:]}}]
    predicate = statement["predicate"]
    uris = {m["uri"]: m["digest"]["sha256"] for m in predicate["materials"]}
    base_raw = skopeo_raw(base_images.busybox_amd64, plain_registry)
    other_raw = skopeo_raw(other, plain_registry)        # an index: BuildKit records the digest the tag names
    base_repo, base_tag = base_images.busybox_amd64.rsplit(":", 1)
    other_repo, other_tag = other.rsplit(":", 1)
    assert uris == {f"pkg:docker/{base_repo}@{base_tag}?platform=linux%2Famd64": hashlib.sha256(base_raw).hexdigest(),
                    f"pkg:docker/{other_repo}@{other_tag}?platform=linux%2Famd64":
                        hashlib.sha256(other_raw).hexdigest()}
    assert predicate["invocation"]["parameters"].get("args") is None          # min: build args left out
    assert predicate["metadata"]["completeness"]["parameters"] is False
    assert "buildConfig" not in predicate


def test_executor_push_sends_a_layouts_attestations_too(attested_build, plain_registry):
    """`executor push LAYOUT` of a layout written with attestations pushes the whole index."""
    from tests.e2e.test_subcommands import executor

    layout = os.path.join(attested_build["out"], "layout")
    dest = plain_registry.ref("attest/pushed-later:1")
    run = executor("push", layout, "--destination", dest, "--insecure-registry", plain_registry.host,
                   writable=[attested_build["out"]])
    assert run.returncode == 0, run.stderr
    assert skopeo_raw(dest, plain_registry) == skopeo_raw(attested_build["dest"], plain_registry)
    index = json.loads(skopeo_raw(dest, plain_registry))
    repo = dest.rsplit(":", 1)[0]
    for entry in index["manifests"]:
        assert hashlib.sha256(skopeo_raw(f"{repo}@{entry['digest']}", plain_registry)).hexdigest() == \
            entry["digest"].split(":")[1]

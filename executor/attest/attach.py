"""Attestations attached as BuildKit attaches them (moby/buildkit exporter/containerimage/writer.go
commitAttestationsManifest, docs/attestations/attestation-storage.md):

* the result is an OCI image index (executor.image.ImageIndex) holding the image manifests (with their
  platforms) and, after them, one attestation manifest per image whose descriptor has platform `unknown/unknown` and the annotations
  `vnd.docker.reference.type: attestation-manifest` and `vnd.docker.reference.digest: <image digest>`;
* the attestation manifest is an OCI image manifest (BuildKit's default form, without `oci-artifact=true`):
  its config an image config of os/architecture `unknown` whose diff_ids are the statements' digests, its
  layers the in-toto statements (`application/vnd.in-toto+json`, annotated `in-toto.io/predicate-type`);
* each statement is an in-toto v1 Statement whose subject is the image manifest's digest, named
  `pkg:docker/<name>@<tag>?platform=...` for every destination (BuildKit's default subjects), or `_` when
  the image has no name.

Attestations need OCI media types: BuildKit turns them on when attestations are asked for
(exporter/containerimage/export.go DefaultOCITypes) and refuses them with `oci-mediatypes=false`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from executor.image import Descriptor, Image, Manifest, Platform
from executor.image import digest as _digest
from executor.image import mediatypes as mt
from executor.image.imageindex import Artifact

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
INTOTO_MEDIA_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE_ANNOTATION = "in-toto.io/predicate-type"
REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION_MANIFEST = "attestation-manifest"
UNKNOWN_PLATFORM = Platform("unknown", "unknown")
SPDX_PREDICATE = "https://spdx.dev/Document"


@dataclass(frozen=True)
class Predicate:
    """An in-toto predicate to attach to an image: its type URI (SLSA provenance, SPDX) and its JSON body."""
    type: str
    body: dict


def subjects(names: list[str], image: Image) -> list[dict]:
    from executor.attest.provenance import image_purl

    digest = {"sha256": _digest.hex_of(image.digest)}
    platform = str(image.config.platform)
    if not names:
        return [{"name": "_", "digest": digest}]
    return [{"name": image_purl(n, platform), "digest": digest} for n in names]


def statement(predicate: Predicate, subject: list[dict]) -> bytes:
    """The in-toto statement's bytes (Go's field order: _type, predicateType, subject, predicate)."""
    return json.dumps({"_type": STATEMENT_TYPE, "predicateType": predicate.type, "subject": subject,
                       "predicate": predicate.body}, separators=(",", ":"), ensure_ascii=False).encode()


def attach(image: Image, predicates: list[Predicate], names: list[str]) -> Artifact:
    """The attestation manifest of `image` (OCI media types) holding `predicates`, as its image index lists it."""
    if image.format != mt.OCI:
        raise ValueError("attestations need an OCI image (convert it first)")
    subject = subjects(names, image)
    blobs: dict[str, bytes] = {}
    layers = []
    for pred in predicates:
        data = statement(pred, subject)
        digest = _digest.of_bytes(data)
        blobs[digest] = data
        layers.append(Descriptor(INTOTO_MEDIA_TYPE, digest, len(data),
                                 annotations={PREDICATE_TYPE_ANNOTATION: pred.type}))
    # BuildKit's attestationsConfig: json.Marshal(ocispecs.Image) with unknown/unknown and the diff_ids
    config = json.dumps({"architecture": "unknown", "os": "unknown", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [d.digest for d in layers]}},
                        separators=(",", ":")).encode()
    config_desc = Descriptor(mt.OCI_CONFIG, _digest.of_bytes(config), len(config))
    blobs[config_desc.digest] = config
    manifest_bytes = Manifest(mt.OCI_MANIFEST, config_desc, tuple(layers)).to_bytes()
    descriptor = Descriptor(mt.OCI_MANIFEST, _digest.of_bytes(manifest_bytes), len(manifest_bytes),
                            annotations={REFERENCE_DIGEST: image.digest, REFERENCE_TYPE: ATTESTATION_MANIFEST},
                            platform=UNKNOWN_PLATFORM)
    return Artifact(descriptor, manifest_bytes, blobs)

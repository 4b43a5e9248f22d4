"""`--metadata-file`: the build result as docker buildx writes it (BuildKit's exporter response keys,
exporter/containerimage/exptypes: `containerimage.digest`, `containerimage.descriptor`,
`containerimage.config.digest` when the result is one image manifest, `image.name`), plus kiln's build
report under `kiln.build`. buildx writes the descriptor as a JSON object and the file with two-space indents."""
from __future__ import annotations

import json
import logging

from executor.image import Descriptor

from .digest_files import write_file

log = logging.getLogger(__name__)


def metadata(descriptor: Descriptor, names: list[str], config_digest: str | None = None,
             report: dict | None = None) -> dict:
    data: dict = {}
    if config_digest:
        data["containerimage.config.digest"] = config_digest
    data["containerimage.descriptor"] = descriptor.to_dict()
    data["containerimage.digest"] = descriptor.digest
    if names:
        data["image.name"] = ",".join(names)
    if report is not None:
        data["kiln.build"] = report
    return data


def write_metadata_file(path: str, data: dict) -> None:
    write_file(path, json.dumps(data, indent=2, sort_keys=True).encode() + b"\n")
    log.info("wrote the build metadata to %s", path)

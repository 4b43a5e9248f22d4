"""Which layer of an image last wrote a path: BuildKit's fileLayerFinder (exporter/containerimage/
attestations.go), which puts `layerID: <digest>` in each SBOM file's comment. The layers are read top down
(their tar listings only) the first time a path is asked for; a whiteout is not a file."""
from __future__ import annotations

import logging
import posixpath
import tarfile

from executor.image import Layer

log = logging.getLogger(__name__)


class LayerIndex:
    def __init__(self, layers: list[Layer]):
        self.layers = list(layers)
        self._owner: dict[str, str] | None = None

    def _build(self) -> dict[str, str]:
        owner: dict[str, str] = {}
        for layer in reversed(self.layers):
            try:
                with layer.open_tar() as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
                    for member in tar:
                        name = posixpath.normpath("/" + member.name)
                        if posixpath.basename(name).startswith(".wh."):
                            continue
                        owner.setdefault(name, layer.digest)
            except (OSError, tarfile.TarError, ValueError) as e:
                log.warning("cannot list layer %s for the SBOM's layer comments: %s", layer.digest, e)
        return owner

    def layer_of(self, path: str) -> str | None:
        if self._owner is None:
            self._owner = self._build()
        return self._owner.get("/" + path.lstrip("/"))

"""What the build loop needs from its collaborators, each behind one small protocol.

The build loop (`executor.engine.builder.Builder`) is handed these through its constructor, as kaniko's
stageBuilder is handed its snapshotter and layer cache; `executor.engine.session` wires the real ones
(`snapshot.Snapshotter`, `executor.engine.images.RegistryImages`, `executor.cache.LayerCache`), the unit
tests wire fakes (tests/test_engine/fakes.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterable, Protocol

from executor.commands.base import CommandContext
from executor.dockerfile.instructions import Instruction
from executor.image import Image, Layer, Platform
from snapshot import LayerFile


class Snapshotter(Protocol):
    """The filesystem engine of one root (`snapshot.Snapshotter`)."""

    def extract(self, blob: str | BinaryIO, name: str = "", diff_id: bool = False) -> Any:
        """Apply one layer blob (a path, or a stream of its compressed bytes) onto the root; the index
        follows. The result's `compression` names what the bytes were; with `diff_id` its `diff_id` is the
        sha256 of the uncompressed tar."""

    def existing(self) -> list[str]:
        """The root's paths before the first layer (the container's own files, which belong to no layer)."""

    def take_in(self, before: list[str]) -> None:
        """After the first layers: index the paths `existing()` listed that no layer wrote."""

    def snapshot(self) -> LayerFile | None:
        """A layer of what changed on the root since the last snapshot (None: nothing did)."""

    def snapshot_paths(self, paths: Iterable[str]) -> LayerFile | None:
        """A layer of exactly these image paths (COPY/ADD)."""

    def wipe(self) -> None:
        """Remove everything from the root but the ignore list."""

    def save_tree(self, dest: str) -> None:
        """Keep the root's files (for a later COPY --from) in `dest`."""

    def unpack_into(self, directory: str, blobs: list[tuple[str, str]]) -> None:
        """Extract layer blobs `(path, name)` into another directory (an image's root for COPY --from)."""


class ImageSource(Protocol):
    """Where base images and `COPY --from=<image>` images come from (the registry, the base-image cache)."""

    def pull(self, name: str, platform: Platform) -> Image:
        """The image `name` for `platform`; raises with a message naming the reference."""

    def blob_file(self, layer: Layer) -> str:
        """A local file holding the layer's compressed bytes."""

    def prefetch(self, layers: Iterable[Layer]) -> None:
        """Start fetching these layers (the next `extract` calls will want them, in this order)."""

    def extract(self, layer: Layer, apply: Callable[..., Any]) -> None:
        """Put `layer` onto the root through `apply` (`Snapshotter.extract`), its bytes verified; raises
        naming the layer and the image when they do not match the manifest."""


@dataclass(frozen=True)
class StageStart:
    """What a layer cache needs to know of a stage when it begins."""
    index: int
    ref: str                                # the stage's name or index, for logs
    platform: str                           # "linux/amd64"...
    base: str                               # "scratch", "image:<digest>" or "stage:<index>"
    identify: Callable[[str], str]          # a --from reference -> "stage:<index>" or "image:<digest>"


class CachedStep(Protocol):
    """A step found in the layer cache."""
    layer: Layer | None                     # None: the step changed no file
    blob_path: str                          # the layer's compressed blob, on disk
    created_by: str


class StageCache(Protocol):
    """The layer cache's view of one stage: a lookup before each step, a store after a step that ran."""

    def lookup(self, inst: Instruction, ctx: CommandContext) -> CachedStep | None:
        """The cached result of `inst` in this state, or None (the step must run)."""

    def ran(self, inst: Instruction, ctx: CommandContext, layer: Layer | None, created_by: str) -> Layer | None:
        """`inst` ran and gave `layer` (None: no file changed) and history `created_by` ("" for none).
        Returns the layer the image should hold (the cache may hand back one it can mount on push)."""

    @property
    def consulted(self) -> bool:
        """Whether the last lookup asked the cache (False for a step the cache does not keep: ARG, ENV, COPY
        without --cache-copy-layers...), so a step that ran is reported as a cache miss only when it was one."""


class StepCache(Protocol):
    """The layer cache of one build (`--cache`)."""

    def begin_stage(self, start: StageStart) -> StageCache: ...

    def finish(self, cancel: bool = False) -> None:
        """Wait for background uploads (`cancel`: drop those not started)."""


Redactor = Callable[[str], str]

#: receives each layer of the build's result as soon as it is in the image (the base's first, then each step's):
#: the session sends it to the destinations while the build goes on
LayerSink = Callable[[Layer], None]

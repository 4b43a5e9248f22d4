"""Fakes for the build loop's collaborators (executor.engine.protocols), in the style of kaniko's fakes.go.

Each records what the build loop asked of it, in order, in a shared `calls` list, so a test can read the
whole conversation: which layers were extracted, when the root was indexed, snapshotted, wiped and saved,
which cache lookups hit.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Iterable

from executor.dockerfile.instructions import Instruction
from executor.engine.protocols import StageStart
from executor.image import HistoryEntry, Image, Layer, Platform
from executor.image import mediatypes as mt
from snapshot import LayerFile


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def layer_file(name: str) -> LayerFile:
    """A layer the fake snapshotter 'wrote': digests derived from `name`, no bytes on disk."""
    return LayerFile(path=f"/nonexistent/{name}", digest=_sha("blob " + name), diff_id=_sha("tar " + name),
                     size=len(name), compression="gzip")


def fake_layer(name: str, fmt: str = mt.OCI) -> Layer:
    return Layer.from_layer_file(layer_file(name), fmt)


@dataclass
class FakeSnapshotter:
    calls: list[tuple] = field(default_factory=list)
    changes: list[str | None] = field(default_factory=list)   # what each snapshot() returns, in turn

    def extract(self, blob_path: str, name: str = "", diff_id: bool = False) -> None:
        self.calls.append(("extract", name))

    def existing(self) -> list[str]:
        return ["container-own"]

    def take_in(self, before: list[str]) -> None:
        assert before == ["container-own"], "take_in gets what existing() listed before the first extraction"
        self.calls.append(("take_in",))

    def snapshot(self) -> LayerFile | None:
        name = self.changes.pop(0) if self.changes else f"walk{len(self.calls)}"
        self.calls.append(("snapshot", name))
        return layer_file(name) if name is not None else None

    def snapshot_paths(self, paths: Iterable[str]) -> LayerFile | None:
        paths = sorted(paths)
        self.calls.append(("snapshot_paths", tuple(paths)))
        return layer_file("paths:" + ",".join(paths))

    def wipe(self) -> None:
        self.calls.append(("wipe",))

    def save_tree(self, dest: str) -> None:
        """A saved stage holds one file, `/built-by-<stage dir name>`, for COPY --from to find."""
        self.calls.append(("save_tree", os.path.basename(dest)))
        os.makedirs(dest, exist_ok=True)
        with open(os.path.join(dest, f"built-by-{os.path.basename(dest)}"), "w") as f:
            f.write("saved\n")

    def unpack_into(self, directory: str, blobs: list[tuple[str, str]]) -> None:
        self.calls.append(("unpack_into", tuple(name for _, name in blobs)))
        with open(os.path.join(directory, "from-image"), "w") as f:
            f.write("image\n")


@dataclass
class FakeImages:
    """Images by name: each has the layers named in `layers[name]`; anything else is not found."""
    layers: dict[str, list[str]] = field(default_factory=dict)
    config: dict[str, dict] = field(default_factory=dict)
    pulled: list[tuple[str, str]] = field(default_factory=list)

    def pull(self, name: str, platform: Platform) -> Image:
        self.pulled.append((name, str(platform)))
        if name not in self.layers:
            raise LookupError(f"{name}: not found in the fake registry")
        image = Image.empty(platform, created="2020-01-01T00:00:00Z")
        for layer_name in self.layers[name]:
            image.append_layer(fake_layer(f"{name}/{layer_name}"),
                               HistoryEntry(created_by=f"base layer {layer_name}"))
        for key, value in self.config.get(name, {}).items():
            setattr(image.config, key, value)
        return image

    prefetched: list[str] = field(default_factory=list)

    def blob_file(self, layer: Layer) -> str:
        return layer.path or "/nonexistent"

    def prefetch(self, layers) -> None:
        self.prefetched.extend(layer.digest for layer in layers)

    def extract(self, layer: Layer, apply) -> None:
        apply(self.blob_file(layer), name=layer.digest)


@dataclass
class FakeHit:
    layer: Layer | None
    blob_path: str
    created_by: str


@dataclass
class FakeStageCache:
    cache: "FakeCache"
    start: StageStart

    consulted: bool = True

    def lookup(self, inst: Instruction, ctx) -> FakeHit | None:
        self.cache.calls.append(("lookup", self.start.index, inst.keyword))
        hit = self.cache.hits.get(inst.original)
        if hit is None:
            return None
        name, created_by = hit
        layer = fake_layer("cached:" + name) if name else None
        return FakeHit(layer, "/cache/" + (name or "none"), created_by)

    def ran(self, inst: Instruction, ctx, layer: Layer | None, created_by: str) -> Layer | None:
        self.cache.calls.append(("ran", self.start.index, inst.keyword, created_by))
        self.cache.stored.append((inst.keyword, layer.digest if layer else None, created_by))
        return layer


@dataclass
class FakeCache:
    """`hits` maps an instruction's original text to (layer name or "" for no layer, created_by)."""
    hits: dict[str, tuple[str, str]] = field(default_factory=dict)
    calls: list[tuple] = field(default_factory=list)
    stored: list[tuple] = field(default_factory=list)
    starts: list[StageStart] = field(default_factory=list)
    finished: bool = False

    def begin_stage(self, start: StageStart) -> FakeStageCache:
        self.starts.append(start)
        self.calls.append(("begin_stage", start.index, start.base))
        return FakeStageCache(self, start)

    def finish(self, cancel: bool = False) -> None:
        self.finished = True


@dataclass
class FakeRun:
    """Stands for executor.run.run: records each RUN's argv, user, workdir and environment."""
    specs: list = field(default_factory=list)

    def __call__(self, spec) -> None:
        self.specs.append(spec)

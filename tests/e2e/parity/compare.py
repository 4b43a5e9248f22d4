"""Compare two judged images (kiln's and docker build's) path by path and field by field.

Each difference is a `Difference(subject, attribute, kiln, docker)`: `subject` is a path of the merged
filesystem (no leading '/') or `config.<Field>` / `layers` / `history`; `attribute` names what differs.
"""
from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable
from dataclasses import dataclass

from tests.rig.judge import ImageReport, LayerReport, TarMember, normalise

CONFIG_FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels",
                 "Healthcheck", "StopSignal", "OnBuild", "Shell")
LAZY = "lazy:"     # content key of a file in a shared base layer, hashed only when compared


@dataclass(frozen=True)
class Difference:
    subject: str
    attribute: str
    kiln: object
    docker: object

    def __str__(self) -> str:
        return f"{self.subject} [{self.attribute}]: kiln {self.kiln!r} != docker {self.docker!r}"


@dataclass(frozen=True)
class Entry:
    type: str              # file (hard links included) | dir | symlink | char | block | fifo
    mode: int
    uid: int
    gid: int
    size: int
    content: str           # sha256 of a file's bytes, the target of a symlink, "" otherwise
    mtime: int | None      # only where it must match (files a COPY/ADD wrote), else None
    xattrs: tuple[tuple[str, str], ...]
    link_group: tuple[str, ...]   # every path sharing this file's inode (hard links), () when alone


def _contents(layer: LayerReport, shared: bool) -> dict[str, str]:
    """path -> content key of each regular file of a layer; a base layer both images share is keyed by
    its diff_id instead of being hashed (its bytes are the same blob on both sides)."""
    out: dict[str, str] = {}
    if shared:
        for m in layer.members:
            if m.type == "file":
                out[m.path] = f"{LAZY}{layer.index}:{m.path}"
        return out
    with tarfile.open(layer.tar_path, "r:") as tf:
        for ti in tf:
            if ti.isreg():
                f = tf.extractfile(ti)
                assert f is not None
                out[normalise(ti.name)] = "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()
    return out


def _copy_layers(report: ImageReport) -> set[int]:
    """Indexes of the layers a COPY or ADD made (history entries that are not empty, in order)."""
    made = [h for h in report.config.get("history") or [] if not h.get("empty_layer")]
    if len(made) != len(report.layers):
        return set()
    return {i for i, h in enumerate(made) if (h.get("created_by") or "").startswith(("COPY ", "ADD "))}


def resolve(report: ImageReport, content: str) -> str:
    """The sha256 of a lazily keyed file."""
    if not content.startswith(LAZY):
        return content
    index, _, path = content[len(LAZY):].partition(":")
    return "sha256:" + hashlib.sha256(report.layers[int(index)].read(path)).hexdigest()


def entries(report: ImageReport, shared_diff_ids: set[str]) -> dict[str, Entry]:
    """The merged filesystem of an image as comparable entries; mtimes are kept for what a COPY or ADD
    wrote (compare() skips build times: a file a RUN made, copied from a stage)."""
    view = report.filesystem()
    copy_layers = _copy_layers(report)
    contents: dict[int, dict[str, str]] = {}
    groups: dict[tuple[int, str], list[str]] = {}
    for path, (index, member) in view.items():
        if member.type == "hardlink":
            groups.setdefault((index, normalise(member.linkname)), []).append(path)
    for key in list(groups):
        if key[1] in view and view[key[1]][0] == key[0]:
            groups[key].append(key[1])
    group_of = {p: tuple(sorted(ps)) for ps in groups.values() if len(ps) > 1 for p in ps}

    result: dict[str, Entry] = {}
    for path, (index, member) in view.items():
        layer = report.layers[index]
        if index not in contents:
            contents[index] = _contents(layer, layer.diff_id in shared_diff_ids)
        kind, size, content = member.type, member.size, ""
        if kind == "hardlink":
            kind = "file"
            content = contents[index].get(normalise(member.linkname), "?")
            target = _member(layer, normalise(member.linkname))
            size = target.size if target else -1
        elif kind == "file":
            content = contents[index].get(path, "?")
        elif kind == "symlink":
            content = member.linkname
        mtime = int(member.mtime) if kind != "dir" and index in copy_layers else None
        result[path] = Entry(kind, member.mode & 0o7777, member.uid, member.gid, size if kind == "file" else 0,
                             content, mtime, tuple(sorted(member.xattrs.items())), group_of.get(path, ()))
    return result


def _member(layer: LayerReport, path: str) -> TarMember | None:
    found = [m for m in layer.members if m.path == path and m.type != "hardlink"]
    return found[-1] if found else None


def compare(kiln: ImageReport, docker: ImageReport, since: float,
            hollow: Callable[[LayerReport], bool] = lambda layer: False) -> list[Difference]:
    """Every difference between the two images; `since` is when the builds started. A docker layer
    `hollow` says holds only builder artifacts counts as an empty layer (see test_parity)."""
    diffs: list[Difference] = []
    kc, dc = kiln.config.get("config") or {}, docker.config.get("config") or {}
    for name in CONFIG_FIELDS:
        if kc.get(name) != dc.get(name):
            diffs.append(Difference(f"config.{name}", "value", kc.get(name), dc.get(name)))
    for name in ("architecture", "os", "variant", "author"):
        if kiln.config.get(name) != docker.config.get(name):
            diffs.append(Difference(name, "value", kiln.config.get(name), docker.config.get(name)))
    hollow_layers = {layer.index for layer in docker.layers if hollow(layer)}
    if len(kiln.layers) != len(docker.layers) - len(hollow_layers):
        diffs.append(Difference("layers", "count", len(kiln.layers), len(docker.layers) - len(hollow_layers)))
        diffs.append(Difference("layers", "contents", _layer_summary(kiln), _layer_summary(docker)))
    kh = [(h.get("created_by"), bool(h.get("empty_layer"))) for h in kiln.config.get("history") or []]
    dh = [(h.get("created_by"), bool(h.get("empty_layer"))) for h in docker.config.get("history") or []]
    made = [i for i, (_, empty) in enumerate(dh) if not empty]
    if len(made) == len(docker.layers):
        for layer_index in hollow_layers:
            dh[made[layer_index]] = (dh[made[layer_index]][0], True)
    if len(kh) != len(dh):
        diffs.append(Difference("history", "count", len(kh), len(dh)))
    for i, (a, b) in enumerate(zip(kh, dh)):
        if a != b:
            diffs.append(Difference(f"history.{i}", "created_by", a, b))

    shared = {a.diff_id for a, b in zip(kiln.layers, docker.layers) if a.diff_id == b.diff_id}
    ke, de = entries(kiln, shared), entries(docker, shared)
    for path in sorted(set(ke) | set(de)):
        a, b = ke.get(path), de.get(path)
        if a is None or b is None:
            diffs.append(Difference(path, "exists", a is not None, b is not None))
            continue
        for attr in ("type", "mode", "uid", "gid", "size", "content", "xattrs", "link_group"):
            va, vb = getattr(a, attr), getattr(b, attr)
            if attr == "content" and va != vb:
                va, vb = resolve(kiln, va), resolve(docker, vb)
                if va != vb and a.type == b.type == "file" and max(a.size, b.size) <= 512:
                    va, vb = _small_text(kiln, path, va), _small_text(docker, path, vb)   # for the message
            if va != vb:
                if attr == "mode":
                    va, vb = oct(va), oct(vb)
                diffs.append(Difference(path, attr, va, vb))
        # both written during the build (a RUN's file copied from a stage): times of two different runs
        if a.mtime is not None and b.mtime is not None and a.mtime != b.mtime and min(a.mtime, b.mtime) < since:
            diffs.append(Difference(path, "mtime", a.mtime, b.mtime))
    return diffs


def _layer_summary(report: ImageReport) -> list[str]:
    """For a message: each layer after the first, as its first few entries."""
    return [",".join(layer.names()[:6]) + ("..." if len(layer.members) > 6 else "") for layer in report.layers[1:]]


def _small_text(report: ImageReport, path: str, digest: str) -> str:
    """A small file's text next to its digest, so a message shows what differs."""
    try:
        text = report.read(path).decode()
    except (KeyError, UnicodeDecodeError):
        return digest
    return f"{digest} {text!r}"

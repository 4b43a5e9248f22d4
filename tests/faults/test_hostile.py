"""Hostile input: base image layers that attack the extractor, a context whose symlinks point outside it,
build-arg and secret values. Each gives a clear error (no traceback) or a contained result, and nothing
appears outside the root: a sentinel directory beside the root is checked after every build."""
from __future__ import annotations

import gzip
import io
import os
import tarfile

import pytest

from executor.image import Layer
from executor.image.config import HistoryEntry
from executor.registry import RegistryClient, RegistryOptions
from tests.faults.conftest import kiln_argv, kiln_env
from tests.rig.judge import judge_registry_image
from tests.rig.sandbox import run_sandboxed

SECRET = b"sentinel-secret-content\n"


def _snapshot_tree(top: str) -> dict[str, tuple[int, bytes | str]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if os.path.islink(p):
                out[os.path.relpath(p, top)] = (st.st_mode, os.readlink(p))
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    out[os.path.relpath(p, top)] = (st.st_nlink, f.read())
            else:
                out[os.path.relpath(p, top)] = (st.st_mode, "")
    return out


class Arena:
    """tmp/arena/{root,kaniko,ctx,sentinel}: the sentinel holds a secret file and must stay as it is."""

    def __init__(self, tmp_path):
        self.top = str(tmp_path / "arena")
        self.root, self.kdir, self.ctx, self.sentinel = (os.path.join(self.top, n)
                                                         for n in ("root", "kaniko", "ctx", "sentinel"))
        for d in (self.root, self.kdir, self.ctx, self.sentinel):
            os.makedirs(d)
        with open(os.path.join(self.sentinel, "secret"), "wb") as f:
            f.write(SECRET)
        self.before = _snapshot_tree(self.sentinel)
        self.arena_before = set(os.listdir(self.top))

    def build(self, dockerfile: str, *args: str, files: dict[str, bytes] | None = None, env=None):
        with open(os.path.join(self.ctx, "Dockerfile"), "w") as f:
            f.write(dockerfile)
        for name, data in (files or {}).items():
            with open(os.path.join(self.ctx, name), "wb") as f:
                f.write(data)
        # the sentinel is writable in the sandbox too: an escape would land there, not be refused by a
        # read-only mount
        return run_sandboxed(kiln_argv(self.ctx, self.root, self.kdir, *args),
                             writable=[self.root, self.kdir, self.ctx, self.sentinel], env=kiln_env(env),
                             timeout=180)

    def assert_untouched(self) -> None:
        assert _snapshot_tree(self.sentinel) == self.before, "something was written outside the root"
        assert set(os.listdir(self.top)) == self.arena_before, "something appeared beside the root"


Entry = tuple[tarfile.TarInfo, bytes]


def _layer_file(tmp_path, name: str, entries: list[Entry]) -> str:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in entries:
            info.size = len(data) if info.isreg() else 0
            info.mtime = 1704067200
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    path = str(tmp_path / f"{name}.tar.gz")
    with open(path, "wb") as f:
        f.write(gzip.compress(raw.getvalue(), mtime=0))
    return path


def _hostile_image(base_images, plain_registry, tmp_path, name: str, layers: list[list[Entry]]) -> str:
    """busybox plus one layer per entry list, built by hand with tarfile (kiln never touches them)."""
    client = RegistryClient(RegistryOptions(insecure_registries=[plain_registry.host]), blob_dir=str(tmp_path / "b"))
    image = client.pull(base_images.busybox_amd64, fetch_layers=True).copy()
    image.raw_manifest = None
    for i, entries in enumerate(layers):
        image.append_layer(Layer.from_file(_layer_file(tmp_path, f"{name}-{i}", entries)),
                           HistoryEntry(created_by=f"hostile: {name} {i}"))
    ref = plain_registry.ref(f"faults/hostile-{name}:v1")
    client.push(image, [ref])
    client.close()
    return ref


def _entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"pwned\n", linkname: str = "") -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644 if kind == tarfile.REGTYPE else 0o777
    return info, data


def _attacks(sentinel: str) -> dict[str, list[list[Entry]]]:
    rel = os.path.relpath(sentinel, "/")
    one_layer: dict[str, list[Entry]] = {
        "absolute": [_entry(f"/{rel}/abs-file")],
        "dotdot": [_entry("../sentinel/dotdot-file"), _entry("a/../../sentinel/dotdot2"),
                   _entry("../" * 40 + f"{rel}/deep-dotdot")],
        "symlink-write-through": [_entry("esc", tarfile.SYMTYPE, linkname=sentinel), _entry("esc/through-abs"),
                                  _entry("rel", tarfile.SYMTYPE, linkname="../" * 40 + rel),
                                  _entry("rel/through-rel")],
        "symlink-dir-then-dir": [_entry("d", tarfile.SYMTYPE, linkname="../sentinel"),
                                 _entry("d/sub", tarfile.DIRTYPE), _entry("d/sub/f")],
        "hardlink-out": [_entry("stolen", tarfile.LNKTYPE, linkname=f"{sentinel}/secret"),
                         _entry("stolen2", tarfile.LNKTYPE, linkname="../sentinel/secret"),
                         _entry("stolen3", tarfile.LNKTYPE, linkname="../" * 40 + f"{rel}/secret")],
        # a hard link to a symlink that points out: following the symlink on the host would link the secret
        "hardlink-to-symlink-out": [_entry("sl", tarfile.SYMTYPE, linkname=f"{sentinel}/secret"),
                                    _entry("stolen", tarfile.LNKTYPE, linkname="sl"),
                                    _entry("rsl", tarfile.SYMTYPE, linkname="../" * 40 + f"{rel}/secret"),
                                    _entry("stolen2", tarfile.LNKTYPE, linkname="rsl")],
    }
    layers = {name: [entries] for name, entries in one_layer.items()}
    # the link in one layer, the write through it in the next
    layers["symlink-across-layers"] = [[_entry("esc", tarfile.SYMTYPE, linkname=sentinel),
                                        _entry("rel", tarfile.SYMTYPE, linkname="../" * 40 + rel)],
                                       [_entry("esc/through-abs"), _entry("rel/through-rel")]]
    return layers


ATTACKS = ["absolute", "dotdot", "symlink-write-through", "symlink-across-layers", "symlink-dir-then-dir",
           "hardlink-out", "hardlink-to-symlink-out"]


@pytest.mark.parametrize("attack", ATTACKS)
def test_hostile_base_layer(attack, base_images, plain_registry, tmp_path):
    arena = Arena(tmp_path)
    ref = _hostile_image(base_images, plain_registry, tmp_path, attack, _attacks(arena.sentinel)[attack])
    dest = plain_registry.ref(f"faults/hostile-out-{attack}:v1")
    proc = arena.build(f"FROM {ref}\nRUN for f in /stolen /stolen2 /stolen3; do [ -e $f ] && echo x >> $f; done; true\n",
                       "--destination", dest, "--insecure-registry", plain_registry.host)
    arena.assert_untouched()
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    if attack in ("dotdot", "hardlink-out"):   # refused: the layer and the entry are named
        assert proc.returncode == 1, proc.stderr[-3000:]
        last = proc.stderr.strip().splitlines()[-1]
        assert "level=error" in last and "layer" in last.lower() and "sentinel" in last, last
        assert {"dotdot": "entry '../sentinel/dotdot-file': refused: '../sentinel/dotdot-file' leaves the root "
                          "through '..'",
                "hardlink-out": f"entry 'stolen': hard link target '{arena.sentinel}/secret' does not exist"}[attack] \
            in last, last
        return
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the base layer itself is hostile (the judge refuses it), so look at what kiln made of it: the root
    for dirpath, _, filenames in os.walk(arena.root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path) and os.path.getsize(path) == len(SECRET):
                with open(path, "rb") as f:
                    assert f.read() != SECRET, f"{path} is the sentinel's secret, linked or copied in"
    rel = os.path.relpath(arena.sentinel, "/")
    landed = {"absolute": [f"{rel}/abs-file"],   # as Docker: a leading / is dropped
              "symlink-write-through": [f"{rel}/through-abs", f"{rel}/through-rel"],  # links resolved in the root
              "symlink-across-layers": [f"{rel}/through-abs", f"{rel}/through-rel"],
              "symlink-dir-then-dir": ["sentinel/sub/f"],
              "hardlink-to-symlink-out": []}[attack]
    for path in landed:
        assert os.path.isfile(os.path.join(arena.root, path)), f"{path} should have been written inside the root"
    if attack == "hardlink-to-symlink-out":   # the link is to the symlink itself, never to what it points at
        assert os.path.islink(os.path.join(arena.root, "stolen")) and os.path.islink(os.path.join(arena.root, "stolen2"))


def test_context_symlinks_pointing_outside(base_images, plain_registry, tmp_path):
    arena = Arena(tmp_path)
    os.symlink(os.path.join(arena.sentinel, "secret"), os.path.join(arena.ctx, "abs-link"))
    os.symlink("../sentinel/secret", os.path.join(arena.ctx, "rel-link"))
    os.symlink("../sentinel", os.path.join(arena.ctx, "dir-link"))
    dest = plain_registry.ref("faults/context-links:v1")
    for source in ("abs-link", "rel-link", "dir-link/secret", "dir-link/", "."):
        proc = arena.build(f"FROM {base_images.busybox_amd64}\nCOPY {source} /copied/\n", "--destination", dest,
                           "--insecure-registry", plain_registry.host)
        arena.assert_untouched()
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1]
            assert "level=error" in last and "COPY" in last, (source, last)
            continue
        report = judge_registry_image(plain_registry, dest)
        top = report.layers[-1]
        for name in top.names():
            member = top.member(name)
            if member.type == "file":
                assert top.read(name) != SECRET, f"COPY {source} read {name} from outside the context"


def test_build_arg_and_secret_values_stay_out_of_logs_and_image(base_images, plain_registry, tmp_path):
    arena = Arena(tmp_path)
    arg_value, secret_value = "argvalue-7f3e9c2b1a", "secretvalue-5d4c3b2a19"
    dockerfile = (f"FROM {base_images.busybox_amd64}\nARG PASSWORD\n"
                  "RUN echo \"pw=$PASSWORD\" && test -n \"$PASSWORD\"\n"
                  "RUN --mount=type=secret,id=tok cat /run/secrets/tok && echo done > /done\n")
    dest = plain_registry.ref("faults/secrets:v1")
    proc = arena.build(dockerfile, "--destination", dest, "--insecure-registry", plain_registry.host,
                       "--build-arg", f"PASSWORD={arg_value}", "--secret", "id=tok,env=KILN_TEST_TOKEN",
                       "--verbosity", "debug", env={"KILN_TEST_TOKEN": secret_value})
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = proc.stdout + proc.stderr
    assert arg_value not in logs, "a build-arg value was printed"
    assert secret_value not in logs, "a secret value was printed"
    report = judge_registry_image(plain_registry, dest)
    config_text = str(report.config)
    assert secret_value not in config_text, "a secret value reached the image config or history"
    assert arg_value not in str(report.config.get("config", {})), "a build-arg value reached the runtime config"
    for layer in report.layers:
        for name in layer.names():
            if layer.member(name).type == "file":
                data = layer.read(name)
                assert secret_value.encode() not in data, f"{name} holds the secret"
    assert not any(n.startswith("run/secrets/") and n != "run/secrets" for l in report.layers for n in l.names())

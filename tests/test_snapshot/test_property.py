"""Random sequences of filesystem changes, snapshotted step by step: the layers, applied in order
by an independent reference applier (tarfile parsing, plain os calls, whiteouts per the OCI spec),
must rebuild exactly the live tree."""
from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile

from hypothesis import HealthCheck, example, given, settings, strategies as st

from snapshot import IgnoreList, Snapshotter

from .helpers import tree

NAMES = ["a", "b", "c"]
paths = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join)
op = st.one_of(
    st.tuples(st.just("write"), paths, st.binary(max_size=64)),
    st.tuples(st.just("rm"), paths),
    st.tuples(st.just("mkdir"), paths),
    st.tuples(st.just("symlink"), paths, st.sampled_from(["a", "../b", "/c/a", "nowhere"])),
    st.tuples(st.just("hardlink"), paths, paths),
    st.tuples(st.just("chmod"), paths, st.sampled_from([0o600, 0o755, 0o4755, 0o1777])),
    st.tuples(st.just("chown"), paths, st.integers(0, 3)),
    st.tuples(st.just("sneaky"), paths),
    st.tuples(st.just("recreate"), paths),
)
steps = st.lists(st.lists(op, min_size=1, max_size=6), min_size=1, max_size=5)


def _remove(p: str) -> None:
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p)
    elif os.path.lexists(p):
        os.unlink(p)


def _parent_ok(root: str, rel: str) -> bool:
    parent = os.path.dirname(rel)
    cur = root
    for comp in parent.split("/") if parent else []:
        cur = f"{cur}/{comp}"
        if os.path.lexists(cur) and (os.path.islink(cur) or not os.path.isdir(cur)):
            return False
    os.makedirs(os.path.join(root, parent), exist_ok=True)
    return True


def apply_op(root: str, o: tuple) -> None:
    kind, rel = o[0], o[1]
    p = f"{root}/{rel}"
    if not _parent_ok(root, rel):
        return
    if kind == "write":
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        elif os.path.islink(p):
            os.unlink(p)
        with open(p, "wb") as f:
            f.write(o[2])
    elif kind == "rm":
        _remove(p)
    elif kind == "mkdir":
        if os.path.lexists(p) and not (os.path.isdir(p) and not os.path.islink(p)):
            os.unlink(p)
        os.makedirs(p, exist_ok=True)
    elif kind == "symlink":
        _remove(p)
        os.symlink(o[2], p)
    elif kind == "hardlink":
        src = f"{root}/{o[2]}"
        # a link whose target lies below the path it replaces would remove its own target first: skipped
        if os.path.isfile(src) and not os.path.islink(src) and src != p and not src.startswith(p + "/"):
            _remove(p)
            os.link(src, p)
    elif kind == "chmod":
        if os.path.lexists(p) and not os.path.islink(p):
            os.chmod(p, o[2])
    elif kind == "chown":
        if os.path.lexists(p):
            os.chown(p, 1000 + o[2], 2000 + o[2], follow_symlinks=False)
    elif kind == "sneaky":
        if os.path.isfile(p) and not os.path.islink(p):
            st_ = os.lstat(p)
            data = open(p, "rb").read()
            with open(p, "r+b") as f:
                f.write(bytes((b + 1) % 256 for b in data))
            os.utime(p, ns=(st_.st_atime_ns, st_.st_mtime_ns))
    elif kind == "recreate":
        if os.path.isdir(p) and not os.path.islink(p):
            tmp = p + ".new"
            shutil.copytree(p, tmp, symlinks=True)
            shutil.rmtree(p)
            os.rename(tmp, p)


def reference_apply(root: str, blob: str) -> None:
    """Apply one layer the plain way: whiteouts first (they hide lower layers only), then entries."""
    with tarfile.open(blob) as tf:
        members = tf.getmembers()
        for m in members:
            d, base = os.path.split(m.name)
            if base == ".wh..wh..opq":
                target = os.path.join(root, d)
                if os.path.isdir(target):
                    for child in os.listdir(target):
                        _remove(os.path.join(target, child))
            elif base.startswith(".wh."):
                _remove(os.path.join(root, d, base[4:]))
        dirs = []
        for m in members:
            if os.path.basename(m.name).startswith(".wh."):
                continue
            p = os.path.join(root, m.name)
            if os.path.lexists(p) and not (m.isdir() and os.path.isdir(p) and not os.path.islink(p)):
                _remove(p)
            if m.isdir():
                os.makedirs(p, exist_ok=True)
                dirs.append(m)
            elif m.isfile():
                with open(p, "wb") as f:
                    f.write(tf.extractfile(m).read())
            elif m.issym():
                os.symlink(m.linkname, p)
            elif m.islnk():
                os.link(os.path.join(root, m.linkname), p)
            os.chown(p, m.uid, m.gid, follow_symlinks=False)
            if not m.issym():
                os.chmod(p, m.mode)
            os.utime(p, (m.mtime, m.mtime), follow_symlinks=False)
        for m in dirs:
            os.utime(os.path.join(root, m.name), (m.mtime, m.mtime))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps, mode=st.sampled_from(["exact", "full"]))
@example(plan=[[("write", "a", b""), ("write", "b/a", b""), ("hardlink", "b", "b/a")]], mode="exact")
def test_layers_rebuild_the_live_tree(tmp_path_factory, plan, mode):
    base = tmp_path_factory.mktemp("prop")
    live, rebuilt, work = base / "live", base / "rebuilt", base / "work"
    for d in (live, rebuilt, work):
        d.mkdir()
    snap = Snapshotter(str(live), IgnoreList(str(live)), str(work), mode=mode)
    ever: set[str] = set()
    for step in plan:
        before = set(snap.index.entries)
        for o in step:
            apply_op(str(live), o)
        layer = snap.snapshot()
        if layer is not None:
            for m in tarfile.open(layer.path).getmembers():
                base_name = os.path.basename(m.name)
                if base_name.startswith(".wh.") and base_name != ".wh..wh..opq":
                    gone = os.path.join(os.path.dirname(m.name), base_name[4:])
                    assert gone in before, f"whiteout for {gone}, which no lower layer had (kaniko #2050)"
                assert not m.name.startswith(("/", "./"))
            reference_apply(str(rebuilt), layer.path)
            os.unlink(layer.path)
        assert tree(str(rebuilt)) == tree(str(live)), f"after step {step}"
        assert snap.snapshot() is None, "a second snapshot right after must find nothing"

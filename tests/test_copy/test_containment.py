"""Property: whatever symlinks the image root holds, a COPY/ADD writes only inside it."""
from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor.commands.copying.files import CopyError, CopyRequest, copy_into_root
from tests.test_copy.helpers import write

NAMES = st.sampled_from(["a", "b", "etc", "usr", "..", "."])
LINK_TARGETS = st.lists(NAMES, min_size=1, max_size=4).map("/".join).flatmap(
    lambda rel: st.sampled_from([rel, "/" + rel, "../outside/" + rel, "/../outside/" + rel, "../" + rel]))
ROOT_LINKS = st.lists(st.tuples(st.lists(st.sampled_from(["a", "b", "etc", "usr"]), min_size=1, max_size=3)
                                .map("/".join), LINK_TARGETS), max_size=6)
DESTS = st.lists(NAMES, min_size=0, max_size=4).map(lambda parts: "/" + "/".join(parts)).flatmap(
    lambda d: st.sampled_from([d, d + "/"]))


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(links=ROOT_LINKS, dest=DESTS, source=st.sampled_from(["f", "tree", "*"]))
def test_writes_stay_inside_the_root(links, dest, source) -> None:
    base = tempfile.mkdtemp(prefix="kiln-contain-")
    try:
        ctx, root, outside = (os.path.join(base, n) for n in ("ctx", "root", "outside"))
        for p in (ctx, root, outside):
            os.mkdir(p)
        write(ctx, "f", "f")
        write(ctx, "tree/etc/x", "x")
        write(ctx, "tree/usr/a/y", "y")
        for where, target in links:  # built with plain directories only: never through a link
            parent, usable = root, True
            for part in where.split("/")[:-1]:
                parent = os.path.join(parent, part)
                if os.path.islink(parent) or (os.path.lexists(parent) and not os.path.isdir(parent)):
                    usable = False
                    break
                if not os.path.lexists(parent):
                    os.mkdir(parent)
            if usable:
                path = os.path.join(parent, where.split("/")[-1])
                if not os.path.lexists(path):
                    os.symlink(target, path)
        before = sorted(os.listdir(base))
        try:
            paths = copy_into_root(CopyRequest([source], dest, ctx, root))
        except CopyError:
            paths = []
        assert os.listdir(outside) == []
        assert sorted(os.listdir(base)) == before
        for p in paths:
            host = os.path.join(root, p.lstrip("/"))
            assert os.path.lexists(host), p
            assert os.path.realpath(os.path.dirname(host)).startswith(os.path.realpath(root))
    finally:
        shutil.rmtree(base)

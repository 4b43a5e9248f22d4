from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from snapshot import IgnoreList
from snapshot.ignore import mount_points


def test_mountinfo_escapes(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 0:21 / / rw - ext4 /dev/vda rw\n"
        "23 22 0:5 / /proc rw,nosuid - proc proc rw\n"
        "24 22 0:6 / /mnt/with\\040space rw - tmpfs tmpfs rw\n")
    assert mount_points(str(info)) == ["/", "/proc", "/mnt/with space"]
    ig = IgnoreList.from_system("/", kiln_dir="/kaniko", extra=["/var/run/secrets/"], mountinfo=str(info))
    assert ig.paths == {"proc", "mnt/with space", "kaniko", "var/run/secrets"}
    assert ig.covers("proc/1/status") and not ig.covers("var/run") and not ig.covers("procfs")
    assert ig.holds_ignored("var/run") and ig.holds_ignored("var") and not ig.holds_ignored("proc")


def test_scratch_root_maps_mounts_under_it(tmp_path):
    root = tmp_path / "root"
    info = tmp_path / "mountinfo"
    info.write_text(f"1 0 0:1 / / rw - ext4 x rw\n2 1 0:2 / {root} rw - tmpfs t rw\n"
                    f"3 1 0:3 / {root}/etc/hosts rw - ext4 x rw\n4 1 0:4 / {tmp_path}/other rw - tmpfs t rw\n")
    root.mkdir()
    ig = IgnoreList.from_system(str(root), kiln_dir="/kaniko", mountinfo=str(info))
    assert ig.paths == {"etc/hosts"}, "the root's own mount, mounts elsewhere and an outside kiln dir add nothing"


CHILD = r"""
import json, os, subprocess, sys
sys.path.insert(0, sys.argv[1])
from snapshot import IgnoreList, Snapshotter
root, work = sys.argv[2], sys.argv[3]
os.makedirs(f"{root}/var/run/secrets", exist_ok=True)
os.makedirs(f"{root}/etc", exist_ok=True)
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", f"{root}/var/run/secrets"], check=True)
open(f"{root}/etc/hosts", "w").close()
subprocess.run(["mount", "--bind", "/etc/hostname", f"{root}/etc/hosts"], check=True)
open(f"{root}/var/run/secrets/token", "w").write("t")
ig = IgnoreList.from_system(root, kiln_dir=None)
snap = Snapshotter(root, ig, work)
snap.reindex()
open(f"{root}/var/run/secrets/token2", "w").write("t")
open(f"{root}/var/run/app.pid", "w").write("1")
layer = snap.snapshot()
import tarfile, gzip, io
names = [m.name for m in tarfile.open(fileobj=io.BytesIO(gzip.decompress(open(layer.path, "rb").read())))]
snap.wipe()
left = sorted(os.path.relpath(os.path.join(d, n), root) for d, ds, fs in os.walk(root) for n in ds + fs)
print(json.dumps({"ignored": sorted(ig.paths), "names": names, "left": left}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for mount namespaces")
def test_real_mounts_in_private_namespace(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", CHILD,
                          repo, str(root), str(work)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["ignored"] == ["etc/hosts", "var/run/secrets"]
    assert "var/run/app.pid" in res["names"]
    assert not any("secrets" in n or n == "etc/hosts" for n in res["names"])
    assert res["left"] == ["etc", "etc/hosts", "var", "var/run", "var/run/secrets", "var/run/secrets/token",
                           "var/run/secrets/token2"]

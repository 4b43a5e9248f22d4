"""RUN --mount on / without CAP_SYS_ADMIN (a Kubernetes pod's default): the mounts' content is placed in the root
for the command and taken out again (executor/run/placing.py), and nothing of it reaches a layer.

The container of test_production.py (kiln's driver as PID 1 on "/", which is the test's busybox root) is started
through ``setpriv --bounding-set=-sys_admin``, so kiln's try at a mount namespace fails as in a pod. Snapshots are
taken from the host between container runs, by the real Snapshotter over the same root (exact mode), with the
container's own mount points ignored as kiln's ignore list would.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import signal
import stat
import tarfile
import time

import pytest

from executor.run import Mount, RunError, RunSpec, run
from executor.run import placing, process
from snapshot import IgnoreList, Snapshotter
from tests.test_run.conftest import tree_listing, unique_number
from tests.test_run.test_production import in_container, leftovers, outputs, start_container

NO_SYS_ADMIN = "setpriv --bounding-set=-sys_admin --"
CANNOT_MOUNT = "kiln cannot mount here (setting up namespaces: unshare(mount): Operation not permitted)"
KILN = "/kaniko"                     # kiln's directory in the container's root: saves and caches live there
CONTAINER_MOUNTS = ["usr", "proc", "tmp", "dev", "kiln", "lib", "lib64"]   # made by test_production's CONTAINER
OLD = 1_600_000_000                  # a fixed past mtime (seconds)


def placed_run(root: str, script: str, mounts: list[dict], user: str = "", **spec) -> tuple[int, list[str]]:
    spec = {"mounts": mounts, "scratch_dir": f"{KILN}/run", **spec}
    return in_container(root, script, user, spec=spec, exec_prefix=NO_SYS_ADMIN)


def write(root: str, path: str, text: str, mode: int = 0o644, uid: int = 0, gid: int = 0) -> str:
    host = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(host), exist_ok=True)
    with open(host, "w") as f:
        f.write(text)
    os.chmod(host, mode)
    os.chown(host, uid, gid)
    return host


def read(root: str, path: str) -> str:
    with open(os.path.join(root, path.lstrip("/"))) as f:
        return f.read()


def age(root: str, *paths: str) -> None:
    """Give paths (and the root) an old mtime, so a changed mtime shows."""
    for p in (*paths, "/"):
        os.utime(os.path.join(root, p.lstrip("/")), (OLD, OLD), follow_symlinks=False)


def metadata(root: str) -> dict[str, tuple]:
    """Every path under root but kiln's dir and the container's mount points: type+mode, owner, size, mtime,
    inode, link target, content."""
    out = {}
    skip = {KILN.lstrip("/"), *CONTAINER_MOUNTS}
    for rel in sorted(tree_listing(root)):
        if rel.split("/")[0] in skip:
            continue
        host = os.path.join(root, rel)
        st = os.lstat(host)
        extra = os.readlink(host) if stat.S_ISLNK(st.st_mode) else None
        if stat.S_ISREG(st.st_mode):
            with open(host, "rb") as f:
                extra = f.read()
        out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ino, extra)
    return out


def snapshotter(root: str, work: str) -> Snapshotter:
    os.makedirs(work, exist_ok=True)
    for d in CONTAINER_MOUNTS[:5]:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    ignore = IgnoreList(root, [KILN, *CONTAINER_MOUNTS])
    snap = Snapshotter(root, ignore, work, compression="gzip", mode="exact")
    snap.reindex()
    return snap


def layer_names(snap: Snapshotter) -> list[str]:
    layer = snap.snapshot()
    if layer is None:
        return []
    with open(layer.path, "rb") as f:
        raw = gzip.decompress(f.read())
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return sorted(m.name.rstrip("/") for m in tar.getmembers())


def cache_dir(root: str, name: str = "c", uid: int = 0, gid: int = 0, mode: int = 0o755) -> str:
    host = os.path.join(root, KILN.lstrip("/"), "cache-mounts", name)
    os.makedirs(host)
    os.chmod(host, mode)
    os.chown(host, uid, gid)
    return f"{KILN}/cache-mounts/{name}"


def secret_file(root: str, text: str, mode: int = 0o400, uid: int = 0, gid: int = 0) -> str:
    path = f"{KILN}/run/secret-tok"
    write(root, path, text, mode, uid, gid)
    return path


# ---------------------------------------------------------------------------------------------- in a container

def test_every_mount_type_is_placed_and_taken_out_without_cap_sys_admin(bbroot):
    write(bbroot, "/srv/ro/token", "tok\n")
    cache = cache_dir(bbroot, uid=1000, gid=2000, mode=0o750)
    cache_inode = os.stat(os.path.join(bbroot, cache.lstrip("/"))).st_ino
    secret = secret_file(bbroot, "s3cr3t", mode=0o440, uid=1000, gid=50)
    write(bbroot, f"{KILN}/run/rw/data", "context\n")
    before = metadata(bbroot)
    mounts = [
        {"target": "/mnt/ro", "source": "/srv/ro", "readonly": True},
        {"target": "/var/cache/apt", "source": cache, "owned": True},
        {"target": "/scratch", "type": "tmpfs"},
        {"target": "/run/secrets/tok", "source": secret, "readonly": True, "owned": True},
        {"target": "/src", "source": f"{KILN}/run/rw", "owned": True},
    ]
    script = "; ".join([
        "cat /mnt/ro/token",
        "echo changed > /mnt/ro/token && echo ro-not-enforced",
        "stat -c '%a %u:%g' /var/cache/apt",
        "echo cached > /var/cache/apt/pkg",
        "echo s > /scratch/s && cat /scratch/s && stat -c '%a %u:%g' /scratch",
        "stat -c '%a %u:%g %s' /run/secrets/tok && cat /run/secrets/tok && echo",
        "echo rw >> /src/data && cat /src/data",
    ])
    rc, lines = placed_run(bbroot, script, mounts)
    assert rc == 0, lines
    assert outputs(lines) == ["tok", "ro-not-enforced", "750 1000:2000", "s", "1777 0:0", "440 1000:50 6", "s3cr3t",
                              "context", "rw"]
    assert any(CANNOT_MOUNT in line for line in lines), lines
    assert any("RUN wrote to its read-only mount /mnt/ro" in line for line in lines), lines
    assert leftovers(lines) == []
    # the root is as it was: no targets, no parents made for them, the sources untouched
    assert metadata(bbroot) == before
    for gone in ("mnt", "var", "scratch", "run", "src"):
        assert not os.path.lexists(os.path.join(bbroot, gone)), gone
    # the cache came back (same directory) with what the command wrote; the read-write bind's copy did not change
    assert os.stat(os.path.join(bbroot, cache.lstrip("/"))).st_ino == cache_inode
    assert read(bbroot, cache + "/pkg") == "cached\n"
    assert read(bbroot, f"{KILN}/run/rw/data") == "context\n" + "rw\n"  # kiln's copy: discarded with its scratch
    assert read(bbroot, secret) == "s3cr3t"
    assert [n for n in os.listdir(os.path.join(bbroot, "kaniko/run")) if n.startswith(("mounts-", "mount-probe-"))] == []


def test_cache_over_an_existing_directory_leaves_no_trace_in_the_layer(bbroot, tmp_path):
    """mount_over_existing on /: the target's own files are moved aside and back; the layers of the RUNs hold only
    what they wrote elsewhere, and the original shows again afterwards, unchanged."""
    write(bbroot, "/etc/app/conf", "original\n", mode=0o640, uid=1000, gid=2000)
    os.symlink("conf", os.path.join(bbroot, "etc/app/link"))
    age(bbroot, "/etc/app/conf", "/etc/app", "/etc")
    cache = cache_dir(bbroot)
    snap = snapshotter(bbroot, str(tmp_path / "layers"))
    time.sleep(0.06)           # past the snapshotter's racy window: only inode and ctime can tell
    before = metadata(bbroot)

    over = [{"target": "/etc/app", "source": cache, "owned": True}]
    rc, lines = placed_run(bbroot, "echo cached > /etc/app/conf && echo extra > /etc/app/extra && "
                                   "cat /etc/app/conf > /seen && ls -A /etc/app", over)
    assert rc == 0, lines
    assert outputs(lines) == ["conf", "extra"]
    assert layer_names(snap) == ["seen"]

    rc, lines = placed_run(bbroot, "cat /etc/app/extra > /second", over)
    assert rc == 0, lines
    assert layer_names(snap) == ["second"]
    assert read(bbroot, "/second") == "extra\n"

    rc, lines = placed_run(bbroot, "ls -A /etc/app > /in-tmpfs; stat -c %a /etc/app", [{"target": "/etc/app",
                                                                                         "type": "tmpfs"}])
    assert rc == 0, lines
    assert outputs(lines) == ["1777"]
    assert layer_names(snap) == ["in-tmpfs"]
    assert read(bbroot, "/in-tmpfs") == ""

    rc, lines = placed_run(bbroot, "cat /etc/app/conf", [])
    assert outputs(lines) == ["original"]
    assert layer_names(snap) == []
    after = metadata(bbroot)
    for new in ("seen", "second", "in-tmpfs"):
        after.pop(new)
    # the root directory's own mtime follows the new files; everything else is exactly as before
    assert after == before
    assert sorted(os.listdir(os.path.join(bbroot, cache.lstrip("/")))) == ["conf", "extra"]
    assert read(bbroot, cache + "/conf") == "cached\n"


def test_a_target_that_cannot_be_renamed_aside_is_copied_and_comes_back_whole(bbroot, tmp_path):
    """Without kiln's directory on the root's filesystem (here the save area is the container's tmpfs /tmp) the
    original is copied aside and back: its content, owners, modes and times come back exactly (new inodes, so the
    layer holds the directory again, with nothing of the cache)."""
    write(bbroot, "/etc/app/conf", "original\n", mode=0o4755, uid=1000, gid=2000)
    os.link(os.path.join(bbroot, "etc/app/conf"), os.path.join(bbroot, "etc/app/hard"))
    os.symlink("conf", os.path.join(bbroot, "etc/app/link"))
    os.mkfifo(os.path.join(bbroot, "etc/app/fifo"))
    os.setxattr(os.path.join(bbroot, "etc/app/conf"), "user.note", b"kept")
    age(bbroot, "/etc/app/conf", "/etc/app/fifo", "/etc/app", "/etc")
    cache = cache_dir(bbroot)
    snap = snapshotter(bbroot, str(tmp_path / "layers"))
    before = metadata(bbroot)
    rc, lines = placed_run(bbroot, "echo cached > /etc/app/conf && ls -A /etc/app",
                           [{"target": "/etc/app", "source": cache, "owned": True}], scratch_dir=None)
    assert rc == 0, lines
    assert outputs(lines) == ["conf"]
    assert any("/etc/app: it could not be moved aside in one piece" in line for line in lines), lines
    after = metadata(bbroot)
    assert set(after) == set(before)
    for rel, old in before.items():
        assert after[rel][:5] + after[rel][6:] == old[:5] + old[6:], rel        # all but the inode
    assert os.stat(os.path.join(bbroot, "etc/app/hard")).st_ino == os.stat(os.path.join(bbroot, "etc/app/conf")).st_ino
    assert os.getxattr(os.path.join(bbroot, "etc/app/conf"), "user.note") == b"kept"
    assert layer_names(snap) == ["etc", "etc/app", "etc/app/.wh..wh..opq", "etc/app/conf", "etc/app/fifo",
                                 "etc/app/hard", "etc/app/link"]
    assert read(bbroot, cache + "/conf") == "cached\n"


def test_a_failing_run_still_takes_everything_out(bbroot):
    write(bbroot, "/etc/app/conf", "original\n")
    cache = cache_dir(bbroot)
    secret = secret_file(bbroot, "s3cr3t")
    before = metadata(bbroot)
    rc, lines = placed_run(bbroot, "echo partial > /etc/app/new; cat /run/secrets/tok >/dev/null; exit 3",
                           [{"target": "/etc/app", "source": cache, "owned": True},
                            {"target": "/run/secrets/tok", "source": secret, "readonly": True, "owned": True},
                            {"target": "/tmp-like", "type": "tmpfs"}])
    assert rc == 1, lines
    assert "error: The command '/bin/sh -c echo partial > /etc/app/new; cat /run/secrets/tok >/dev/null; exit 3' " \
           "returned a non-zero code: 3" in lines
    assert metadata(bbroot) == before
    assert read(bbroot, cache + "/new") == "partial\n"


def test_sigterm_to_pid1_mid_run_takes_everything_out(bbroot):
    write(bbroot, "/etc/app/conf", "original\n")
    cache = cache_dir(bbroot)
    secret = secret_file(bbroot, "s3cr3t")
    before = metadata(bbroot)
    spec = {"mounts": [{"target": "/etc/app", "source": cache, "owned": True},
                       {"target": "/run/secrets/tok", "source": secret, "readonly": True, "owned": True},
                       {"target": "/scratch", "type": "tmpfs"}],
            "scratch_dir": f"{KILN}/run"}
    number = unique_number()
    proc = start_container(bbroot, f"echo before-signal > /etc/app/w; touch /scratch/x; touch /started; sleep {number}",
                           spec=spec, exec_prefix=NO_SYS_ADMIN)
    try:
        deadline = time.monotonic() + 15
        while not os.path.exists(os.path.join(bbroot, "started")):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[0]
            time.sleep(0.02)
        # the secret is in the root while the command runs (a file, as kaniko writes it)
        assert read(bbroot, "/run/secrets/tok") == "s3cr3t"
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            pid1_host_pid = int(f.read().split()[0])
        os.kill(pid1_host_pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = out.splitlines()
    assert proc.returncode == 128 + signal.SIGTERM, lines
    assert "cancelled" in lines and leftovers(lines) == []
    os.unlink(os.path.join(bbroot, "started"))
    assert metadata(bbroot) == before
    assert read(bbroot, cache + "/w") == "before-signal\n"


def test_sigkill_mid_run_leaves_what_a_wipe_removes(bbroot, tmp_path):
    """kiln killed outright cannot take anything out: the secret and the cache's content stay in the root, the
    original target in kiln's directory. Nothing of it lies where a wipe of the root (what the next build in the
    container does first: executor/engine/session.py, dirty_root) keeps things: it is all gone after one."""
    write(bbroot, "/etc/app/conf", "original\n")
    cache = cache_dir(bbroot)
    secret = secret_file(bbroot, "s3cr3t")
    spec = {"mounts": [{"target": "/etc/app", "source": cache, "owned": True},
                       {"target": "/run/secrets/tok", "source": secret, "readonly": True, "owned": True}],
            "scratch_dir": f"{KILN}/run"}
    proc = start_container(bbroot, f"touch /started; sleep {unique_number()}", spec=spec, exec_prefix=NO_SYS_ADMIN)
    try:
        deadline = time.monotonic() + 15
        while not os.path.exists(os.path.join(bbroot, "started")):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[0]
            time.sleep(0.02)
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            pid1_host_pid = int(f.read().split()[0])
        os.kill(pid1_host_pid, signal.SIGKILL)
        proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert read(bbroot, "/run/secrets/tok") == "s3cr3t"
    assert not os.path.exists(os.path.join(bbroot, "etc/app/conf"))
    snapshotter(bbroot, str(tmp_path / "layers")).wipe()
    assert sorted(os.listdir(bbroot)) == sorted(d for d in [KILN.lstrip("/"), *CONTAINER_MOUNTS]
                                                if os.path.lexists(os.path.join(bbroot, d)))


def test_network_none_still_needs_cap_sys_admin_and_the_mounts_are_taken_out(bbroot):
    """A RUN --network=none needs a network namespace, which has no stand-in: the message names it (not RUN --mount),
    and the mounts placed for the command are taken out again."""
    cache = cache_dir(bbroot)
    before = metadata(bbroot)
    rc, lines = placed_run(bbroot, "echo ran", [{"target": "/var/cache/apt", "source": cache, "owned": True}],
                           network="none")
    assert rc == 1, lines
    (error,) = [line for line in lines if line.startswith("error: ")]
    assert "could not be started: setting up namespaces: unshare(net): Operation not permitted " \
           "(RUN --network=none on / needs namespaces of its own, and creating them needs CAP_SYS_ADMIN" in error, error
    assert "RUN --mount" not in error
    assert outputs(lines) == [] and leftovers(lines) == []
    assert metadata(bbroot) == before


def test_a_mount_point_cannot_be_a_placed_target(bbroot):
    """/dev is a mount of the container: it cannot be moved aside, and kiln says so instead of running the command
    with the container's /dev in kiln's scratch directory."""
    rc, lines = placed_run(bbroot, "echo ran", [{"target": "/dev", "type": "tmpfs"}])
    assert rc == 1, lines
    (error,) = [line for line in lines if line.startswith("error: ")]
    assert "cannot put RUN --mount content at /dev: /dev is a mount point of kiln's container there" in error, error
    assert outputs(lines) == []


def test_a_working_directory_hidden_by_a_placed_mount_is_named(bbroot):
    """A mount over a parent of the working directory hides it, as a real mount would (runc: "chdir to cwd ...
    no such file or directory"); kiln names the directory rather than the executable."""
    rc, lines = placed_run(bbroot, "pwd", [{"target": "/app", "type": "tmpfs"}], workdir="/app/sub")
    assert rc == 1, lines
    (error,) = [line for line in lines if line.startswith("error: ")]
    assert error == "error: The command '/bin/sh -c pwd' could not be started: chdir to the working directory " \
                    "/app/sub: no such file or directory", error
    assert os.path.isdir(os.path.join(bbroot, "app/sub"))     # made for the RUN, kept (as docker keeps it)


# ---------------------------------------------------------------------------------------------- in a scratch root

def test_a_scratch_root_can_place_too_and_still_mounts_under_dev(bbroot, tmp_path):
    """mounts_by="place" in a scratch root (chrooted in namespaces of its own): user mounts are placed, except under
    /dev, /proc and /sys, which the helper mounts over the root (a placed /dev/pipes would be hidden)."""
    scripts = tmp_path / "pipes"
    scripts.mkdir()
    (scripts / "s.sh").write_text("#!/bin/sh\necho script-ran\n")
    os.chmod(scripts / "s.sh", 0o755)
    cache = tmp_path / "cache"
    cache.mkdir()
    lines: list[str] = []
    run(RunSpec(root=bbroot, argv=["/bin/sh", "-c", "/dev/pipes/s.sh; echo x > /c/f; grep -c ' /c ' /proc/self/mountinfo"
                                                 "; grep -c ' /dev/pipes ' /proc/self/mountinfo"],
                env={}, mounts=[Mount("/dev/pipes", source=str(scripts), readonly=True, owned=True),
                                Mount("/c", source=str(cache), owned=True)],
                mounts_by="place", scratch_dir=str(tmp_path / "scratch"), output=lines.append))
    assert lines[0] == "script-ran"
    assert lines[1:] == ["0", "1"]      # /c placed (no mount), /dev/pipes mounted
    assert (cache / "f").read_text() == "x\n"
    assert not os.path.lexists(os.path.join(bbroot, "c"))


def test_the_same_cache_twice_second_target_sees_a_copy(bbroot, tmp_path):
    """One source at two targets cannot be renamed onto both: the first gets the cache (writes kept, as a mount),
    the second a copy of it (writes discarded, the one difference from two mounts of one directory)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "seed").write_text("s\n")
    lines: list[str] = []
    run(RunSpec(root=bbroot, argv=["/bin/sh", "-c", "cat /b/seed; echo a > /a/new; echo b > /b/new; ls /a /b"],
                env={}, mounts=[Mount("/a", source=str(cache), owned=True), Mount("/b", source=str(cache), owned=True)],
                mounts_by="place", scratch_dir=str(tmp_path / "scratch"), output=lines.append))
    assert lines == ["s", "/a:", "new", "seed", "", "/b:", "new", "seed"]
    assert sorted(os.listdir(cache)) == ["new", "seed"] and (cache / "new").read_text() == "a\n"
    assert not os.path.lexists(os.path.join(bbroot, "a")) and not os.path.lexists(os.path.join(bbroot, "b"))
    with pytest.raises(RunError, match="cannot mount .* on /a/in: the target lies inside the source"):
        run(RunSpec(root=bbroot, argv=["true"], env={}, mounts_by="place", scratch_dir=str(tmp_path / "scratch"),
                    mounts=[Mount("/a", source=str(cache), owned=True), Mount("/a/in", source=str(cache))]))
    assert sorted(os.listdir(cache)) == ["new", "seed"]          # the first mount was taken out again
    assert not os.path.lexists(os.path.join(bbroot, "a"))


def test_the_mount_probe_says_yes_where_mounts_work(tmp_path, monkeypatch):
    """This machine's root has CAP_SYS_ADMIN: the probe mounts in a namespace of its own and says so (the "no" is
    what the container tests above see); it leaves nothing behind and is asked once per process."""
    monkeypatch.setattr(process, "_mounts_work", None)
    assert process.mounts_available(str(tmp_path / "scratch")) == (True, "")
    assert os.listdir(tmp_path / "scratch") == []
    monkeypatch.setattr(process, "_spawn_helper", lambda *a: pytest.fail("probed twice"))
    assert process.mounts_available(str(tmp_path / "scratch")) == (True, "")


def test_unknown_way_of_mounting_is_refused(bbroot):
    with pytest.raises(RunError, match="unsupported way of mounting 'bind': use one of auto, mount, place"):
        run(RunSpec(root=bbroot, argv=["true"], env={}, mounts_by="bind"))


# ---------------------------------------------------------------------------------------------- the tree helpers

def test_copy_tree_keeps_owners_modes_times_links_nodes_and_xattrs(tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    f = src / "d" / "f"
    f.write_text("data")
    os.chown(f, 1000, 2000)
    os.chmod(f, 0o4750)
    os.setxattr(f, "user.k", b"v")
    os.link(f, src / "hard")
    os.symlink("d/f", src / "link")
    os.lchown(src / "link", 3000, 3000)
    os.mkfifo(src / "fifo", 0o600)
    os.utime(f, ns=(1, 1_000_000_123))
    os.utime(src / "link", ns=(2, 2_000_000_456), follow_symlinks=False)
    os.chmod(src / "d", 0o700)
    os.utime(src / "d", ns=(3, 3_000_000_789))
    placing.copy_tree(str(src), str(tmp_path / "dst"))

    def table(root):
        out = {}
        for rel in sorted(tree_listing(str(root))):
            st = os.lstat(os.path.join(root, rel))
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_nlink)
        return out
    assert table(tmp_path / "dst") == table(src)
    dst = tmp_path / "dst"
    assert os.stat(dst / "hard").st_ino == os.stat(dst / "d" / "f").st_ino != os.stat(f).st_ino
    assert os.getxattr(dst / "d" / "f", "user.k") == b"v"
    assert os.readlink(dst / "link") == "d/f"


def test_move_across_filesystems_copies_and_removes(tmp_path):
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a filesystem of its own")
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("x")
    os.chown(src / "sub" / "f", 1000, 1000)
    dst = os.path.join("/dev/shm", f"kiln-move-{unique_number()}")
    try:
        with pytest.raises(OSError) as direct:
            os.rename(src, dst)
        assert direct.value.errno == errno.EXDEV
        assert placing.move(str(src), dst) is False
        assert not src.exists()
        assert open(os.path.join(dst, "sub", "f")).read() == "x"
        assert os.stat(os.path.join(dst, "sub", "f")).st_uid == 1000
        assert placing.move(dst, str(src)) is False
        assert (src / "sub" / "f").read_text() == "x"
    finally:
        placing.remove_path(dst)
    with pytest.raises(FileExistsError):
        placing.move(str(src), str(tmp_path))

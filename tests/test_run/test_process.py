"""run() in development mode (root != "/"): chroot in fresh namespaces, against a busybox root."""

from __future__ import annotations

import os
import time

import pytest

from executor.run import Mount, RunError, RunSpec, UserError, run
from tests.test_run.conftest import mountinfo_mentions, processes_with, tree_listing, unique_number


def sh(root: str, script: str, **kwargs) -> list[str]:
    """Run a shell script in the root and return its output lines."""
    lines: list[str] = []
    kwargs.setdefault("env", {})
    run(RunSpec(root=root, argv=["/bin/sh", "-c", script], output=lines.append, **kwargs))
    return lines


def test_user_by_name_gets_uid_gid_groups_and_home(bbroot):
    out = sh(bbroot, 'id -u; id -g; id -G; echo "$HOME"; id -un; grep ^Groups: /proc/self/status', user="app")
    assert out[:5] == ["1000", "1000", "1000 2000", "/home/app", "app"]
    # the primary gid and the groups listing app, as BuildKit gives runc (ensureAdditionalGids)
    assert out[5].split() == ["Groups:", "1000", "2000"]


def test_user_and_group_by_name(bbroot):
    out = sh(bbroot, "id -u; id -g; id -G; grep ^Groups: /proc/self/status", user="app:staff")
    assert out[:3] == ["1000", "3000", "3000"]
    assert out[3].split() == ["Groups:", "3000"]  # explicit group: that group alone


def test_numeric_user_unknown_to_passwd(bbroot):
    assert sh(bbroot, 'id -u; id -g; echo "$HOME"', user="4242") == ["4242", "0", "/"]
    assert sh(bbroot, "id -u; id -g", user="4242:4343") == ["4242", "4343"]


def test_root_by_default_with_roots_home(bbroot):
    assert sh(bbroot, 'id -u; id -g; echo "$HOME"') == ["0", "0", "/root"]


def test_unknown_user_fails_with_dockers_message(bbroot):
    with pytest.raises(UserError) as info:
        sh(bbroot, "true", user="ghost")
    assert str(info.value) == ("The command '/bin/sh -c true' could not be started: "
                               "unable to find user ghost: no matching entries in passwd file")
    assert info.value.exit_code is None


def test_env_and_workdir_are_honoured(bbroot):
    before = tree_listing(bbroot)
    out = sh(bbroot, 'pwd; echo "$FOO|$EMPTY|$PATH"; echo "$HOME"', env={"FOO": "a b", "EMPTY": "", "HOME": "/custom"},
             workdir="/srv/app")
    assert out == ["/srv/app", "a b||/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "/custom"]
    # the working directory is created and kept, as docker does (it belongs to the layer)
    assert tree_listing(bbroot) - before == {"srv", "srv/app"}


def test_explicit_path_is_used_for_lookup(bbroot):
    os.makedirs(os.path.join(bbroot, "opt", "tools"))
    tool = os.path.join(bbroot, "opt", "tools", "hello")
    with open(tool, "w") as f:
        f.write("#!/bin/sh\necho hello from tools\n")
    os.chmod(tool, 0o755)
    lines: list[str] = []
    run(RunSpec(root=bbroot, argv=["hello"], env={"PATH": "/opt/tools:/bin"}, output=lines.append))
    assert lines == ["hello from tools"]


def test_non_zero_exit_raises_with_dockers_message(bbroot):
    with pytest.raises(RunError) as info:
        sh(bbroot, "echo before; exit 7")
    assert str(info.value) == "The command '/bin/sh -c echo before; exit 7' returned a non-zero code: 7"
    assert info.value.exit_code == 7


def test_unknown_executable(bbroot):
    with pytest.raises(RunError, match='exec: "no-such-tool": executable file not found in \\$PATH'):
        run(RunSpec(root=bbroot, argv=["no-such-tool"], env={}))


def test_background_process_is_gone_after_run(bbroot):
    marker = unique_number()
    start = time.monotonic()
    out = sh(bbroot, f"sleep {marker} & sleep {marker}1 </dev/null >/dev/null 2>&1 & echo started")
    assert out == ["started"]
    # the sleeps would last years: a hang guard, 60x the 0.03-0.08 s measured here (load average 6)
    assert time.monotonic() - start < 5
    assert processes_with(f"sleep {marker}") == []


def test_proc_dev_sys_and_host_files_inside_then_nothing_left(bbroot):
    """The RUN sees /proc, /dev and /sys, and the mount points made for it are gone afterwards: kiln, like
    kaniko, leaves no runtime mount point in a layer, where docker build keeps /dev, /proc and /sys when
    the image lacked them (issue 20 reproduction 5; the decision is in docs/differences.md, the parity
    rule _runtime_mount_point accepts exactly those three empty directories)."""
    before = tree_listing(bbroot)
    out = sh(bbroot, "\n".join([
        "cat /proc/1/comm",                        # a fresh /proc: the command is PID 1
        "echo discard > /dev/null && echo null-ok",
        "head -c 16 /dev/urandom | wc -c",
        "head -c 3 /dev/zero | wc -c",
        "test -c /dev/full && test -d /dev/pts && test -d /dev/shm && echo dev-ok",
        "echo shm > /dev/shm/x && cat /dev/shm/x",
        "touch /sys/x 2>/dev/null || echo sys-ro",
        "ls /sys/kernel >/dev/null && echo sys-ok",
        "cat /etc/resolv.conf",
        "echo hacked >> /etc/resolv.conf",        # a private copy: neither host nor image changes
        "grep -c . /etc/hosts >/dev/null && echo hosts-ok",
    ]))
    with open("/etc/resolv.conf") as f:
        host_resolv = f.read().splitlines()
    assert out[:8] == ["sh", "null-ok", "16", "3", "dev-ok", "shm", "sys-ro", "sys-ok"]
    assert out[8:8 + len(host_resolv)] == host_resolv
    assert out[-1] == "hosts-ok"
    assert tree_listing(bbroot) == before  # no proc/, dev/, sys/, etc/resolv.conf, etc/hosts left
    assert mountinfo_mentions(bbroot) == []
    with open("/etc/resolv.conf") as f:
        assert "hacked" not in f.read()


def test_existing_mount_points_and_files_are_kept_untouched(bbroot):
    for d in ("proc", "dev", "sys"):
        os.mkdir(os.path.join(bbroot, d))
    with open(os.path.join(bbroot, "etc", "hosts"), "w") as f:
        f.write("127.0.0.1 image-hosts\n")
    before = tree_listing(bbroot)
    sh(bbroot, "echo x >> /etc/hosts; ls /proc/self >/dev/null")
    assert tree_listing(bbroot) == before
    with open(os.path.join(bbroot, "etc", "hosts")) as f:
        assert f.read() == "127.0.0.1 image-hosts\n"
    assert mountinfo_mentions(bbroot) == []


def test_symlinked_resolv_conf_resolves_inside_the_root(bbroot):
    # Ubuntu-style absolute symlink to a file that does not exist in the image
    os.symlink("/run/systemd/resolve/stub-resolv.conf", os.path.join(bbroot, "etc", "resolv.conf"))
    host_had_it = os.path.lexists("/run/systemd/resolve")
    before = tree_listing(bbroot)
    out = sh(bbroot, "cat /etc/resolv.conf")
    with open("/etc/resolv.conf") as f:
        assert out == f.read().splitlines()
    assert tree_listing(bbroot) == before  # run/systemd/resolve/... created for the mount, then removed
    assert os.path.islink(os.path.join(bbroot, "etc", "resolv.conf"))
    assert os.path.lexists("/run/systemd/resolve") == host_had_it  # the host was never touched


def test_bind_mounts_ro_and_rw_and_tmpfs(bbroot, tmp_path):
    ro_src = tmp_path / "ro"
    rw_src = tmp_path / "rw"
    ro_src.mkdir()
    rw_src.mkdir()
    (ro_src / "data").write_text("secret\n")
    before = tree_listing(bbroot)
    out = sh(bbroot, "\n".join([
        "cat /run/ro/data",
        "{ echo nope > /run/ro/data; } 2>/dev/null || echo ro-refused",
        "touch /run/ro/new 2>/dev/null || echo ro-create-refused",
        "echo cached > /cache/file && echo rw-ok",
        "echo t > /scratch/t && cat /scratch/t",
    ]), mounts=[
        Mount(target="/run/ro", source=str(ro_src), readonly=True),
        Mount(target="/cache", source=str(rw_src)),
        Mount(target="/scratch", type="tmpfs", size=1 << 20),
    ])
    assert out == ["secret", "ro-refused", "ro-create-refused", "rw-ok", "t"]
    assert (ro_src / "data").read_text() == "secret\n"
    assert (rw_src / "file").read_text() == "cached\n"
    assert tree_listing(bbroot) == before  # /run, /run/ro, /cache, /scratch removed again
    assert mountinfo_mentions(bbroot) == []


def test_file_bind_mount_for_a_secret(bbroot, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("s3cr3t")
    before = tree_listing(bbroot)
    out = sh(bbroot, "cat /run/secrets/token; echo", mounts=[
        Mount(target="/run/secrets/token", source=str(secret), readonly=True)])
    assert out == ["s3cr3t"]
    assert tree_listing(bbroot) == before


def test_created_mount_dir_kept_when_command_wrote_beside_it(bbroot, tmp_path):
    src = tmp_path / "c"
    src.mkdir()
    sh(bbroot, "echo keep > /data/kept.txt", mounts=[Mount(target="/data/cache", source=str(src))])
    # /data was created for the mount, but now holds the command's file: it stays, the stub goes
    assert os.listdir(os.path.join(bbroot, "data")) == ["kept.txt"]


def test_hostname_and_network_none(bbroot):
    out = sh(bbroot, "hostname; ls /sys/class/net", hostname="kiln-test", network="none")
    assert out == ["kiln-test", "lo"]
    out = sh(bbroot, "cat /sys/class/net/lo/operstate; ping -c1 -W1 127.0.0.1 >/dev/null && echo lo-up",
             network="none")
    assert out[-1] == "lo-up"


def test_output_lines_and_partial_last_line(bbroot):
    assert sh(bbroot, "printf 'a\\nb\\r\\nc'; echo err >&2") == ["a", "b", "cerr"]


def test_setup_failure_is_reported(bbroot):
    with open(os.path.join(bbroot, "file"), "w") as f:
        f.write("x")
    with pytest.raises(RunError, match="not a directory"):
        sh(bbroot, "true", mounts=[Mount(target="/file/sub", type="tmpfs")])


def test_umask_is_dockers_whatever_kilns_is(bbroot):
    old = os.umask(0o077)
    try:
        out = sh(bbroot, "umask; touch /f; stat -c %a /f")
    finally:
        os.umask(old)
    assert out == ["0022", "644"]


def test_bind_mount_under_dev_as_heredoc_scripts_use(bbroot, tmp_path):
    scripts = tmp_path / "pipes"
    scripts.mkdir()
    (scripts / "EOT").write_text("#!/bin/sh\necho from heredoc script\n")
    (scripts / "EOT").chmod(0o755)
    before = tree_listing(bbroot)
    lines: list[str] = []
    run(RunSpec(root=bbroot, argv=["/dev/pipes/EOT"], env={}, output=lines.append,
                mounts=[Mount(target="/dev/pipes", source=str(scripts), readonly=True)]))
    assert lines == ["from heredoc script"]
    assert tree_listing(bbroot) == before
    assert mountinfo_mentions(bbroot) == []


def test_directories_holding_removed_mount_points_keep_their_mtime(bbroot, tmp_path):
    # /proc, /dev, /sys, /etc/resolv.conf, /etc/hosts and /cache are created for the command and
    # removed again: the root and /etc must look untouched to a snapshot comparing mtimes
    os.utime(bbroot, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    os.utime(os.path.join(bbroot, "etc"), ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    src = tmp_path / "cache"
    src.mkdir()
    sh(bbroot, "true", mounts=[Mount(target="/cache", source=str(src))])
    assert os.stat(bbroot).st_mtime_ns == 1_000_000_000_000_000_000
    assert os.stat(os.path.join(bbroot, "etc")).st_mtime_ns == 1_000_000_000_000_000_000
    # a command that does change the root keeps the new mtime
    sh(bbroot, "touch /new-file")
    assert os.stat(bbroot).st_mtime_ns != 1_000_000_000_000_000_000


def test_command_killed_from_outside_is_reported_as_a_signal(bbroot):
    # as the OOM killer would: SIGKILL to the command (PID 1 of its namespace) from outside
    n = unique_number()

    def kill_when_ready(line: str) -> None:
        if line == "ready":
            # busybox sh may already have exec'd its last command: the command is then `sleep N` itself
            for entry in processes_with(f"/bin/sh -c echo ready; sleep {n}") + processes_with(f"sleep {n}"):
                try:
                    os.kill(int(entry.split(":")[0]), 9)
                except ProcessLookupError:   # the shell was PID 1 of its namespace: its death took sleep along
                    pass

    with pytest.raises(RunError) as info:
        run(RunSpec(root=bbroot, argv=["/bin/sh", "-c", f"echo ready; sleep {n}"], env={}, output=kill_when_ready))
    assert str(info.value) == f"The command '/bin/sh -c echo ready; sleep {n}' was killed by signal 9 (SIGKILL)"
    assert info.value.signal == 9 and info.value.exit_code is None
    assert processes_with(f"sleep {n}") == []

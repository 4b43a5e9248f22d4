"""A small busybox root for RUN tests: /bin/busybox from busybox-static, applet symlinks, and its own
/etc/passwd and /etc/group (root, nobody, app 1000:1000 in the supplementary group ``extra``)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess

import pytest

BUSYBOX = shutil.which("busybox") or "/bin/busybox"

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000:App User:/home/app:/bin/sh
"""

GROUP = """\
root:x:0:
nogroup:x:65534:
app:x:1000:
extra:x:2000:other,app
staff:x:3000:someoneelse
"""


def make_busybox_root(path: str) -> str:
    os.makedirs(os.path.join(path, "bin"))
    os.makedirs(os.path.join(path, "etc"))
    os.makedirs(os.path.join(path, "root"), mode=0o700)
    os.makedirs(os.path.join(path, "home", "app"))
    os.chown(os.path.join(path, "home", "app"), 1000, 1000)
    shutil.copy2(BUSYBOX, os.path.join(path, "bin", "busybox"))
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", os.path.join(path, "bin", applet))
    with open(os.path.join(path, "etc", "passwd"), "w") as f:
        f.write(PASSWD)
    with open(os.path.join(path, "etc", "group"), "w") as f:
        f.write(GROUP)
    return path


@pytest.fixture(scope="session")
def busybox_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed")
    return make_busybox_root(str(tmp_path_factory.mktemp("bbtemplate") / "root"))


@pytest.fixture
def bbroot(busybox_template: str, tmp_path) -> str:
    """A fresh copy of the busybox root for one test."""
    dest = str(tmp_path / "root")

    def link_busybox(src: str, dst: str) -> None:
        # the 2 MB binary is shared (read-only use); everything else is a real copy
        if os.path.basename(src) == "busybox":
            try:
                os.link(src, dst)
                return
            except OSError:
                pass
        shutil.copy2(src, dst)

    shutil.copytree(busybox_template, dest, symlinks=True, copy_function=link_busybox)
    return dest


def tree_listing(root: str) -> set[str]:
    """Every path under root (relative), to compare before/after a RUN."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), root))
    return found


def mountinfo_mentions(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if path in line]


def unique_number() -> str:
    """A number for ``sleep N`` that no other test (or concurrent test session) uses."""
    return str(random.SystemRandom().randrange(10**8, 10**9))


def processes_with(prefix: str) -> list[str]:
    """Processes on the host whose command line starts with ``prefix`` (e.g. "sleep 123")."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith(prefix):
            found.append(f"{entry}: {cmd}")
    return found

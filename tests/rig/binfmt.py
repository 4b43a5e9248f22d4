"""QEMU user emulation for the multi-platform tests: binfmt_misc mounted and a handler with the F flag for each
foreign architecture, registered from Debian's qemu-user-static as `update-binfmts` would (its
/usr/share/binfmts/qemu-<arch> entries give the magic and mask). Needs root; the registration is the kernel's,
so it outlives the test run (as on a build node with the tonistiigi/binfmt DaemonSet)."""
from __future__ import annotations

import os
import subprocess

BINFMT = "/proc/sys/fs/binfmt_misc"


def _entry(qemu: str) -> dict[str, str]:
    path = f"/usr/share/binfmts/qemu-{qemu}"
    if not os.path.isfile(path):
        raise RuntimeError(f"{path} is missing: scripts/setup.sh installs qemu-user-static")
    fields = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.strip().partition(" ")
            fields[key] = value
    return fields


def ensure_emulation(qemu: str = "aarch64") -> str:
    """Make the kernel run `qemu` (QEMU's architecture name) binaries through qemu-<qemu>-static with the F
    flag; returns the handler's name."""
    if not os.path.isfile(os.path.join(BINFMT, "status")):
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", BINFMT], check=True, capture_output=True)
    name = f"qemu-{qemu}"
    entry = os.path.join(BINFMT, name)
    if os.path.exists(entry):
        with open(entry) as f:
            text = f.read()
        if "enabled" in text.split() and any(line.startswith("flags:") and "F" in line for line in text.splitlines()):
            return name
        with open(entry, "w") as f:       # registered without F (or disabled): replace it
            f.write("-1")
    fields = _entry(qemu)
    interpreter = f"/usr/bin/qemu-{qemu}-static"
    if not os.access(interpreter, os.X_OK):
        raise RuntimeError(f"{interpreter} is missing: scripts/setup.sh installs qemu-user-static")
    rule = f":{name}:M:{fields.get('offset', '0')}:{fields['magic']}:{fields['mask']}:{interpreter}:F"
    with open(os.path.join(BINFMT, "register"), "w") as f:
        f.write(rule)
    return name

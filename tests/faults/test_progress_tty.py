"""Progress in a real terminal (issue 13): kiln runs in a tmux pane while a base layer comes over a slow link
(the fault proxy sends it at 1 MiB/s); the screen captured mid-pull shows the layer's byte count moving, with
its total, rate and ETA; at the end the pane holds the summary table."""
from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
import time

import pytest

from executor.image.config import HistoryEntry
from executor.registry import RegistryClient, RegistryOptions
from tests.faults.conftest import kiln_argv, kiln_env, random_layer
from tests.rig.sandbox import sandbox_argv

pytestmark = pytest.mark.slow

LAYER_SIZE = 6 << 20
RATE = 1 << 20
PULL_LINE = re.compile(r"=> pull (\w{12})\s+([\d.]+) (B|KiB|MiB) / ([\d.]+) MiB\s+[\d.]+ \w+/s(?:\s+ETA \S+)?")
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20}


def _tmux(socket: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=30)


def test_terminal_shows_a_moving_byte_count_mid_pull(plain_registry, plain_proxy, base_images, tmp_path):
    client = RegistryClient(RegistryOptions(insecure_registries=[plain_registry.host]), blob_dir=str(tmp_path / "b"))
    image = client.pull(base_images.busybox_amd64, fetch_layers=True).copy()
    image.raw_manifest = None
    big = random_layer(str(tmp_path), LAYER_SIZE)
    image.append_layer(big, HistoryEntry(created_by="progress test: a big random layer"))
    client.push(image, [plain_registry.ref("progress/big:1")])
    client.close()
    plain_proxy.add("throttle", method="GET", path=f"/blobs/{big.digest}", rate=RATE, times=None)

    ctx, root, kdir = (str(tmp_path / n) for n in ("ctx", "root", "kaniko"))
    for d in (ctx, root, kdir):
        os.makedirs(d)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(f"FROM {plain_proxy.ref('progress/big:1')}\nRUN ls /random.bin\n")
    argv = sandbox_argv(kiln_argv(ctx, root, kdir, "--no-push", "--insecure-registry", plain_proxy.host),
                        [ctx, root, kdir])
    env = kiln_env()
    command = "env " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items() if k in (
        "PYTHONPATH", "PATH", "PYTHONDONTWRITEBYTECODE")) + " " + shlex.join(argv) + "; echo KILN-EXIT=$?; sleep 600"
    socket = f"kiln-progress-{secrets.token_hex(4)}"
    started = _tmux(socket, "new-session", "-d", "-s", "kiln", "-x", "160", "-y", "40", command)
    assert started.returncode == 0, started.stderr
    try:
        seen: list[int] = []
        screens: list[str] = []
        deadline = time.monotonic() + 120
        final = ""
        while time.monotonic() < deadline:
            screen = _tmux(socket, "capture-pane", "-p", "-t", "kiln").stdout
            for m in PULL_LINE.finditer(screen):
                if m.group(1) == big.digest.split(":")[1][:12]:
                    done = int(float(m.group(2)) * UNITS[m.group(3)])
                    if not seen or done != seen[-1]:
                        seen.append(done)
                        screens.append(screen)
            if "KILN-EXIT=" in screen:
                final = _tmux(socket, "capture-pane", "-p", "-S", "-200", "-t", "kiln").stdout
                break
            time.sleep(0.3)
    finally:
        _tmux(socket, "kill-server")
    assert "KILN-EXIT=0" in final, final[-3000:]
    mid = [n for n in seen if 0 < n < LAYER_SIZE]
    assert len(mid) >= 3 and mid == sorted(mid), (seen, screens[-1:] or final[-2000:])
    assert f"/ {LAYER_SIZE / (1 << 20):.1f} MiB" in screens[len(screens) // 2]
    assert re.search(r"\[\+\] Building [\d.]+s \(0/1\)", screens[len(screens) // 2])
    # the live area is gone at the end; the summary table and each step's line stay
    assert "=> pull" not in final.split("KILN-EXIT")[0].splitlines()[-3]
    assert re.search(r"^#\s+STAGE\s+INSTRUCTION\s+TIME\s+CACHE\s+LAYER\s+SIZE$", final, re.M)
    assert re.search(r"=> #1 RUN ls /random.bin\s+[\d.]+s", final)

"""Builds examples/hello end to end on this machine: a local registry on 127.0.0.1, a busybox base image
made from Debian's busybox-static with tar + umoci + skopeo, then kiln's executor on a scratch root, and
skopeo to show the result. Everything it starts is stopped before it returns."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.rig.images import make_base_images  # noqa: E402
from tests.rig.registry import start_registry  # noqa: E402


def main() -> int:
    work = tempfile.mkdtemp(prefix="kiln-example-")
    running = start_registry("plain", os.path.join(work, "registry"))
    try:
        registry = running.registry
        print(f"registry on {registry.host}", flush=True)
        base = make_base_images(registry, os.path.join(work, "images")).busybox_index
        print(f"base image {base}", flush=True)
        root, kdir = os.path.join(work, "root"), os.path.join(work, "kaniko")
        os.makedirs(root)
        dest = f"{registry.host}/examples/hello:latest"
        cmd = [sys.executable, "-m", "executor", "--context", os.path.join(REPO, "examples", "hello"),
               "--build-arg", f"BASE={base}", "--destination", dest, "--insecure-registry", registry.host,
               "--root", root, "--kaniko-dir", kdir, "--digest-file", os.path.join(work, "digest")]
        print("$ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO})
        inspect = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{dest}"],
                                 check=True, capture_output=True, text=True)
        info = json.loads(inspect.stdout)
        print(f"built {dest}@{open(os.path.join(work, 'digest')).read()}")
        print(f"layers: {len(info['Layers'])}, labels: {info['Labels']}")
        return 0
    finally:
        running.stop()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    sys.exit(main())

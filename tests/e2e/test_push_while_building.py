"""Issue 17 item 1: each layer of the result goes to the destination while the next steps run. A later RUN of the
same build waits until the registry holds the first step's layer: it can only finish if that layer was pushed
while the build was still running (before, blobs went up only after the last step). No timing is asserted: the
RUN polls the registry, and fails after two minutes without the blob."""
from __future__ import annotations

import json
import subprocess
import uuid

from tests.rig.judge import judge_registry_image

WAIT = """\
FROM {base}
COPY data.bin /data.bin
ARG DIGEST=none
RUN i=0; until wget -q -O /dev/null "http://{host}/v2/{repo}/blobs/$DIGEST"; do \\
      i=$((i+1)); [ $i -lt 1200 ] || {{ echo "layer $DIGEST never reached the registry"; exit 1; }}; sleep 0.1; \\
    done; echo "LAYER-SEEN-WHILE-BUILDING $i"
"""


def test_a_layer_reaches_the_registry_before_the_build_ends(kiln, base_images, plain_registry):
    data = bytes(range(256)) * 4096       # 1 MiB
    first_repo = f"early/probe-{uuid.uuid4().hex[:8]}"
    # 1. learn the COPY layer's digest (--reproducible: the same bytes in any build of this context)
    ctx = kiln.context({"Dockerfile": f"FROM {base_images.busybox_amd64}\nCOPY data.bin /data.bin\n",
                        "data.bin": data})
    kiln.build(ctx, "--destination", f"{plain_registry.host}/{first_repo}:1", "--insecure-registry",
               plain_registry.host, "--reproducible").check()
    raw = subprocess.run(["skopeo", "inspect", "--raw", *plain_registry.skopeo_args(""),
                          f"docker://{plain_registry.host}/{first_repo}:1"], capture_output=True, check=True).stdout
    digest = json.loads(raw)["layers"][1]["digest"]
    # 2. a build into a fresh repository whose RUN needs that layer there already
    repo = f"early/app-{uuid.uuid4().hex[:8]}"
    ctx2 = kiln.context({"Dockerfile": WAIT.format(base=base_images.busybox_amd64, host=plain_registry.host,
                                                   repo=repo), "data.bin": data})
    run = kiln.build(ctx2, "--destination", f"{plain_registry.host}/{repo}:1", "--insecure-registry",
                     plain_registry.host, "--reproducible", "--build-arg", f"DIGEST={digest}").check()
    assert "LAYER-SEEN-WHILE-BUILDING" in run.stderr, run.stderr[-3000:]
    assert "while building: " in run.stderr
    report = judge_registry_image(plain_registry, f"{plain_registry.host}/{repo}:1")
    assert report.layers[1].digest == digest and report.read("data.bin") == data

"""A stand-in for the build loop, run as its own process by the tests: supervises one RUN.

    python driver.py ROOT SCRIPT [USER]

KILN_TEST_SIDECAR=1 starts, while the RUN runs, a child of kiln's own (as a credential helper
would be) and reports whether it survived the RUN's teardown. KILN_TEST_SPEC may hold JSON with more RunSpec fields (mounts as a list of Mount fields, hostname,
network, workdir, env).

Exits 0 when the RUN succeeded, with BuildCancelled.exit_code when cancelled, 1 on RunError (the
message on stderr). Command output goes to stdout, prefixed with "out: ".
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from executor.run import BuildCancelled, Mount, RunError, RunSpec, run, supervise  # noqa: E402


def report_leftovers() -> None:
    """As PID 1 of a container, every other process in /proc is something the RUN left behind."""
    if os.getpid() != 1:
        return
    for entry in sorted(os.listdir("/proc")):
        if entry.isdigit() and entry != "1":
            try:
                with open(f"/proc/{entry}/stat") as f:
                    print("leftover:", f.read().strip(), flush=True)
            except OSError:
                pass


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    root, script = sys.argv[1], sys.argv[2]
    user = sys.argv[3] if len(sys.argv) > 3 else ""
    extra = json.loads(os.environ.get("KILN_TEST_SPEC") or "{}")
    extra["mounts"] = [Mount(**m) for m in extra.get("mounts", [])]
    extra.setdefault("env", {})
    sidecar: list[subprocess.Popen] = []
    if os.environ.get("KILN_TEST_SIDECAR"):
        def start_sidecar() -> None:
            time.sleep(0.2)
            sidecar.append(subprocess.Popen(["sleep", "30"]))
        threading.Thread(target=start_sidecar, daemon=True).start()
    with supervise():
        try:
            run(RunSpec(root=root, argv=["/bin/sh", "-c", script], user=user, **extra,
                        output=lambda line: print("out:", line, flush=True)))
        except BuildCancelled as cancel:
            print("cancelled", flush=True)
            report_leftovers()
            return cancel.exit_code
        except RunError as err:
            print(f"error: {err}", flush=True)
            report_leftovers()
            return 1
    for child in sidecar:
        print("sidecar:", "alive" if child.poll() is None else "killed", flush=True)
        child.kill()
        child.wait()
    report_leftovers()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Builds examples/hello end to end on a fresh Debian 12 machine, as root: installs what it needs, starts a
# registry on 127.0.0.1, makes a base image from Debian's busybox-static, builds with kiln, shows the result.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
py=$("$here/scripts/setup.sh" | tail -n 1)
cd "$here"
exec "$py" scripts/example.py

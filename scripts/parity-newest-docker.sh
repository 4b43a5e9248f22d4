#!/usr/bin/env bash
# The parity suite against the newest docker of Debian unstable (docker.io + docker-buildx of sid, unpacked
# into /opt/kiln-docker/sid by scripts/docker-reference.sh, refreshed when sid has newer packages) instead
# of .ci/run's reference (Debian 13's docker 26.1.5). Extra arguments go to pytest, e.g. `-k copy_`.
# Accepted differences marked `docker: "<28"` in a case's expect.yaml do not apply to docker 28 and later:
# there kiln must equal docker build; those marked `docker: ">=28"` apply only here.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
py=$("$here/scripts/setup.sh" | tail -n 1)
root=$("$here/scripts/docker-reference.sh" sid --refresh | tail -n 1)
echo "parity against $(tr '\n' ' ' < "$root/.kiln-versions")" >&2
cd "$here"
KILN_PARITY_DOCKER="$root" exec "$py" -m pytest tests/e2e/parity -q -rx "$@"

#!/usr/bin/env bash
# The test command: sets the machine up (apt, venv, pip) and runs the whole suite. Run as root.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
py=$("$here/scripts/setup.sh" | tail -n 1)
cd "$here"
exec "$py" -m pytest -q "$@"

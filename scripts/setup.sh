#!/usr/bin/env bash
# Installs everything kiln's tests and examples need on a fresh Debian 12 machine, as root.
# Idempotent: a second run installs nothing new. Prints the venv's python path as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

APT_PACKAGES=(
  docker-registry    # the real registry the tests push to and pull from
  skopeo umoci       # independent tools that make base images and judge results
  runc               # a throwaway container for the executor image
  golang-github-containers-common   # /usr/share/containers/seccomp.json: the runtime's default seccomp profile
  mmdebstrap         # the debian:bookworm minbase base image
  busybox-static     # the busybox base image
  apache2-utils      # htpasswd for the basic-auth registry
  openssl            # self-signed CA for the TLS registries
  git                # `git http-backend` and the git CLI: the tests' smart-HTTP git server and its repositories
  patchelf           # the self-contained interpreter of the executor image
  docker.io          # containerd, runc and tini, which the parity suite's dockerd (scripts/docker-reference.sh) uses
  buildah            # builds the executor image (Containerfile) in tests/test_executor_image
  strace             # the safety test checks that a refused build makes no file-changing system call
  qemu-user-static   # foreign-architecture RUN in the multi-platform tests (tests/rig/binfmt.py registers it)
  tmux               # the terminal the live progress test (--progress=tty) runs kiln in
  tar gzip xz-utils bzip2 zstd util-linux iproute2 ca-certificates
  python3 python3-venv python3-pip
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# The parity suite's `docker build`: Debian 13's docker.io + docker-buildx unpacked into /opt/kiln-docker/trixie
# (the machine's apt sources are left alone; cached, so a second run downloads nothing).
"$here/scripts/docker-reference.sh" trixie >/dev/null

venv=${KILN_VENV:-$here/.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
stamp="$venv/.kiln-installed"
if [ ! -f "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$here[test]" >&2
  touch "$stamp"
fi
# Azurite (npm) under the venv, where tests/rig/cloud.py looks for it. Debian's nodejs and npm where the machine
# has no npm of its own (NodeSource's nodejs ships npm inside and conflicts with Debian's npm package).
if ! command -v npm >/dev/null; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >&2
fi
azurite_version=3.35.0
if [ ! -x "$venv/azurite/node_modules/.bin/azurite-blob" ] || \
   ! grep -q "\"version\": \"$azurite_version\"" "$venv/azurite/node_modules/azurite/package.json" 2>/dev/null; then
  npm install --silent --no-audit --no-fund --prefix "$venv/azurite" "azurite@$azurite_version" >&2
fi
echo "$venv/bin/python"

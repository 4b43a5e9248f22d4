#!/usr/bin/env bash
# The `docker build` the parity suite compares kiln with: Debian's docker.io, docker-cli and docker-buildx of
# one Debian suite, unpacked (not installed) into /opt/kiln-docker/SUITE without touching this machine's apt
# sources or dpkg database. Their binaries need glibc 2.34 and run on Debian 12; dockerd uses the machine's
# containerd and runc (tests/e2e/parity/dockerd.py starts it with its own data-root, exec-root and socket).
#
#   scripts/docker-reference.sh            Debian 13 (trixie): docker 26.1.5 + buildx 0.13.1, BuildKit 0.13,
#                                          the reference of .ci/run (a stable suite: it does not move under CI)
#   scripts/docker-reference.sh sid        Debian unstable: today's docker (28.5.2 + buildx 0.29.1 when written)
#   scripts/docker-reference.sh sid --refresh   download again when the suite has newer packages
#
# Idempotent and cached: a second run downloads nothing. Prints the unpacked root as its last line
# (ROOT/usr/sbin/dockerd, ROOT/usr/bin/docker, ROOT/usr/libexec/docker/cli-plugins/docker-buildx).
set -euo pipefail

suite=${1:-trixie}
refresh=${2:-}
case "$suite" in
  trixie|sid|forky|testing|unstable) ;;
  *) echo "docker-reference: unknown Debian suite '$suite' (trixie, sid, testing)" >&2; exit 2 ;;
esac
base=${KILN_DOCKER_DIR:-/opt/kiln-docker}
root="$base/$suite"
stamp="$root/.kiln-versions"
packages=(docker.io docker-cli docker-buildx)

mkdir -p "$base"
exec 9>"$base/.lock"            # several checkouts may run their setup at once
flock 9

if [ -f "$stamp" ] && [ "$refresh" != "--refresh" ]; then
  echo "$root"
  exit 0
fi

# The archive this machine's apt already uses (deb822 URIs: or a one-line `deb URL ...`), else Debian's.
mirror=$(grep -h -o -E '^(URIs:[[:space:]]*|deb[[:space:]]+)(\[[^]]*\][[:space:]]+)?https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
           /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
         | grep -o -E 'https?://[^[:space:]]+' | head -n 1 || true)
mirror=${mirror:-http://deb.debian.org/debian}

apt_dir="$base/.apt-$suite"     # private sources list, lists and cache: the machine's apt is left as it was
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror%/} $suite main" > "$apt_dir/sources.list"
opts=(-q -o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$apt_dir/lists"
      -o "Dir::Cache=$apt_dir/cache" -o APT::Sandbox::User=root)
apt-get "${opts[@]}" update >&2

versions=""
for p in "${packages[@]}"; do
  v=$(apt-cache "${opts[@]}" policy "$p" | awk '/Candidate:/ {print $2}')
  [ -n "$v" ] && [ "$v" != "(none)" ] || { echo "docker-reference: $suite has no package $p" >&2; exit 1; }
  versions+="$p=$v"$'\n'
done
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${versions%$'\n'}" ]; then
  echo "docker-reference: $suite is up to date" >&2
  echo "$root"
  exit 0
fi

rm -f "$apt_dir"/debs/*.deb
(cd "$apt_dir/debs" && apt-get "${opts[@]}" download "${packages[@]}" >&2)
tmp=$(mktemp -d "$base/.unpack-$suite.XXXXXX")
for deb in "$apt_dir"/debs/*.deb; do
  dpkg-deb -x "$deb" "$tmp"
done
for bin in usr/sbin/dockerd usr/bin/docker usr/libexec/docker/cli-plugins/docker-buildx; do
  [ -x "$tmp/$bin" ] || { echo "docker-reference: $bin is missing from $suite's packages" >&2; exit 1; }
done
printf '%s' "${versions%$'\n'}" > "$tmp/.kiln-versions"
rm -rf "$root.old"
[ -d "$root" ] && mv "$root" "$root.old"
mv "$tmp" "$root"
rm -rf "$root.old" "$apt_dir/debs"
echo "docker-reference: $suite unpacked in $root:" $versions >&2
echo "$root"

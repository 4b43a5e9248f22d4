#!/usr/bin/env bash
# Makes the builder base image of kiln's executor image (Containerfile, ARG BUILDER_IMAGE) from Debian
# packages, without Docker Hub: mmdebstrap (minbase bookworm + the packages the builder stage needs) ->
# one tar layer -> an OCI image layout (umoci), cached under /var/cache/kiln-tests, then pushed with skopeo.
#
#   make-builder-base.sh REGISTRY[/REPO[:TAG]]    e.g. 127.0.0.1:5000  or  127.0.0.1:5000/kiln/builder-base:bookworm
#
# Prints the pushed reference (REGISTRY/REPO:TAG) as its last line. Needs root and Debian's archive the first
# time; later runs reuse the cached layout (delete it, or set KILN_REBUILD_BUILDER_BASE=1, to make it anew).
# The push uses plain HTTP unless KILN_REGISTRY_TLS_VERIFY=true (a loopback test registry has no TLS).
set -euo pipefail

dest=${1:?usage: make-builder-base.sh REGISTRY[/REPO[:TAG]]}
case "$dest" in
  */*) ref=$dest ;;
  *) ref=$dest/kiln/builder-base:bookworm ;;
esac
case "${ref##*/}" in *:*) ;; *) ref=$ref:bookworm ;; esac

suite=bookworm
# KILN_BUILDER_BASE_PACKAGES overrides the list ("" = a bare minbase, to try the Containerfile's apt path).
packages=${KILN_BUILDER_BASE_PACKAGES-python3,python3-pip,python3-venv,patchelf,ca-certificates,busybox-static,binutils}
work=$(mktemp -d /tmp/kiln-builder-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Certificates this machine trusts beyond Debian's Mozilla set (a TLS-inspecting proxy's CA, say): the
# builder stage's pip must reach PyPI through the same network. They go into the builder base only; the
# executor image's bundle is the ca-certificates package's Mozilla set (assemble.sh).
mkdir -p "$work/extra-ca"
python3 - "${KILN_HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" /usr/share/ca-certificates/mozilla \
    "$work/extra-ca" <<'PY'
import os, re, sys
bundle, mozilla, out = sys.argv[1:]
pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
def certs(text):
    return ["".join(m.group(0).split()) for m in pem.finditer(text)], [m.group(0) for m in pem.finditer(text)]
known = set()
if os.path.isdir(mozilla):
    for n in os.listdir(mozilla):
        known.update(certs(open(os.path.join(mozilla, n)).read())[0])
keys, texts = certs(open(bundle).read()) if os.path.exists(bundle) else ([], [])
for i, (k, t) in enumerate((k, t) for k, t in zip(keys, texts) if k not in known):
    open(os.path.join(out, "kiln-host-%d.crt" % i), "w").write(t + "\n")
PY
# The cache key: what goes into the rootfs. Another package list or other extra CAs make a new layout.
extra_sum=$(cat "$work"/extra-ca/*.crt 2>/dev/null | sha256sum | cut -c1-16)
key=$(printf '%s\n' "$suite" "$packages" "$extra_sum" "v1" | sha256sum | cut -c1-16)
cache=${KILN_CACHE_DIR:-/var/cache/kiln-tests}/executor-image
layout=$cache/builder-base-$key
tag=$suite

if [ "${KILN_REBUILD_BUILDER_BASE:-0}" = 1 ]; then rm -rf "$layout"; fi

if [ ! -f "$layout/index.json" ]; then
  mkdir -p "$cache"
  echo "make-builder-base: $(ls "$work/extra-ca" | wc -l) extra CA certificates; mmdebstrap $suite (+$packages)" >&2
  # --skip=output/dev: no device nodes in the layer (extracting them needs CAP_MKNOD; a container runtime
  # mounts its own /dev anyway). The archive's Release files may be older than Valid-Until on snapshots.
  SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000} \
  mmdebstrap --quiet --variant=minbase ${packages:+--include="$packages"} \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --skip=output/dev \
    --customize-hook="mkdir -p \"\$1/usr/local/share/ca-certificates\"; cp $work/extra-ca/*.crt \"\$1/usr/local/share/ca-certificates/\" 2>/dev/null || true" \
    --customize-hook='if [ -x "$1/usr/sbin/update-ca-certificates" ]; then chroot "$1" update-ca-certificates --fresh >/dev/null; fi' \
    "$suite" "$work/rootfs.tar" >&2
  umoci init --layout "$work/layout" >&2
  umoci new --image "$work/layout:$tag" >&2
  umoci raw add-layer --image "$work/layout:$tag" \
    --history.created_by "mmdebstrap --variant=minbase --include=$packages $suite" \
    "$work/rootfs.tar" >&2
  umoci config --image "$work/layout:$tag" \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.env LANG=C.UTF-8 \
    --config.cmd /bin/bash >&2
  umoci gc --layout "$work/layout" >&2
  # Publish atomically: a rename within the cache's file system; if a concurrent run got there first
  # (rename onto a non-empty directory fails), keep its layout.
  tmp=$(mktemp -d "$cache/.builder-base.XXXXXX")
  mv "$work/layout" "$tmp/layout"
  mv -T "$tmp/layout" "$layout" 2>/dev/null || echo "make-builder-base: $layout made concurrently" >&2
  rm -rf "$tmp"
  echo "make-builder-base: cached $layout" >&2
fi

skopeo copy --quiet --dest-tls-verify="${KILN_REGISTRY_TLS_VERIFY:-false}" \
  "oci:$layout:$tag" "docker://$ref" >&2
echo "$ref"

#!/usr/bin/env bash
# Build appflow's container image from the repository's Dockerfile with buildah
# (storage driver vfs, isolation chroot: no daemon, no overlay, no user
# namespaces needed), and optionally push it to an OCI registry.
#
# Base images: when docker.io answers, the Dockerfile's defaults (the public
# golang and python images). Otherwise a Debian bookworm base is built with
# debootstrap from Debian's own packages and passed as both bases; its tools
# stage is seeded with the tools that `make tools` built with the same script
# and pins (tools/versions.env), so that stage finds them built and compiles
# nothing.
#
# Caches, all under ${APPFLOW_IMAGE_CACHE:-~/.cache/appflow/image}: Debian
# packages (debs/), the base root file system (base-*.tar, keyed by suite,
# packages and mirror) and its imported images (storage/), and pip's cache
# mount (tmp/): a second build downloads nothing from PyPI or Debian but git.
#
# Usage: tools/build-image.sh [--push HOST:PORT] [--push-only HOST:PORT] [--tag NAME:TAG]
#   --push pushes after the build to HOST:PORT/appflow/appflow:VERSION (the
#   repository the chart's values name); --push-only pushes what was built.
#   env: APPFLOW_IMAGE_BASE=public|debootstrap (default: probe docker.io)
#        DEBIAN_MIRROR (default http://deb.debian.org/debian)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
version="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$root/appflow/__init__.py")"
tag="localhost/appflow:$version"
push=""
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --push) push="$2"; shift 2 ;;
    --push-only) push="$2"; build=0; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    *) echo "usage: $0 [--push HOST:PORT] [--push-only HOST:PORT] [--tag NAME:TAG]" >&2; exit 2 ;;
  esac
done

cache="${APPFLOW_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/appflow/image}"
tools_bin="${APPFLOW_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/appflow/tools}/bin"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
base_packages=python3,python3-venv,ca-certificates
# What the Dockerfile's tools stage builds, read from its `build-tools.sh ...` line.
read -r -a image_tools <<<"$(sed -n 's|^RUN bash tools/build-tools.sh ||p' "$root/Dockerfile")"
[ ${#image_tools[@]} -gt 0 ] || { echo "no build-tools.sh line in $root/Dockerfile" >&2; exit 1; }
mkdir -p "$cache/debs" "$cache/storage" "$cache/run" "$cache/tmp"

log() { printf '[image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[image] error: %s\n' "$*" >&2; exit 1; }

command -v buildah >/dev/null || die "buildah is not installed (Debian: apt-get install buildah; .ci/run installs it)"
# buildah's cache mounts live under TMPDIR: keep them with the other caches.
export TMPDIR="$cache/tmp"
bh() { buildah --root "$cache/storage" --runroot "$cache/run" --storage-driver vfs "$@"; }

start=$SECONDS

push_image() {
  local dest="$1/appflow/appflow:$version"
  bh inspect --type image "$tag" >/dev/null 2>&1 || die "$tag is not built; run 'make image' first"
  log "pushing $tag to $dest"
  # --tls-verify=false: a registry on the machine or the site LAN speaks plain HTTP.
  bh push --tls-verify=false "$tag" "docker://$dest" >"$cache/push.log" 2>&1 \
    || { cat "$cache/push.log" >&2; die "pushing to $dest failed"; }
  log "pushed $dest"
}

if [ "$build" = 0 ]; then
  push_image "$push"
  exit 0
fi

# -- bases --------------------------------------------------------------------
mode="${APPFLOW_IMAGE_BASE:-}"
if [ -z "$mode" ]; then
  if timeout 20 bh pull --quiet docker.io/library/python:3.11-slim-bookworm >/dev/null 2>&1 \
    && timeout 20 bh pull --quiet docker.io/library/golang:1.26-bookworm >/dev/null 2>&1; then
    mode=public
  else
    mode=debootstrap
  fi
fi
build_args=()
if [ "$mode" = debootstrap ]; then
  command -v debootstrap >/dev/null || die "debootstrap is not installed (Debian: apt-get install debootstrap; .ci/run installs it)"
  for t in "${image_tools[@]}"; do
    [ -x "$tools_bin/$t" ] || die "$tools_bin/$t is not built; run 'make tools' first"
  done
  key="$(printf '%s %s %s' "$suite" "$base_packages" "$mirror" | sha256sum | cut -c1-12)"
  tarball="$cache/base-$suite-$key.tar"
  if [ ! -s "$tarball" ]; then
    log "debootstrap $suite (minbase + $base_packages) from $mirror"
    rootfs="$cache/rootfs.tmp"
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include="$base_packages" --cache-dir="$cache/debs" \
      "$suite" "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
      || die "debootstrap failed; see $cache/debootstrap.log"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  base="localhost/appflow-base:$suite-$key"
  if ! bh inspect --type image "$base" >/dev/null 2>&1; then
    log "importing the $suite base as $base"
    ctr="$(bh from scratch)"
    mnt="$(bh mount "$ctr")"
    tar -C "$mnt" --numeric-owner -xf "$tarball"
    bh umount "$ctr" >/dev/null
    bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env LANG=C.UTF-8 --cmd /bin/bash "$ctr"
    bh commit --quiet --rm "$ctr" "$base" >/dev/null
  fi
  # The tools stage's base: the same root file system with the tools that
  # tools/build-tools.sh built, stamped with their versions, where the
  # Dockerfile's build-tools.sh run looks for them.
  tools_key="$(for t in "${image_tools[@]}"; do cat "$tools_bin/.$t.version"; done | sha256sum | cut -c1-12)"
  tools_base="localhost/appflow-tools-base:$suite-$key-$tools_key"
  if ! bh inspect --type image "$tools_base" >/dev/null 2>&1; then
    log "seeding $tools_base with $(for t in "${image_tools[@]}"; do printf '%s %s ' "$t" "$(cat "$tools_bin/.$t.version")"; done)"
    ctr="$(bh from "$base")"
    mnt="$(bh mount "$ctr")"
    mkdir -p "$mnt/opt/appflow-tools/bin"
    for t in "${image_tools[@]}"; do
      install -m 0755 "$tools_bin/$t" "$mnt/opt/appflow-tools/bin/$t"
      cp "$tools_bin/.$t.version" "$mnt/opt/appflow-tools/bin/.$t.version"
    done
    bh umount "$ctr" >/dev/null
    bh commit --quiet --rm "$ctr" "$tools_base" >/dev/null
  fi
  build_args=(--build-arg "GO_IMAGE=$tools_base" --build-arg "PYTHON_IMAGE=$base")
fi
log "bases: $mode ($((SECONDS - start)) s so far)"

# -- the image ----------------------------------------------------------------
# Behind a TLS-inspecting proxy the host trusts a CA the base does not: its
# bundle (SSL_CERT_FILE or PIP_CERT) is mounted into the RUN steps, for apt and
# pip, and never becomes part of the image.
mounts=()
bundle="${PIP_CERT:-${SSL_CERT_FILE:-}}"
if [ -n "$bundle" ] && [ -f "$bundle" ]; then
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$cache/pip.conf"
  mounts=(--volume "$bundle:/etc/ssl/certs/ca-certificates.crt:ro"
          --volume "$cache/pip.conf:/etc/pip.conf:ro")
fi
log "building $tag"
# No --layers: with vfs every cached layer is a full copy of the root file
# system, which costs more than the steps it would save; the slow steps keep
# their downloads in cache mounts (pip) instead.
bh build --isolation chroot --format docker "${mounts[@]}" \
  "${build_args[@]}" -f "$root/Dockerfile" -t "$tag" "$root" >"$cache/build.log" 2>&1 \
  || { tail -40 "$cache/build.log" >&2; die "the image build failed; see $cache/build.log"; }
log "built $tag in $((SECONDS - start)) s"

[ -n "$push" ] && push_image "$push"
log "done in $((SECONDS - start)) s"

#!/usr/bin/env bash
# Build the external tools appflow drives (helm, kustomize, sops, kubectl) and the
# control-plane binaries its sandbox runs (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok) from their published Go
# modules. Release download sites are not reachable everywhere appflow runs,
# and the Go module proxy is, so this is the one path that works offline of
# them.
#
# Opt-in, not built by default: registry (the CNCF distribution OCI registry
# that tests/integration/oci pushes charts to). It adds 2.5 min to a cold build
# here and needs a newer Go than the rest; those tests skip without it.
#
# Output goes to a per-user cache outside the checkout, so a fresh clone reuses
# it:   ${APPFLOW_TOOLS_DIR:-${XDG_CACHE_HOME:-~/.cache}/appflow/tools}/bin
# A tool is rebuilt only when its pinned version (tools/versions.env) changes.
#
# Usage: tools/build-tools.sh [TOOL ...]   (default: all of them)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

tools_dir="${APPFLOW_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/appflow/tools}"
bin_dir="$tools_dir/bin"
src_dir="$tools_dir/src"
mkdir -p "$bin_dir" "$src_dir"

log() { printf '[tools %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[tools] error: %s\n' "$*" >&2; exit 1; }

# Go is needed only to build: a tool already built at its pinned version is
# reused without it (the image build seeds its tools stage that way).
go_version=""
need_go() {
  [ -n "$go_version" ] && return
  command -v go >/dev/null 2>&1 || die "the Go toolchain (go >= $GO_MIN_VERSION) is not on PATH; install Go (Debian: apt-get install golang-go, or https://go.dev/dl) and run 'make tools' again"
  go_version="$(go env GOVERSION | sed 's/^go//')"
  if [ "$(printf '%s\n%s\n' "$GO_MIN_VERSION" "$go_version" | sort -V | head -1)" != "$GO_MIN_VERSION" ]; then
    die "Go $go_version is older than the $GO_MIN_VERSION these tools need"
  fi
}

export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}"
ldflags_base="-s -w"

# stamp NAME VERSION -> true when NAME was already built at VERSION
is_built() {
  local name="$1" version="$2"
  [ -x "$bin_dir/$name" ] && [ "$(cat "$bin_dir/.$name.version" 2>/dev/null)" = "$version" ]
}
mark_built() { printf '%s\n' "$2" > "$bin_dir/.$1.version"; }

# go_fetch DIR : download the module graph of DIR/go.mod, naming the module
# that the proxy refused if it fails.
go_fetch() {
  local dir="$1" out
  if ! out="$(cd "$dir" && go mod tidy 2>&1)"; then
    printf '%s\n' "$out" >&2
    local missing
    missing="$(printf '%s\n' "$out" | grep -Eo '[a-z0-9.-]+\.[a-z]+/[^ :@]+@v[^ :]+' | head -1 || true)"
    die "the Go module proxy did not serve ${missing:-a required module} (see above); check GOPROXY ($(go env GOPROXY)) and tools/versions.env"
  fi
}

# need_go_for MODULE VERSION : stop with a clear message when MODULE@VERSION
# declares a newer Go than this one and Go may not fetch that toolchain itself.
need_go_for() {
  local gomod need
  gomod="$(go mod download -json "$1@$2" 2>/dev/null | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')" \
    || die "the Go module proxy did not serve $1@$2"
  need="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$gomod" | head -1)"
  [ -n "$need" ] || return 0
  if [ "$(printf '%s\n%s\n' "$need" "$go_version" | sort -V | head -1)" != "$need" ] \
    && [ "$(go env GOTOOLCHAIN)" = local ]; then
    die "$1@$2 needs Go >= $need and this is Go $go_version with GOTOOLCHAIN=local; install a newer Go or pin an older version in tools/versions.env"
  fi
}

# new_module DIR NAME : a throw-away module in the cache that pins what we build
new_module() {
  local dir="$1"
  rm -rf "$dir" && mkdir -p "$dir"
  printf 'module appflow.local/tools/%s\n\ngo %s\n' "$2" "$GO_MIN_VERSION" > "$dir/go.mod"
}

build_helm() {
  is_built helm "$HELM_VERSION" && { log "helm $HELM_VERSION: cached"; return; }
  log "helm $HELM_VERSION: building helm.sh/helm/v4/cmd/helm"
  need_go
  local dir="$src_dir/helm"
  new_module "$dir" helm
  printf '//go:build tools\n\npackage tools\n\nimport _ "helm.sh/helm/v4/cmd/helm"\n' > "$dir/tools.go"
  (cd "$dir" && go get "helm.sh/helm/v4@$HELM_VERSION") >&2 || die "the Go module proxy did not serve helm.sh/helm/v4@$HELM_VERSION"
  go_fetch "$dir"
  (cd "$dir" && go build -trimpath -o "$bin_dir/helm" \
    -ldflags "$ldflags_base -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    helm.sh/helm/v4/cmd/helm)
  mark_built helm "$HELM_VERSION"
}

build_kustomize() {
  is_built kustomize "$KUSTOMIZE_VERSION" && { log "kustomize $KUSTOMIZE_VERSION: cached"; return; }
  log "kustomize $KUSTOMIZE_VERSION: building sigs.k8s.io/kustomize/kustomize/v5"
  need_go
  GOBIN="$bin_dir" go install -trimpath \
    -ldflags "$ldflags_base -X sigs.k8s.io/kustomize/api/provenance.version=$KUSTOMIZE_VERSION" \
    "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" \
    || die "building sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION failed (see above)"
  mark_built kustomize "$KUSTOMIZE_VERSION"
}

build_etcd() {
  is_built etcd "$ETCD_VERSION" && { log "etcd $ETCD_VERSION: cached"; return; }
  log "etcd $ETCD_VERSION: building a main over go.etcd.io/etcd/server/v3/etcdmain"
  need_go
  local dir="$src_dir/etcd"
  new_module "$dir" etcd
  cat > "$dir/main.go" <<'GO'
// etcd for appflow's sandbox: the upstream server, started the way the
// upstream binary starts it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$dir" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION") >&2 || die "the Go module proxy did not serve go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go_fetch "$dir"
  (cd "$dir" && go build -trimpath -ldflags "$ldflags_base" -o "$bin_dir/etcd" .)
  mark_built etcd "$ETCD_VERSION"
}

build_kubernetes() {
  local names=(kube-apiserver kube-controller-manager kube-scheduler kubectl) all=1 n
  for n in "${names[@]}"; do is_built "$n" "$KUBERNETES_VERSION" || all=0; done
  [ "$all" = 1 ] && { log "kubernetes $KUBERNETES_VERSION: cached"; return; }
  log "kubernetes $KUBERNETES_VERSION: building ${names[*]} from k8s.io/kubernetes (slow: 15-30 min cold on 2 cores)"
  need_go
  local dir="$src_dir/kubernetes" staging
  new_module "$dir" kubernetes
  printf '//go:build tools\n\npackage tools\n\nimport (\n' > "$dir/tools.go"
  for n in "${names[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$n" >> "$dir/tools.go"; done
  printf ')\n' >> "$dir/tools.go"
  # k8s.io/kubernetes points its staging modules at ./staging with replace
  # lines that do not apply to a consumer; pin each to the published v0.x.y.
  local minor="v0.${KUBERNETES_VERSION#v1.}"
  (cd "$dir" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" >/dev/null) \
    || die "the Go module proxy did not serve k8s.io/kubernetes@$KUBERNETES_VERSION"
  local kgomod
  kgomod="$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  staging="$(grep -Eo '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$kgomod" | awk '{print $1}' | sort -u)"
  {
    printf '\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$KUBERNETES_VERSION"
    for n in $staging; do printf '\t%s => %s %s\n' "$n" "$n" "$minor"; done
    printf ')\n'
  } >> "$dir/go.mod"
  go_fetch "$dir"
  local pkg="k8s.io/component-base/version" cpkg="k8s.io/client-go/pkg/version"
  local major="1" kminor="${KUBERNETES_VERSION#v1.}"; kminor="${kminor%%.*}"
  local vflags="-X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$kminor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  vflags="$vflags -X $cpkg.gitVersion=$KUBERNETES_VERSION -X $cpkg.gitMajor=$major -X $cpkg.gitMinor=$kminor"
  for n in "${names[@]}"; do
    is_built "$n" "$KUBERNETES_VERSION" && { log "  $n: cached"; continue; }
    log "  $n: building"
    (cd "$dir" && go build -trimpath -ldflags "$ldflags_base $vflags" -o "$bin_dir/$n" "k8s.io/kubernetes/cmd/$n")
    mark_built "$n" "$KUBERNETES_VERSION"
  done
}

# build_command NAME MODULE VERSION PACKAGE LDFLAGS : the command PACKAGE of the
# published MODULE@VERSION, built in a throw-away module that pins it (for modules
# whose own go.mod has no replace lines that a consumer would miss).
build_command() {
  local name="$1" mod="$2" version="$3" pkg="$4" flags="$5" dir="$src_dir/$1"
  need_go
  new_module "$dir" "$name"
  (cd "$dir" && need_go_for "$mod" "$version")
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" > "$dir/tools.go"
  (cd "$dir" && go get "$mod@$version") >&2 || die "the Go module proxy did not serve $mod@$version"
  go_fetch "$dir"
  (cd "$dir" && go build -trimpath -o "$bin_dir/$name" -ldflags "$ldflags_base $flags" "$pkg")
  mark_built "$name" "$version"
}

# sops: the engine pipes SOPS-encrypted app files through it to decrypt them
# in memory (appflow/secrets).
build_sops() {
  is_built sops "$SOPS_VERSION" && { log "sops $SOPS_VERSION: cached"; return; }
  log "sops $SOPS_VERSION: building github.com/getsops/sops/v3/cmd/sops"
  local mod="github.com/getsops/sops/v3"
  build_command sops "$mod" "$SOPS_VERSION" "$mod/cmd/sops" "-X $mod/version.Version=${SOPS_VERSION#v}"
}

# The CNCF distribution registry: the OCI registry the integration tests push
# charts to and render them from (tests/integration/oci).
build_registry() {
  is_built registry "$DISTRIBUTION_VERSION" && { log "registry $DISTRIBUTION_VERSION: cached"; return; }
  log "registry $DISTRIBUTION_VERSION: building github.com/distribution/distribution/v3/cmd/registry"
  local mod="github.com/distribution/distribution/v3"
  build_command registry "$mod" "$DISTRIBUTION_VERSION" "$mod/cmd/registry" \
    "-X $mod/version.version=$DISTRIBUTION_VERSION"
}

# kwok simulates nodes and pods through "stages"; the binary needs them in its
# config. The module ships its default "fast" stages as YAML: take them from the
# module cache rather than keeping a copy of them here.
export_kwok_stages() {
  local dir="$src_dir/kwok" moddir out="$tools_dir/share/kwok/stages.yaml" f
  [ -s "$out" ] && [ "$(cat "$out.version" 2>/dev/null)" = "$KWOK_VERSION" ] && return
  need_go
  moddir="$(cd "$dir" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  mkdir -p "$(dirname "$out")"
  : > "$out.tmp"
  for f in node/fast/node-initialize.yaml pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [ -f "$moddir/kustomize/stage/$f" ] || die "sigs.k8s.io/kwok@$KWOK_VERSION has no kustomize/stage/$f"
    { printf -- '---\n'; cat "$moddir/kustomize/stage/$f"; printf '\n'; } >> "$out.tmp"
  done
  mv "$out.tmp" "$out"
  printf '%s\n' "$KWOK_VERSION" > "$out.version"
  log "kwok stages: $out"
}

build_kwok() {
  is_built kwok "$KWOK_VERSION" && { log "kwok $KWOK_VERSION: cached"; export_kwok_stages; return; }
  log "kwok $KWOK_VERSION: building sigs.k8s.io/kwok/cmd/kwok"
  need_go
  local dir="$src_dir/kwok"
  new_module "$dir" kwok
  printf '//go:build tools\n\npackage tools\n\nimport _ "sigs.k8s.io/kwok/cmd/kwok"\n' > "$dir/tools.go"
  (cd "$dir" && go get "sigs.k8s.io/kwok@$KWOK_VERSION") >&2 || die "the Go module proxy did not serve sigs.k8s.io/kwok@$KWOK_VERSION"
  go_fetch "$dir"
  (cd "$dir" && go build -trimpath -o "$bin_dir/kwok" \
    -ldflags "$ldflags_base -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok)
  mark_built kwok "$KWOK_VERSION"
  export_kwok_stages
}

# registry (the OCI tests' registry) adds about 2.5 minutes to a cold build;
# without it the OCI tests would only skip, so it is built by default.
all_tools=(helm kustomize sops etcd kwok kubernetes registry)
wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=("${all_tools[@]}")
start=$SECONDS
for t in "${wanted[@]}"; do
  case "$t" in
    helm|kustomize|sops|etcd|kwok|kubernetes|registry) "build_$t" ;;
    kubectl|kube-apiserver|kube-controller-manager|kube-scheduler) build_kubernetes ;;
    *) die "unknown tool '$t'; known: ${all_tools[*]}" ;;
  esac
done
log "done in $((SECONDS - start)) s; binaries in $bin_dir"

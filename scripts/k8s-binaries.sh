#!/usr/bin/env bash
# Builds, once, the Kubernetes binaries that tests/k8s runs (etcd, kube-apiserver,
# kube-controller-manager, kubectl, helm) from the Go module proxy at the versions pinned
# below, into a cache outside git. Progress goes to stderr; the last line on stdout is the
# bin dir. Already-built binaries are skipped, so a second run takes well under a second.
#
#   scripts/k8s-binaries.sh --node   also the node's: kubelet, kube-scheduler, kube-proxy,
#                        crictl, and pause (the sandbox's process, compiled with gcc from the
#                        k8s.io/kubernetes module's build/pause/linux/pause.c) for the real
#                        single-node cluster of tests/servers/kubernetes.py
#
#   KUBEBUILDER_ASSETS   a dir that already holds all the binaries asked for (envtest's
#                        convention): it is printed and nothing is built
#   SHOAL_K8S_CACHE      where to build (default ${XDG_CACHE_HOME:-$HOME/.cache}/shoal/k8s)
#
# The first build takes 10-30 minutes on two cores; the Go module and build caches (GOMODCACHE,
# GOCACHE) stay where Go keeps them, so a later rebuild at another version reuses them.
set -euo pipefail

KUBERNETES_VERSION=v1.37.2 # kube-apiserver, kube-controller-manager, kubectl
ETCD_VERSION=v3.7.3        # kubernetes v1.37's go.mod uses the etcd v3.7 client (v3.7.0)
HELM_VERSION=v3.22.0       # helm.sh/helm/v3/cmd/helm
CRI_TOOLS_VERSION=v1.37.0  # sigs.k8s.io/cri-tools/cmd/crictl, released with kubernetes v1.37
PAUSE_VERSION=3.10.2       # the TAG of kubernetes v1.37's build/pause/Makefile

BINARIES=(etcd kube-apiserver kube-controller-manager kubectl helm)
NODE_BINARIES=(kubelet kube-scheduler kube-proxy crictl pause)
case "${1:-}" in
  --node) BINARIES+=("${NODE_BINARIES[@]}") ;;
  "") ;;
  *) printf 'usage: %s [--node]\n' "$0" >&2; exit 2 ;;
esac

log() { printf 'k8s-binaries: %s\n' "$*" >&2; }

holds_all() {
  local dir=$1 name
  for name in "${BINARIES[@]}"; do
    [ -x "$dir/$name" ] || return 1
  done
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  if holds_all "$KUBEBUILDER_ASSETS"; then
    echo "$KUBEBUILDER_ASSETS"
    exit 0
  fi
  log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks one of ${BINARIES[*]}; using the build cache"
fi

cache=${SHOAL_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shoal/k8s}
root=$cache/$KUBERNETES_VERSION
bin=$root/bin
stamps=$root/stamps

# The version each binary is built at; a binary whose stamp differs is built again.
declare -A WANT=(
  [etcd]=$ETCD_VERSION
  [kube-apiserver]=$KUBERNETES_VERSION
  [kube-controller-manager]=$KUBERNETES_VERSION
  [kubectl]=$KUBERNETES_VERSION
  [helm]=$HELM_VERSION
  [kubelet]=$KUBERNETES_VERSION
  [kube-scheduler]=$KUBERNETES_VERSION
  [kube-proxy]=$KUBERNETES_VERSION
  [crictl]=$CRI_TOOLS_VERSION
  [pause]=$PAUSE_VERSION
)

built() { [ -x "$bin/$1" ] && [ "$(cat "$stamps/$1" 2>/dev/null)" = "${WANT[$1]}" ]; }

missing=()
for name in "${BINARIES[@]}"; do
  built "$name" || missing+=("$name")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "$bin"
  exit 0
fi

if ! command -v go >/dev/null; then
  log "needs Go >= 1.26 on PATH to build ${missing[*]} (kubernetes $KUBERNETES_VERSION's go.mod says go 1.26.0)"
  exit 1
fi

export GOFLAGS=-mod=mod CGO_ENABLED=0
mkdir -p "$bin" "$stamps" "$root/src"
log "building ${missing[*]} into $bin with $(go version | cut -d' ' -f3) (the first build takes 10-30 minutes)"
started=$SECONDS

# A throwaway main module per project under $root/src: go.mod pins the version, go.sum records
# what the proxy served.
module() {
  local dir=$root/src/$1
  shift
  mkdir -p "$dir"
  printf 'module shoal.local/k8s-binaries/%s\n\ngo 1.26.0\n\n' "$(basename "$dir")" >"$dir/go.mod"
  printf '%s\n' "$@" >>"$dir/go.mod"
  echo "$dir"
}

# build NAME DIR PACKAGE LDFLAGS: one binary, written under a temporary name and moved into
# place with its stamp only once the link succeeded.
build() {
  local name=$1 dir=$2 package=$3 ldflags=$4 start=$SECONDS
  log "  $name: go build $package (${WANT[$name]})..."
  (cd "$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/.$name.tmp" "$package")
  mv "$bin/.$name.tmp" "$bin/$name"
  echo "${WANT[$name]}" >"$stamps/$name"
  log "  $name: built in $((SECONDS - start)) s"
}

wanted() { [[ " ${missing[*]} " == *" $1 "* ]]; }

if wanted etcd; then
  dir=$(module etcd "require go.etcd.io/etcd/server/v3 $ETCD_VERSION")
  build etcd "$dir" go.etcd.io/etcd/server/v3 ""
fi

KUBERNETES_COMMANDS=(kube-apiserver kube-controller-manager kubectl kubelet kube-scheduler kube-proxy)
wanted_kubernetes() {
  local name
  for name in "${KUBERNETES_COMMANDS[@]}" pause; do
    wanted "$name" && return 0
  done
  return 1
}

if wanted_kubernetes; then
  log "  kubernetes: downloading k8s.io/kubernetes@$KUBERNETES_VERSION..."
  (cd "$root/src" && go mod download k8s.io/kubernetes@"$KUBERNETES_VERSION")
  gomod=$(cd "$root/src" && go mod download -json k8s.io/kubernetes@"$KUBERNETES_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
  # ./staging/src/...; a dependant pins each one to the published v0.X.Y instead.
  staging=v0.${KUBERNETES_VERSION#v1.}
  replaces=$(awk -v staging="$staging" '
    $2 == "v0.0.0" && $1 ~ /^k8s\.io\// { required[$1] = 1 }
    $2 == "=>" && $3 ~ /^\.\/staging\// && ($1 in required) {
      printf "replace %s => %s %s\n", $1, $1, staging
    }' "$gomod")
  log "  kubernetes: $(printf '%s\n' "$replaces" | wc -l) staging modules pinned to $staging"
  dir=$(module kubernetes "require k8s.io/kubernetes $KUBERNETES_VERSION" "" "$replaces")
  minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  date=$(cd "$root/src" && go mod download -json k8s.io/kubernetes@"$KUBERNETES_VERSION" |
    sed -n 's/^[[:space:]]*"Time": "\(.*\)",\{0,1\}$/\1/p')
  version_flags=""
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    version_flags+=" -X $package.gitVersion=$KUBERNETES_VERSION -X $package.gitMajor=1"
    version_flags+=" -X $package.gitMinor=$minor -X $package.gitTreeState=clean"
    version_flags+=" -X $package.gitCommit=unknown -X $package.buildDate=$date"
  done
  for name in "${KUBERNETES_COMMANDS[@]}"; do
    if wanted "$name"; then
      build "$name" "$dir" "k8s.io/kubernetes/cmd/$name" "$version_flags"
    fi
  done
  if wanted pause; then
    # A static C program, not Go: the pod sandbox's PID 1, which reaps and waits. No registry
    # serves its image here, so the tests make the image from this binary.
    command -v gcc >/dev/null || { log "needs gcc to compile pause"; exit 1; }
    source_dir=$(cd "$root/src" && go mod download -json k8s.io/kubernetes@"$KUBERNETES_VERSION" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
    start=$SECONDS
    log "  pause: gcc -Os -static build/pause/linux/pause.c ($PAUSE_VERSION)..."
    gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION" -o "$bin/.pause.tmp" \
      "$source_dir/build/pause/linux/pause.c"
    strip "$bin/.pause.tmp"
    mv "$bin/.pause.tmp" "$bin/pause"
    echo "$PAUSE_VERSION" >"$stamps/pause"
    log "  pause: built in $((SECONDS - start)) s"
  fi
fi

if wanted crictl; then
  dir=$(module cri-tools "require sigs.k8s.io/cri-tools $CRI_TOOLS_VERSION")
  (cd "$dir" && go mod download sigs.k8s.io/cri-tools)
  build crictl "$dir" sigs.k8s.io/cri-tools/cmd/crictl \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION"
fi

if wanted helm; then
  dir=$(module helm "require helm.sh/helm/v3 $HELM_VERSION")
  (cd "$dir" && go mod download helm.sh/helm/v3)
  # helm's Makefile stamps the Kubernetes version it renders for from its client-go version.
  client_go=$(cd "$dir" && go list -m -f '{{.Version}}' k8s.io/client-go)
  client_minor=${client_go#v0.}
  client_minor=${client_minor%%.*}
  flags="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for package in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    flags+=" -X $package.k8sVersionMajor=1 -X $package.k8sVersionMinor=$client_minor"
  done
  build helm "$dir" helm.sh/helm/v3/cmd/helm "$flags"
fi

log "done in $((SECONDS - started)) s"
echo "$bin"

#!/usr/bin/env bash
# The README's Kubernetes walkthrough on a local kind cluster, for a machine with a container
# engine (docker or podman) and registry access: kind's node image and the official python
# base image are pulled. Creates the cluster (unless it exists), builds the three images,
# loads them into the node with `kind load docker-image`, installs the chart (two operator
# replicas, one leading), applies examples/ and enqueues the example's tasks.
#
# Our own test machines reach no registry, so the tests never run this script: they run the
# same steps on a node of their own (README, "What make test checks here").
#
# Usage: scripts/kind-up.sh [--tasks N] [--no-enqueue]
# Environment: KIND_CLUSTER (default shoal), TAG (default dev), NAMESPACE (default
# shoal-system), DOCKER (default docker; e.g. podman with KIND_EXPERIMENTAL_PROVIDER=podman).
# Remove it all with: kind delete cluster --name "$KIND_CLUSTER"
set -euo pipefail

cluster=${KIND_CLUSTER:-shoal}
tag=${TAG:-dev}
namespace=${NAMESPACE:-shoal-system}
docker=${DOCKER:-docker}
tasks=500
enqueue=1

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
log() { printf 'kind-up: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --tasks) [ $# -ge 2 ] || die "--tasks needs a number"; tasks=$2; shift 2 ;;
    --no-enqueue) enqueue=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
case $tasks in '' | *[!0-9]*) die "--tasks takes a whole number, not '$tasks'" ;; esac

for tool in kind kubectl helm "$docker"; do
  command -v "$tool" >/dev/null || die "$tool is not on PATH: install it first (README, On Kubernetes)"
done
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  log "cluster $cluster exists: reusing it"
else
  log "creating cluster $cluster (pulls kind's node image)"
  kind create cluster --name "$cluster" --wait 120s
fi
context="kind-$cluster"

log "building shoal:$tag, shoal-operator:$tag, shoal-example:$tag"
"$docker" build -t "shoal:$tag" .
"$docker" build --target operator -t "shoal-operator:$tag" .
# examples/Dockerfile builds FROM shoal:dev; another tag is passed as its base.
"$docker" build --build-arg "SHOAL_IMAGE=shoal:$tag" -t "shoal-example:$tag" examples/

log "loading the images into the node (nothing is pushed to a registry)"
kind load docker-image --name "$cluster" "shoal:$tag" "shoal-operator:$tag" "shoal-example:$tag"

log "installing the chart into $namespace"
helm upgrade --install shoal charts/shoal --kube-context "$context" \
  --namespace "$namespace" --create-namespace --set image.tag="$tag" --wait --timeout 180s

log "applying examples/ (a throwaway Redis, its Secret, a Queue, a WorkerPool)"
kubectl --context "$context" apply -f examples/
kubectl --context "$context" rollout status deployment/shoal-redis --timeout=180s

if [ "$enqueue" -eq 1 ]; then
  log "enqueueing $tasks tasks with kubectl run"
  kubectl --context "$context" run enqueue --rm -i --restart=Never --image="shoal-example:$tag" \
    --image-pull-policy=Never --env=SHOAL_BACKEND_URL=redis://shoal-redis:6379/0 \
    --command -- python tasks.py "$tasks"
fi

log "done: watch the pool scale with"
printf '  kubectl --context %s get workerpools -w\n' "$context"

#!/usr/bin/env bash
# Installs, when they are not there yet, the Debian packages a real Kubernetes node and the
# image builds need: docker.io (dockerd, for `docker build`), containerd and runc (the
# kubelet's runtime), containernetworking-plugins (the bridge CNI, under /usr/lib/cni),
# debootstrap (the base image, see scripts/base-image.sh) and iptables (kube-proxy, the CNI
# firewall plugin). Nothing is left running: Debian starts dockerd and containerd on install,
# and the tests start their own, in temporary directories, only while they need them.
set -euo pipefail

log() { printf 'install-node: %s\n' "$*" >&2; }

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v containerd >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v iptables >/dev/null || missing+=(iptables)
[ ${#missing[@]} -eq 0 ] && exit 0

log "installing ${missing[*]} (for the image builds and the real node)..."
started=$SECONDS
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { log "need root or sudo to apt-get install ${missing[*]}"; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged daemons on install (where an init system runs them); the tests
# never use those.
for service in docker containerd; do
  $sudo service "$service" stop >/dev/null 2>&1 || true
done
log "done in $((SECONDS - started)) s"

#!/usr/bin/env bash
# Installs the server packages the tests start themselves (PostgreSQL, Redis), from Debian's
# archive, when they are not there yet. Nothing is started here: the test harness runs its
# own servers in temporary directories on free loopback ports.
set -euo pipefail

missing=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing ${missing[*]} (for the integration tests)..."
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root or sudo to apt-get install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged services on install; the tests never use them.
for service in postgresql redis-server; do
  $sudo service "$service" stop >/dev/null 2>&1 || true
done

#!/usr/bin/env bash
# Makes, once, the base image the tests build shoal's images FROM: Debian bookworm with its
# Python 3.11 (python3, venv, pip), made with debootstrap because no registry is reachable to
# pull python:3.11-slim from. The result is a root filesystem tarball in a cache outside git;
# the tests `docker import` it (tests/servers/docker.py) and pass it to the Dockerfile as
# PYTHON_IMAGE. Progress goes to stderr; the last line on stdout is the tarball's path.
# A second run takes well under a second.
#
#   SHOAL_BASE_CACHE   where to keep it (default ${XDG_CACHE_HOME:-$HOME/.cache}/shoal/base)
#   DEBIAN_MIRROR      the archive to debootstrap from (default: this machine's apt source)
#
# No CA certificate of this machine goes into the tarball: builds that need one (pip behind a
# TLS-intercepting proxy) get it as a build secret, at build time only.
set -euo pipefail

SUITE=bookworm
# passwd: the Dockerfile's useradd (minbase has only Essential packages and apt).
PACKAGES=python3,python3-venv,python3-pip,ca-certificates,passwd

log() { printf 'base-image: %s\n' "$*" >&2; }

cache=${SHOAL_BASE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shoal/base}
recipe="$SUITE minbase $PACKAGES"
tarball=$cache/$SUITE-python3.tar
if [ -s "$tarball" ] && [ "$(cat "$tarball.recipe" 2>/dev/null)" = "$recipe" ]; then
  echo "$tarball"
  exit 0
fi

command -v debootstrap >/dev/null || { log "needs debootstrap (scripts/install-node.sh)"; exit 1; }
[ "$(id -u)" -eq 0 ] || { log "debootstrap needs root"; exit 1; }
mirror=${DEBIAN_MIRROR:-$(
  sed -n 's/^URIs: *\(http[^ ]*\/debian\)\/\{0,1\}$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1
)}
mirror=${mirror:-$(sed -n 's/^deb \(http[^ ]*\/debian\)\/\{0,1\} .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}

mkdir -p "$cache"
rootfs=$(mktemp -d "$cache/.rootfs.XXXXXX")
trap 'rm -rf "$rootfs" "$tarball.tmp"' EXIT
log "debootstrap $SUITE ($PACKAGES) from $mirror (about 3 minutes)..."
started=$SECONDS
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$mirror" >&2
# What an image does not need: apt's downloaded lists and packages, logs.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
echo "$recipe" >"$tarball.recipe"
log "done in $((SECONDS - started)) s ($(du -h "$tarball" | cut -f1))"
echo "$tarball"

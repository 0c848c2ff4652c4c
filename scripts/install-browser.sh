#!/usr/bin/env bash
# Installs Debian's Chromium, which the board's browser tests (tests/board/test_browser.py)
# drive through Playwright, when it is not there yet. Playwright's own browser download is
# never used: the tests point it at /usr/bin/chromium.
set -euo pipefail

command -v chromium >/dev/null && exit 0

echo "installing chromium (for the board's browser tests)..."
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root or sudo to apt-get install chromium" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null

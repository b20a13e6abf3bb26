#!/usr/bin/env bash
# Installs Debian's headless Chromium (and its driver) for tests/dashboards/test_browser.py.
# Does nothing when /usr/bin/chromium is already there; needs root (or sudo) otherwise.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-browser: not root and no sudo; install the Debian packages chromium and chromium-driver" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium chromium-driver
/usr/bin/chromium --version

#!/bin/sh
# Install Chromium from Debian's packages where it is missing (the report test drives it headless).
# Called from .ci/run. Idempotent; exits 0 when chromium is already on PATH.
set -eu
for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then
        echo "install_chromium: $(command -v "$b") present: $("$b" --version 2>/dev/null || echo unknown version)" >&2
        exit 0
    fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: no chromium and no apt-get on this machine; install Chromium by hand (the report test will be skipped)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install_chromium: not root and no sudo: run 'apt-get install -y chromium' as root" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 || echo "install_chromium: apt-get update failed; trying the cached package lists" >&2
$SUDO apt-get install -y -qq --no-install-recommends chromium >&2
command -v chromium >/dev/null 2>&1 || { echo "install_chromium: chromium still missing after apt-get install" >&2; exit 1; }
echo "install_chromium: installed $(chromium --version 2>/dev/null)" >&2

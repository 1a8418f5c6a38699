#!/usr/bin/env bash
# Install the Debian packages ledger needs, only those that are missing.
# Idempotent: runs `apt-get update` only when something must be installed.
set -euo pipefail
PKGS=(build-essential cmake pkg-config libraft-dev libuv1-dev libsqlite3-dev
      libmsgpack-dev libhttp-parser-dev libjansson-dev libssl-dev
      libcurl4-openssl-dev libcmocka-dev python3 python3-msgpack sqlite3 curl
      iproute2 nftables python3-matplotlib openssl man-db groff-base clang
      libclang-rt-dev libfuse3-dev fuse3 libiberty-dev)
# Installed without their recommends: the console test's headless browser
# (chromium; fonts-dejavu-core for its screenshots), promtool (package
# prometheus; its recommends would bring the node exporter service) and
# systemd-analyze for the install test (package systemd).
LEAN=(chromium fonts-dejavu-core prometheus systemd)
installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
missing=()
for p in "${PKGS[@]}"; do
    installed "$p" || missing+=("$p")
done
lean=()
for p in "${LEAN[@]}"; do
    installed "$p" || lean+=("$p")
done
if [ ${#missing[@]} -eq 0 ] && [ ${#lean[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "deps: installing ${missing[*]} ${lean[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
    $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ${#lean[@]} -gt 0 ]; then
    $SUDO apt-get install -y -qq --no-install-recommends "${lean[@]}" >/dev/null
fi

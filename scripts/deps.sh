#!/usr/bin/env bash
# Install the Debian packages ledger needs, only those that are missing.
# Idempotent: runs `apt-get update` only when something must be installed.
set -euo pipefail
PKGS=(build-essential cmake pkg-config libraft-dev libuv1-dev libsqlite3-dev
      libmsgpack-dev libhttp-parser-dev libjansson-dev libssl-dev
      libcurl4-openssl-dev libcmocka-dev python3 python3-msgpack sqlite3 curl
      iproute2 nftables python3-matplotlib systemd man-db groff-base)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null

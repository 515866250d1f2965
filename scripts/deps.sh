#!/usr/bin/env bash
# Install every Debian package that spectra's build, tests and benchmarks
# need. Idempotent: packages already present are not fetched again, and
# apt's lists are refreshed only when something is missing.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config clang libclang-rt-14-dev
  libuv1-dev liblmdb-dev lmdb-utils zlib1g-dev
  libcmocka-dev libhiredis-dev libraft-dev libjansson-dev libxxhash-dev libmicrohttpd-dev
  curl chromium fonts-dejavu-core python3-prometheus-client
  redis-server redis-tools etcd-server etcd-client
  valgrind python3 python3-redis
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# The Node.js client example (examples/node) needs node and npm; a machine
# that already has them (from Debian or NodeSource) keeps its own.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# redis-server's and etcd-server's packages start a system instance (ports
# 6379, 2379); spectra's benchmarks start their own, so those are stopped.
if command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
  $SUDO systemctl disable --now etcd >/dev/null 2>&1 || true
fi

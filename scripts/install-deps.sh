#!/usr/bin/env bash
# Installs the Debian 12 packages fulcrum needs to build and test, and only the missing ones.
# Usage: scripts/install-deps.sh [build|test|bench]   (each set includes the ones before it)
set -euo pipefail

want=${1:-test}
pkgs="gcc make pkg-config libuv1-dev node-llhttp libssl-dev zlib1g-dev libyaml-dev libbrotli-dev libzstd-dev libc-ares-dev libhiredis-dev"
case "$want" in
  build) ;;
  test) pkgs="$pkgs python3 python3-pytest python3-cryptography redis-server curl clang libclang-rt-14-dev openssl sslscan prometheus chromium brotli zstd" ;;
  bench) pkgs="$pkgs python3 python3-pytest python3-cryptography redis-server curl clang libclang-rt-14-dev openssl sslscan prometheus chromium brotli zstd nginx-light haproxy wrk valgrind iproute2" ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
# Node.js for the real WebSocket clients and servers of the tests: Debian's nodejs and npm, unless a
# node and an npm are installed already (from another source: their packages would conflict).
if [ "$want" != build ] && { ! command -v node >/dev/null || ! command -v npm >/dev/null; }; then
  missing="$missing nodejs npm"
fi

if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "fulcrum needs these Debian packages:$missing" >&2
    echo "run as root:  apt-get update && apt-get install -y$missing" >&2
    exit 1
  fi
  echo "installing:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The npm packages the tests use (tests/node/package-lock.json pins them).
if [ "$want" != build ]; then
  nodedir="$(dirname "$0")/../tests/node"
  if ! (cd "$nodedir" && node -e 'for (const d of Object.keys(require("./package.json").dependencies)) require.resolve(d)') 2>/dev/null; then
    echo "installing the npm packages of tests/node" >&2
    (cd "$nodedir" && npm ci --no-audit --no-fund --silent)
  fi
fi

#!/usr/bin/env bash
# Installs the Debian packages segd needs to build (nodejs and npm install the pinned API
# tools and Swagger UI, scripts/npm-tools.sh), and with --test also those its tests need
# (the servers that bench/compare measures segd against, clang-format and clang for the style
# and thread-safety checks),
# and nothing else.
# Idempotent: apt-get runs only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build
  libboost-dev libabsl-dev libroaring-dev librocksdb-dev libsimdjson-dev
  libbenchmark-dev libgtest-dev libssl-dev libjwt-dev pkg-config
)
# Node.js and npm from Debian, unless the machine has them already (say from NodeSource, whose
# nodejs conflicts with Debian's npm package).
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi
if [ "${1:-}" = "--test" ]; then
  packages+=(redis-server redis-tools postgresql clang-format clang python3 python3-jwt python3-redis)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "segd: installing missing packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=sudo
  else
    echo "segd: these Debian packages are missing and this user is not root:" >&2
    echo "  apt-get install ${missing[*]}" >&2
    exit 1
  fi
else
  SUDO=
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

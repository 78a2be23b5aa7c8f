#!/usr/bin/env bash
# Installs the Debian 12 packages tensorslm builds and tests with. Idempotent: when everything is
# present it prints nothing and touches nothing. Uses sudo only when not root.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config git curl ca-certificates python3
  libboost-dev libboost-system-dev libeigen3-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libprotobuf-dev protobuf-compiler libsqlite3-dev libssl-dev libarchive-dev
  libpq-dev postgresql
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev libre2-dev ccache
)
# libpq-dev: PostgresStore; postgresql: the server binaries (initdb, postgres) the PostgreSQL tests
# start a throw-away cluster with (the package's own cluster is not used by them).
# Options (any number): --test: what the tests need beyond the build (Debian's chromium for
# tests/web; never a download); --clang: clang with LLVM's OpenMP (the asan preset); --fuzz: that
# and libFuzzer (the fuzz preset).
for opt in "$@"; do
  case $opt in
    --test) PKGS+=(chromium) ;;
    --clang) PKGS+=(clang libomp-dev) ;;
    --fuzz) PKGS+=(clang libomp-dev libfuzzer-14-dev) ;;
    *) echo "install-deps: unknown option '$opt' (--test, --clang, --fuzz)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The web dashboard's build (web/: npm ci + esbuild). A node that is already there (Debian's, or
# another packaging that bundles npm) is kept.
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

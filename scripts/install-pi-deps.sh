#!/usr/bin/env bash
# Installs what the Raspberry Pi (aarch64) cross build needs on Debian 12: the GNU cross toolchain,
# qemu-user-static to run the cross-built tests, and the arm64 -dev packages of the agent's
# libraries through multiarch (dpkg --add-architecture arm64). Idempotent: when everything is present
# it prints nothing and touches nothing. Uses sudo only when not root.
set -euo pipefail
HOST_PKGS=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user-static protobuf-compiler
           libeigen3-dev nlohmann-json3-dev libcli11-dev)
ARM_PKGS=(libprotobuf-dev libssl-dev libboost-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libre2-dev)
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
missing=()
for p in "${HOST_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
for p in "${ARM_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p:arm64" 2>/dev/null | grep -q "install ok installed" || missing+=("$p:arm64")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing (aarch64 cross build): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64
$SUDO apt-get update -qq
# The amd64 and arm64 copies of a Multi-Arch: same package must be the same version: install the
# native ones in the same transaction so apt keeps them in step.
native=(); for p in "${ARM_PKGS[@]}"; do native+=("$p"); done
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" "${native[@]}" >/dev/null

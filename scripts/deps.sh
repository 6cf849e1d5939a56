#!/usr/bin/env bash
# Installs the Debian packages micro needs to build and test, skipping those already present.
# Idempotent; runs apt-get as root, or through sudo otherwise.
set -euo pipefail

PACKAGES=(
  g++ cmake ninja-build pkg-config ccache make
  libssl-dev openssl libsodium-dev libboost-dev libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  librocksdb-dev libyaml-cpp-dev libspdlog-dev libfmt-dev nlohmann-json3-dev catch2 grpc-proto
  python3 python3-grpcio python3-protobuf python3-prometheus-client  # the last: tests/support/check_prometheus.py
  docker.io busybox-static  # the container driver's tests run a real dockerd (scripts/dockerd.sh)
  dpkg-dev lintian systemd debootstrap  # packaging tests: cpack's shlibdeps, lintian, systemd-analyze, a clean root
)
if [[ "${1:-}" == "--bench" ]]; then
  PACKAGES+=(etcd-server supervisor)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "error: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

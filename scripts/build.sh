#!/usr/bin/env bash
# Configures and builds micro with CMake + Ninja.
#   scripts/build.sh            -> build/        (RelWithDebInfo)
#   scripts/build.sh --asan     -> build-asan/   (ASan + UBSan, Debug)
# Extra arguments after the mode are passed to CMake. BUILD_JOBS overrides the parallelism;
# TARGETS (space-separated) builds only those targets (scripts/server.sh: micro).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build
args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
if [[ "${1:-}" == "--asan" ]]; then
  shift
  dir=build-asan
  args=(-DCMAKE_BUILD_TYPE=Debug -DMICRO_SANITIZE=address,undefined -DMICRO_BUILD_BENCH=OFF)
fi

# ccache hits across checkouts in different folders.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
cmake -S . -B "$dir" -G Ninja "${args[@]}" "$@" >/dev/null
targets=()
for t in ${TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$dir" -j "${BUILD_JOBS:-$(nproc)}" "${targets[@]}"

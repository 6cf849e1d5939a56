#!/usr/bin/env bash
# The SDK as a user gets it: `cmake --install` of this build into a temporary prefix, then
# examples/helloworld configured on its own with find_package(micro), built, and run (it must
# start and say it cannot reach a daemon that is not there).
#   standalone_build.sh BUILD_DIR SOURCE_DIR [SANITIZERS]
# SANITIZERS: those the build used (its static libraries need them at link time too).
set -euo pipefail
BUILD=$1
SOURCE=$2
SANITIZE=${3:-}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cmake --install "$BUILD" --prefix "$TMP/prefix" >/dev/null
test -f "$TMP/prefix/lib/cmake/micro/microConfig.cmake"
test -f "$TMP/prefix/include/micro/service.h"
test -f "$TMP/prefix/include/micro/registry/v1/registry.grpc.pb.h"
test -x "$TMP/prefix/bin/micro"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [[ -n $SANITIZE ]]; then
  launcher+=("-DCMAKE_CXX_FLAGS=-fsanitize=$SANITIZE" "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=$SANITIZE")
fi
cmake -S "$SOURCE/examples/helloworld" -B "$TMP/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$TMP/prefix" "${launcher[@]}" >/dev/null
cmake --build "$TMP/build" >/dev/null
# No daemon listens on port 1: the service starts, serves, and fails to register, exit 1.
set +e
out=$(MICRO_SERVER=127.0.0.1:1 MICRO_SERVICE_NAME=helloworld timeout 30 "$TMP/build/helloworld" 2>&1)
code=$?
set -e
echo "$out"
[[ $code -eq 1 ]] || { echo "FAIL: exit code $code, expected 1"; exit 1; }
grep -q "cannot register helloworld with the daemon at 127.0.0.1:1" <<<"$out" ||
  { echo "FAIL: no registration error"; exit 1; }
echo "PASS: helloworld built against the installed SDK and ran"

#!/usr/bin/env bash
# The SDK as a user gets it: `cmake --install` of this build into a temporary prefix, then
# examples/helloworld configured on its own with find_package(micro), built, and run (it must
# start and say it cannot reach a daemon that is not there); then `micro new greeter`, deployed
# with `micro run` (its manifest builds it) under the installed daemon, and called.
#   standalone_build.sh BUILD_DIR SOURCE_DIR [SANITIZERS]
# SANITIZERS: those the build used (its static libraries need them at link time too).
set -euo pipefail
BUILD=$1
SOURCE=$2
SANITIZE=${3:-}
TMP=$(mktemp -d)
DAEMON_PID=""
cleanup() {
  if [[ -n $DAEMON_PID ]]; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
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

# micro new, deployed and called. The daemon's environment reaches the manifest's build step:
# ccache, and the sanitizers the installed libraries need.
MICRO=$TMP/prefix/bin/micro
(cd "$TMP" && "$MICRO" new greeter)
grep -q "CMAKE_PREFIX_PATH=$TMP/prefix" "$TMP/greeter/micro.yaml"
build_env=()
command -v ccache >/dev/null && build_env+=(CMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [[ -n $SANITIZE ]]; then
  build_env+=("CXXFLAGS=-fsanitize=$SANITIZE" "LDFLAGS=-fsanitize=$SANITIZE")
fi
env "${build_env[@]}" "$MICRO" server --address 127.0.0.1:0 --data-dir "$TMP/data" \
  >"$TMP/daemon.log" 2>&1 &
DAEMON_PID=$!
for ((i = 0; i < 300; i++)); do
  [[ -f $TMP/data/server.json ]] && break
  sleep 0.1
done
ADDRESS=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["grpc_address"])' \
  "$TMP/data/server.json")
export HOME=$TMP/home
"$MICRO" login --admin --data-dir "$TMP/data" --address "$ADDRESS" >/dev/null
"$MICRO" run "$TMP/greeter" --address "$ADDRESS"
answer=""
for ((i = 0; i < 600; i++)); do  # the build step compiles it first: up to 5 minutes
  answer=$("$MICRO" call greeter Greeter.Hello '{"name": "new"}' --address "$ADDRESS" 2>/dev/null || true)
  [[ $answer == *"Hello new"* ]] && break
  sleep 0.5
done
if [[ $answer != *"Hello new"* ]]; then
  echo "FAIL: micro call greeter did not answer"
  "$MICRO" status greeter --address "$ADDRESS" || true
  "$MICRO" logs greeter --address "$ADDRESS" | tail -n 30 || true
  exit 1
fi
echo "PASS: micro new greeter deployed with micro run and called: $answer"

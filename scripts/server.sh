#!/usr/bin/env bash
# Installs what is missing, builds, and runs `micro server` in the foreground on its embedded
# defaults (gRPC on 127.0.0.1:8081, HTTP gateway on 127.0.0.1:8080, data in ~/.micro). Builds
# only the `micro` binary and the helloworld example (scripts/test.sh builds everything). Arguments go to `micro server`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
TARGETS="micro helloworld" scripts/build.sh
exec build/micro server "$@"

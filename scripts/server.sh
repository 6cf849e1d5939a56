#!/usr/bin/env bash
# Installs what is missing, builds, and runs `micro server` in the foreground on its embedded
# defaults (gRPC on 127.0.0.1:8081, data in ~/.micro). Arguments go to `micro server`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh
exec build/micro server "$@"

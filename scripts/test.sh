#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite with CTest: unit, contract,
# end-to-end and conformance tests, then the same suite under ASan + UBSan.
#   scripts/test.sh             both builds
#   scripts/test.sh --quick     the normal build only
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

scripts/build.sh
if [[ "${1:-}" != "--quick" ]]; then
  echo "== ASan + UBSan build ==" >&2
  scripts/build.sh --asan
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j "$(nproc)" --timeout 300
  echo "== normal build ==" >&2
fi
# The normal build's CTest summary comes last: it is the closing line CI reads.
ctest --test-dir build --output-on-failure -j "$(nproc)" --timeout 300

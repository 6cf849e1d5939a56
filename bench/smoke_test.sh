#!/usr/bin/env bash
# Keeps the benchmark tools working: the load generator drives the echo server and the real
# daemon for a moment, with every call succeeding. Run by CTest; takes about 3 s.
#   bench/smoke_test.sh BUILD_DIR
set -euo pipefail
BUILD_DIR=$1
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$BUILD_DIR/bench/micro-bench-echo" --address 127.0.0.1:0 >"$TMP/echo.out" 2>&1 &
PIDS+=($!)
"$BUILD_DIR/micro" server --address 127.0.0.1:0 --data-dir "$TMP/data" --log-level warn 2>"$TMP/micro.err" &
PIDS+=($!)
for _ in $(seq 200); do [[ -s $TMP/echo.out ]] && break; sleep 0.05; done
ECHO=$(awk '/^listening/ {print $2; exit}' "$TMP/echo.out")
[[ -n $ECHO ]] || fail "echo server did not start"
READY=$("$BUILD_DIR/bench/micro-loadgen" wait-ready --address-file "$TMP/data/server.json" \
  --since-ns "$(date +%s%N)" --timeout-ms 10000) || fail "micro server did not become ready"
MICRO=$(sed -n 's/.*address=\([^ ]*\).*/\1/p' <<<"$READY")
# Every call to the daemon needs a token: the admin's, as the CLI keeps it after micro login.
HOME="$TMP/home" "$BUILD_DIR/micro" login --admin --data-dir "$TMP/data" --address "$MICRO" \
  >/dev/null || fail "micro login --admin failed"
TOKEN=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["access_token"])' \
  "$TMP/home/.micro/tokens/${MICRO//:/_}.json")
AUTH=(--metadata "authorization=Bearer $TOKEN")

check() {  # name, then loadgen run flags; asserts calls > 0 and no errors
  local name=$1 out
  shift
  out=$("$BUILD_DIR/bench/micro-loadgen" run --concurrency 4 --duration 1 --warmup 0.2 \
    --max-calls 200000 --json "$@") || fail "$name: loadgen failed: $out"
  /usr/bin/python3 - "$name" "$out" <<'PY'
import json, sys
name, r = sys.argv[1], json.loads(sys.argv[2])
assert r["calls"] > 0, f"{name}: no calls completed: {r}"
assert r["errors"] == 0, f"{name}: {r['errors']} errors, first: {r['first_error']}"
assert r["p50_us"] > 0 and r["p99_us"] >= r["p50_us"], f"{name}: bad percentiles: {r}"
print(f"ok {name}: {r['calls']} calls, {r['qps']:.0f}/s, p99 {r['p99_us']:.0f} us")
PY
}

"$BUILD_DIR/bench/micro-loadgen" call --target "$MICRO" --method /micro.registry.v1.Registry/Register \
  --request-type micro.registry.v1.RegisterRequest \
  --request-text 'service { name: "smoke" version: "1" nodes { id: "n" address: "127.0.0.1:1" } }' \
  "${AUTH[@]}" >/dev/null || fail "Register through the load generator failed"
check echo --target "$ECHO" --method /micro.bench.v1.Echo/Echo \
  --request-type micro.bench.v1.EchoRequest --request-text 'response_size: 100'
check registry --target "$MICRO" --method /micro.registry.v1.Registry/GetService \
  --request-type micro.registry.v1.GetServiceRequest --request-text 'name: "smoke"' "${AUTH[@]}"
# A failing call is counted as an error, not as a success.
out=$("$BUILD_DIR/bench/micro-loadgen" run --target "$MICRO" --concurrency 1 --duration 0.3 \
  --warmup 0 --max-calls 1000 --json --method /micro.registry.v1.Registry/GetService \
  --request-type micro.registry.v1.GetServiceRequest --request-text 'name: "absent"' \
  "${AUTH[@]}" || true)
grep -q '"errors":[1-9]' <<<"$out" || fail "NOT_FOUND calls were not counted as errors: $out"
echo "ok errors are counted"

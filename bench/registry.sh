#!/usr/bin/env bash
# Registry read throughput on this machine: micro's Registry/GetService against etcd 3.4's
# KV/Range (serializable) and against micro-bench-echo, a gRPC server that does no work, all
# answering with the same number of bytes and driven by the same load generator.
# Also: cold start (launch -> health SERVING) and idle RSS. See bench/README.md.
#
#   bench/registry.sh                     # after: ninja -C build micro micro-loadgen micro-bench-echo
#   SKIP_MICRO=1 bench/registry.sh        # etcd and echo only (no daemon needed)
#
# Environment: BUILD_DIR (build), DURATION (5 s), WARMUP (1 s), RUNS (3), CONCURRENCY ("1 16 64"),
# MAX_CALLS (5000000 per run), COLD_STARTS (5), NAMESPACE (micro-namespace metadata; none: the
# daemon's default), RESPONSE_SIZE (bytes when SKIP_MICRO=1; default 1014, what the seed gives),
# RESULTS (bench/results/registry.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ $BUILD_DIR = /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
RUNS=${RUNS:-3}
CONCURRENCY=${CONCURRENCY:-1 16 64}
MAX_CALLS=${MAX_CALLS:-5000000}
COLD_STARTS=${COLD_STARTS:-5}
NAMESPACE=${NAMESPACE:-}
SKIP_MICRO=${SKIP_MICRO:-0}
RESPONSE_SIZE=${RESPONSE_SIZE:-1014}
RESULTS=${RESULTS:-$ROOT/bench/results/registry.md}
# shellcheck disable=SC2089,SC2090 # a string to print, never to run
COMMAND="BUILD_DIR=${BUILD_DIR#"$ROOT"/} DURATION=$DURATION WARMUP=$WARMUP RUNS=$RUNS \
CONCURRENCY='$CONCURRENCY' MAX_CALLS=$MAX_CALLS COLD_STARTS=$COLD_STARTS SKIP_MICRO=$SKIP_MICRO\
${NAMESPACE:+ NAMESPACE=$NAMESPACE} bench/registry.sh"

MICRO=$BUILD_DIR/micro
LOADGEN=$BUILD_DIR/bench/micro-loadgen
ECHO=$BUILD_DIR/bench/micro-bench-echo
PY=/usr/bin/python3
GET_METHOD=/micro.registry.v1.Registry/GetService
GET_REQUEST='name: "bench-3"'
ETCD_KEY=bench/registry/bench-3

log() { echo "registry.sh: $*" >&2; }
die() { log "$*"; exit 1; }

for tool in "$LOADGEN" "$ECHO" $([[ $SKIP_MICRO = 1 ]] || echo "$MICRO"); do
  [[ -x $tool ]] || die "$tool is missing; build it first (see bench/README.md)"
done
if ! command -v etcd >/dev/null; then
  log "installing etcd-server"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server >&2 ||
    { apt-get update >&2 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server >&2; }
fi

TMP=$(mktemp -d /tmp/micro-bench.XXXXXX)
DATA=$TMP/results.tsv  # kind \t system \t concurrency \t value (JSON or number)
source "$ROOT/bench/lib.sh"

NS_FLAGS=()
[[ -z $NAMESPACE ]] || NS_FLAGS=(--metadata "micro-namespace=$NAMESPACE")

# --- micro ---------------------------------------------------------------------------------------

# Starts a daemon on a fresh data dir; sets MICRO_PID and MICRO_ADDR, records the cold start.
start_micro() {
  local dir=$1 start out
  mkdir -p "$dir"
  start=$(date +%s%N)
  "$MICRO" server --address 127.0.0.1:0 --data-dir "$dir" --log-level warn >"$dir.log" 2>&1 &
  MICRO_PID=$!
  PIDS+=("$MICRO_PID")
  out=$("$LOADGEN" wait-ready --address-file "$dir/server.json" --since-ns "$start" \
    --timeout-ms 20000) || { tail -n 20 "$dir.log" >&2; die "micro server did not become ready"; }
  MICRO_ADDR=$(field address <<<"$out")
  record cold micro - "$(field ready_ms <<<"$out")"
  # Every call needs a token: micro-loadgen sends MICRO_TOKEN (the admin's).
  MICRO_TOKEN=$(micro_token "$MICRO" "$dir" "$MICRO_ADDR") || die "micro login --admin failed"
  export MICRO_TOKEN
}

ZONES=(a b c)
register_node() {
  local i=$1 n=$2
  "$LOADGEN" call --target "$MICRO_ADDR" --method /micro.registry.v1.Registry/Register \
    "${NS_FLAGS[@]}" --request-type micro.registry.v1.RegisterRequest --request-text "
service {
  name: \"bench-$i\" version: \"1.0.0\"
  metadata { key: \"owner\" value: \"team-platform\" }
  metadata { key: \"description\" value: \"registry benchmark service $i\" }
  metadata { key: \"protocol\" value: \"grpc\" }
  metadata { key: \"build\" value: \"2024-11-26T15:00:00Z 3f9c2a1\" }
  metadata { key: \"repository\" value: \"https://git.example.com/platform/bench-services.git\" }
  endpoints { name: \"Bench.Get\" metadata { key: \"request\" value: \"bench.GetRequest\" }
              metadata { key: \"response\" value: \"bench.GetResponse\" } }
  endpoints { name: \"Bench.List\" metadata { key: \"request\" value: \"bench.ListRequest\" }
              metadata { key: \"response\" value: \"bench.ListResponse\" } }
  endpoints { name: \"Bench.Update\" metadata { key: \"request\" value: \"bench.UpdateRequest\" }
              metadata { key: \"response\" value: \"bench.UpdateResponse\" } }
  endpoints { name: \"Bench.Watch\" metadata { key: \"request\" value: \"bench.WatchRequest\" }
              metadata { key: \"stream\" value: \"server\" } }
  nodes {
    id: \"bench-$i-0a1b2c3d-$n\" address: \"10.0.$i.1$n:9090\"
    metadata { key: \"zone\" value: \"eu-west-1${ZONES[n]}\" }
    metadata { key: \"host\" value: \"worker-$i-$n.bench.internal\" }
    metadata { key: \"started_unix_ms\" value: \"1732630000000\" }
    metadata { key: \"region\" value: \"eu-west-1\" }
    metadata { key: \"transport\" value: \"http2\" }
  }
}
ttl_seconds: 0" >/dev/null
}

if [[ $SKIP_MICRO != 1 ]]; then
  # The daemon that serves the benchmark is the last of the COLD_STARTS measured starts.
  for ((k = 2; k <= COLD_STARTS; k++)); do
    start_micro "$TMP/micro-cold-$k"
    stop_pid "$MICRO_PID"
  done
  start_micro "$TMP/data"
  for i in 0 1 2 3 4 5 6 7 8 9; do
    for n in 0 1 2; do register_node "$i" "$n"; done
  done
  RESPONSE_SIZE=$("$LOADGEN" call --target "$MICRO_ADDR" --method "$GET_METHOD" "${NS_FLAGS[@]}" \
    --request-type micro.registry.v1.GetServiceRequest --request-text "$GET_REQUEST" |
    field response_bytes)
  log "micro at $MICRO_ADDR: GetService(bench-3) answers $RESPONSE_SIZE bytes"
  ((RESPONSE_SIZE > 900)) || die "GetService answered only $RESPONSE_SIZE bytes: seeding failed?"
  sleep 1
  record rss micro idle "$(rss_mb "$MICRO_PID")"
fi
[[ $SKIP_MICRO = 1 ]] || record size micro - "$RESPONSE_SIZE"

# --- etcd ----------------------------------------------------------------------------------------

read -r ETCD_PORT ETCD_PEER_PORT < <(free_ports 2)
ETCD_ADDR=127.0.0.1:$ETCD_PORT
# A linearizable Range succeeds only once the member has elected itself: etcd's "ready".
ETCD_PROBE=$(pb_hex "1:s:$ETCD_KEY")

start_etcd() {
  local dir=$1 start out
  start=$(date +%s%N)
  etcd --name bench --data-dir "$dir" --log-level warn --logger zap \
    --listen-client-urls "http://$ETCD_ADDR" --advertise-client-urls "http://$ETCD_ADDR" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "bench=http://127.0.0.1:$ETCD_PEER_PORT" >"$dir.log" 2>&1 &
  ETCD_PID=$!
  PIDS+=("$ETCD_PID")
  out=$("$LOADGEN" wait-ready --target "$ETCD_ADDR" --method /etcdserverpb.KV/Range \
    --request-hex "$ETCD_PROBE" --since-ns "$start" --timeout-ms 30000) ||
    { tail -n 20 "$dir.log" >&2; die "etcd did not become ready"; }
  record cold etcd - "$(field ready_ms <<<"$out")"
}

etcd_put() {
  "$LOADGEN" call --target "$ETCD_ADDR" --method /etcdserverpb.KV/Put \
    --request-hex "$(pb_hex "1:s:$ETCD_KEY" "2:x:$1")" >/dev/null
}

ETCD_RANGE=$(pb_hex "1:s:$ETCD_KEY" "7:v:1")  # serializable: served by the member, no quorum read
etcd_range_size() {
  "$LOADGEN" call --target "$ETCD_ADDR" --method /etcdserverpb.KV/Range \
    --request-hex "$ETCD_RANGE" | field response_bytes
}

for ((k = 2; k <= COLD_STARTS; k++)); do
  start_etcd "$TMP/etcd-cold-$k"
  stop_pid "$ETCD_PID"
done
start_etcd "$TMP/etcd"
# Size the value so that the whole RangeResponse (header, key, revisions) is RESPONSE_SIZE bytes.
etcd_put "$RESPONSE_SIZE"
overhead=$(($(etcd_range_size) - RESPONSE_SIZE))
etcd_put $((RESPONSE_SIZE - overhead))
ETCD_SIZE=$(etcd_range_size)
((ETCD_SIZE - RESPONSE_SIZE <= 2 && RESPONSE_SIZE - ETCD_SIZE <= 2)) ||
  die "etcd Range answered $ETCD_SIZE bytes, wanted about $RESPONSE_SIZE: key not found?"
log "etcd at $ETCD_ADDR: Range($ETCD_KEY) answers $ETCD_SIZE bytes"
record size etcd - "$ETCD_SIZE"
sleep 1
record rss etcd idle "$(rss_mb "$ETCD_PID")"

# --- echo ----------------------------------------------------------------------------------------

"$ECHO" --address 127.0.0.1:0 >"$TMP/echo.out" 2>"$TMP/echo.log" &
ECHO_PID=$!
PIDS+=("$ECHO_PID")
for ((i = 0; i < 1000; i++)); do
  ECHO_ADDR=$(sed -n 's/^listening //p' "$TMP/echo.out")
  [[ -z $ECHO_ADDR ]] || break
  sleep 0.01
done
[[ -n $ECHO_ADDR ]] || die "micro-bench-echo did not start: $(cat "$TMP/echo.log")"
# EchoResponse{payload} costs 1 tag byte + the length varint on top of the payload.
ECHO_PAYLOAD=$("$PY" -c 'import sys
size = int(sys.argv[1])
def varint_len(n): return max(1, (n.bit_length() + 6) // 7)
print(max(p for p in range(size + 1) if p + 1 + varint_len(p) <= size))' "$RESPONSE_SIZE")
ECHO_REQUEST="response_size: $ECHO_PAYLOAD"
ECHO_SIZE=$("$LOADGEN" call --target "$ECHO_ADDR" --method /micro.bench.v1.Echo/Echo \
  --request-type micro.bench.v1.EchoRequest --request-text "$ECHO_REQUEST" | field response_bytes)
log "echo at $ECHO_ADDR: answers $ECHO_SIZE bytes"
record size echo - "$ECHO_SIZE"

# --- load ----------------------------------------------------------------------------------------

load() {
  local system=$1 c=$2 out
  shift 2
  if out=$("$LOADGEN" run "$@" --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP" \
    --max-calls "$MAX_CALLS" --json); then
    record run "$system" "$c" "$out"
  else
    log "$system at concurrency $c failed: $out"
    record run "$system" "$c" '{"failed": true}'
  fi
}

for c in $CONCURRENCY; do
  for ((r = 1; r <= RUNS; r++)); do
    log "concurrency $c, run $r of $RUNS"
    # Interleaved, so drift in the machine's speed touches every system alike.
    if [[ $SKIP_MICRO != 1 ]]; then
      load micro "$c" --target "$MICRO_ADDR" --method "$GET_METHOD" "${NS_FLAGS[@]}" \
        --request-type micro.registry.v1.GetServiceRequest --request-text "$GET_REQUEST"
    fi
    load etcd "$c" --target "$ETCD_ADDR" --method /etcdserverpb.KV/Range \
      --request-hex "$ETCD_RANGE"
    load echo "$c" --target "$ECHO_ADDR" --method /micro.bench.v1.Echo/Echo \
      --request-type micro.bench.v1.EchoRequest --request-text "$ECHO_REQUEST"
  done
done
[[ $SKIP_MICRO = 1 ]] || record rss micro peak "$(peak_rss_mb "$MICRO_PID")"
record rss etcd peak "$(peak_rss_mb "$ETCD_PID")"

# --- report --------------------------------------------------------------------------------------

build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
micro_version="micro skipped"
[[ $SKIP_MICRO = 1 ]] || micro_version=$(timeout 5 "$MICRO" --version 2>/dev/null | head -n 1 || true)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)
[[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] || commit="$commit (uncommitted changes)"
# shellcheck disable=SC2090
export COMMAND DURATION WARMUP RUNS SKIP_MICRO
REPORT_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
REPORT_MACHINE="$(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1), \
$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
REPORT_VERSIONS="${micro_version:-micro unknown} (commit $commit, ${build_type:-unknown} build); \
$(etcd --version | head -n 1); gRPC $(dpkg-query -W -f '${Version}' libgrpc++1.51 2>/dev/null || echo ?)"
export REPORT_DATE REPORT_MACHINE REPORT_VERSIONS

mkdir -p "$(dirname "$RESULTS")"
"$PY" - "$DATA" <<'PY' | tee "$RESULTS"
import json, os, statistics, sys
from collections import defaultdict

runs, cold, rss, size = defaultdict(list), defaultdict(list), {}, {}
for line in open(sys.argv[1]):
    kind, system, conc, value = line.rstrip("\n").split("\t", 3)
    if kind == "run": runs[(system, int(conc))].append(json.loads(value))
    elif kind == "cold": cold[system].append(float(value))
    elif kind == "rss": rss[(system, conc)] = value
    elif kind == "size": size[system] = int(value)

systems = ["micro", "etcd", "echo"]
skip = os.environ["SKIP_MICRO"] == "1"
def med(system, c, key):
    ok = [r[key] for r in runs.get((system, c), []) if not r.get("failed")]
    return statistics.median(ok) if ok else None
def fmt(v, digits=0): return "—" if v is None else f"{v:,.{digits}f}"
def ratio(a, b): return "—" if a is None or not b else f"{a / b:.2f}"
def lat(system, c):
    vals = [med(system, c, k) for k in ("p50_us", "p99_us", "p999_us")]
    return "—" if None in vals else " / ".join(f"{v:.0f}" for v in vals)

e = os.environ
print("# Registry read throughput: micro vs etcd 3.4 vs a do-nothing gRPC server\n")
print(f"- date: {e['REPORT_DATE']}")
print(f"- machine: {e['REPORT_MACHINE']}")
print(f"- versions: {e['REPORT_VERSIONS']}")
print(f"- command: `{e['COMMAND']}`")
print(f"- each cell: median of {e['RUNS']} runs of {e['DURATION']} s after {e['WARMUP']} s warm-up; "
      "load generator, servers and everything else share the machine's cores")
micro_call = ("**skipped (SKIP_MICRO=1)**" if skip else
              f"`Registry/GetService(bench-3)` ({size['micro']} B response, 10 services x 3 nodes)")
print(f"- calls: micro {micro_call}; etcd `KV/Range` serializable of one key ({size['etcd']} B); "
      f"echo `Echo` ({size['echo']} B)")
print()
concs = sorted({c for (_, c) in runs})
print("| concurrency | micro QPS | etcd QPS | echo QPS | micro/etcd | micro/echo "
      "| micro p50/p99/p99.9 µs | etcd p50/p99/p99.9 µs | echo p50/p99/p99.9 µs |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in concs:
    q = {s: med(s, c, "qps") for s in systems}
    print(f"| {c} | {fmt(q['micro'])} | {fmt(q['etcd'])} | {fmt(q['echo'])} "
          f"| {ratio(q['micro'], q['etcd'])} | {ratio(q['micro'], q['echo'])} "
          f"| {lat('micro', c)} | {lat('etcd', c)} | {lat('echo', c)} |")
print()
for s in systems:
    if s in cold:
        vals = ", ".join(f"{v:.0f}" for v in cold[s])
        print(f"- cold start {s}: median {statistics.median(cold[s]):.0f} ms ({vals})")
for s in ("micro", "etcd"):
    if (s, "idle") in rss:
        print(f"- RSS {s}: {rss[(s, 'idle')]} MB idle after seeding, "
              f"{rss.get((s, 'peak'), '?')} MB peak after the runs")
problems = []
for (s, c), rs in sorted(runs.items()):
    failed = sum(1 for r in rs if r.get("failed"))
    errors = sum(r.get("errors", 0) for r in rs)
    capped = sum(1 for r in rs if r.get("hit_max_calls"))
    first = next((r["first_error"] for r in rs if r.get("first_error")), "")
    if failed or errors or capped:
        problems.append(f"- {s} at concurrency {c}: {failed} failed runs, {errors} errors, "
                        f"{capped} runs cut by MAX_CALLS {first}".rstrip())
if problems:
    print("\n**Problems** (the medians above include these runs):")
    print("\n".join(problems))
PY
log "wrote $RESULTS"

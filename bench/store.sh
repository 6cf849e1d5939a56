#!/usr/bin/env bash
# Store throughput on this machine: micro's durable Store/Write (acknowledged after a synced WAL
# write) and Store/Read against etcd 3.4's KV/Put and serializable KV/Range, and against Redis 7
# with appendfsync always (SET) and GET, 256-byte values, at several client counts. Also, after
# the measured runs, one profiled write run per system (perf stat: CPU, syncs, context switches).
# See bench/README.md.
#
#   bench/store.sh                        # after: ninja -C build micro micro-loadgen
#
# Environment: BUILD_DIR (build), DURATION (5 s), WARMUP (1 s), RUNS (3), CONCURRENCY ("1 16 64"),
# MAX_CALLS (5000000 per run), VALUE_SIZE (256), KEYSPACE (100000: keys seeded for the reads, and
# redis-benchmark's -r), PROFILE (1: the profiled write runs; 0: none), PROFILE_CONCURRENCY
# (the last of CONCURRENCY), RESULTS (bench/results/store.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ $BUILD_DIR = /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
RUNS=${RUNS:-3}
CONCURRENCY=${CONCURRENCY:-1 16 64}
MAX_CALLS=${MAX_CALLS:-5000000}
VALUE_SIZE=${VALUE_SIZE:-256}
KEYSPACE=${KEYSPACE:-100000}
PROFILE=${PROFILE:-1}
PROFILE_CONCURRENCY=${PROFILE_CONCURRENCY:-${CONCURRENCY##* }}
RESULTS=${RESULTS:-$ROOT/bench/results/store.md}
# shellcheck disable=SC2089,SC2090 # a string to print, never to run
COMMAND="BUILD_DIR=${BUILD_DIR#"$ROOT"/} DURATION=$DURATION WARMUP=$WARMUP RUNS=$RUNS \
CONCURRENCY='$CONCURRENCY' MAX_CALLS=$MAX_CALLS VALUE_SIZE=$VALUE_SIZE KEYSPACE=$KEYSPACE \
PROFILE=$PROFILE bench/store.sh"

MICRO=$BUILD_DIR/micro
LOADGEN=$BUILD_DIR/bench/micro-loadgen
PY=/usr/bin/python3
DATABASE=bench
TABLE=kv
WRITE_METHOD=/micro.store.v1.Store/Write
READ_METHOD=/micro.store.v1.Store/Read

log() { echo "store.sh: $*" >&2; }
die() { log "$*"; exit 1; }

for tool in "$LOADGEN" "$MICRO"; do
  [[ -x $tool ]] || die "$tool is missing; build it first (see bench/README.md)"
done
apt_install() {
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2 ||
    { apt-get update >&2 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2; }
}
command -v etcd >/dev/null || apt_install etcd-server
# Debian's package does not start its own service where policy-rc.d forbids it (containers); where
# it does, that one listens on 6379 and is left alone: ours gets a port of its own.
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  apt_install redis-server redis-tools
fi
if [[ $PROFILE = 1 ]] && ! command -v perf >/dev/null; then
  log "perf is missing (apt-get install linux-perf): no profiled runs"
  PROFILE=0
fi

micro_built=$(date -u -r "$MICRO" '+%Y-%m-%d %H:%M UTC')  # the build dir may be shared
TMP=$(mktemp -d /tmp/micro-bench-store.XXXXXX)
DATA=$TMP/results.tsv  # kind \t system \t concurrency \t value (JSON or text)
source "$ROOT/bench/lib.sh"
json_get() { "$PY" -c 'import json, sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$@"; }

# --- the disk ------------------------------------------------------------------------------------

# What one synced small write costs here: the floor under any durable write that waits alone. It
# is measured before and after the runs, with the load average, since other work on the machine
# (builds, tests) can change it by an order of magnitude.
disk_probe() {  # when: records the mean µs of one synced 256-byte write, and the load average
  local out
  out=$(timeout 120 dd if=/dev/zero of="$TMP/dd" bs=256 count=2000 oflag=dsync 2>&1 | tail -n 1)
  rm -f "$TMP/dd"
  record disk "$1" - "$("$PY" -c 'import re, sys
m = re.search(r"copied, ([0-9.e-]+) s", sys.argv[1])
print(f"{float(m.group(1)) / 2000 * 1e6:.0f}" if m else "?")' "$out")"
  record load "$1" - "$(cut -d' ' -f1-3 /proc/loadavg)"
}
disk_probe before

# --- micro ---------------------------------------------------------------------------------------

VALUE=$(head -c "$VALUE_SIZE" /dev/zero | tr '\0' v)
micro_write_text() {  # key (with {n}): a WriteRequest of one record with a VALUE_SIZE value
  printf 'database: "%s" table: "%s" record { key: "%s" value: "%s" }' \
    "$DATABASE" "$TABLE" "$1" "$VALUE"
}
MICRO_READ_TEXT="database: \"$DATABASE\" table: \"$TABLE\" key: \"r-{n}\""

mkdir -p "$TMP/data"
start=$(date +%s%N)
"$MICRO" server --address 127.0.0.1:0 --data-dir "$TMP/data" --log-level warn >"$TMP/micro.log" 2>&1 &
MICRO_PID=$!
PIDS+=("$MICRO_PID")
out=$("$LOADGEN" wait-ready --address-file "$TMP/data/server.json" --since-ns "$start" \
  --timeout-ms 20000) || { tail -n 20 "$TMP/micro.log" >&2; die "micro server did not become ready"; }
MICRO_ADDR=$(field address <<<"$out")
# Every call needs a token: micro-loadgen sends MICRO_TOKEN (the admin's).
MICRO_TOKEN=$(micro_token "$MICRO" "$TMP/data" "$MICRO_ADDR") || die "micro login --admin failed"
export MICRO_TOKEN
log "micro at $MICRO_ADDR"

# --- etcd ----------------------------------------------------------------------------------------

read -r ETCD_PORT ETCD_PEER_PORT REDIS_PORT < <(free_ports 3)
ETCD_ADDR=127.0.0.1:$ETCD_PORT
ETCD_RANGE=$(pb_hex "1:s:bench/kv/r-{nnnnnnnnnn}" "7:v:1")  # serializable: no quorum read
etcd_put_hex() { pb_hex "1:s:$1" "2:x:$VALUE_SIZE"; }

start=$(date +%s%N)
etcd --name bench --data-dir "$TMP/etcd" --log-level warn --logger zap \
  --listen-client-urls "http://$ETCD_ADDR" --advertise-client-urls "http://$ETCD_ADDR" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "bench=http://127.0.0.1:$ETCD_PEER_PORT" >"$TMP/etcd.log" 2>&1 &
ETCD_PID=$!
PIDS+=("$ETCD_PID")
# A linearizable Range succeeds only once the member has elected itself: etcd's "ready".
"$LOADGEN" wait-ready --target "$ETCD_ADDR" --method /etcdserverpb.KV/Range \
  --request-hex "$(pb_hex "1:s:bench/kv/probe")" --since-ns "$start" --timeout-ms 30000 >/dev/null ||
  { tail -n 20 "$TMP/etcd.log" >&2; die "etcd did not become ready"; }
log "etcd at $ETCD_ADDR"

# --- redis ---------------------------------------------------------------------------------------

mkdir -p "$TMP/redis"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes --dir "$TMP/redis" \
  --appendonly yes --appendfsync always --save '' --daemonize no \
  --logfile "$TMP/redis.log" >/dev/null 2>&1 &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
for ((i = 0; i < 500; i++)); do
  [[ $(timeout 2 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) = PONG ]] && break
  kill -0 "$REDIS_PID" 2>/dev/null || { cat "$TMP/redis.log" >&2; die "redis-server exited"; }
  sleep 0.02
done
[[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" config get appendfsync | tail -n 1) = always ]] ||
  { cat "$TMP/redis.log" >&2; die "redis did not start with appendfsync always"; }
log "redis at 127.0.0.1:$REDIS_PORT (appendonly yes, appendfsync always)"

# --- seeding: KEYSPACE keys in each, for the reads -----------------------------------------------

seed() {  # system, then loadgen flags: writes keys 0..KEYSPACE-1, every call must succeed
  local system=$1 out
  shift
  out=$("$LOADGEN" run "$@" --concurrency 64 --warmup 0 --duration 600 --max-calls "$KEYSPACE" \
    --json) || die "seeding $system failed: $out"
  [[ $(json_get "$out" errors) = 0 && $(json_get "$out" calls) = "$KEYSPACE" ]] ||
    die "seeding $system: not every write succeeded: $out"
  log "seeded $KEYSPACE keys into $system at $(json_get "$out" qps | cut -d. -f1)/s"
}
seed micro --target "$MICRO_ADDR" --method "$WRITE_METHOD" \
  --request-type micro.store.v1.WriteRequest --request-text "$(micro_write_text "r-{n}")"
seed etcd --target "$ETCD_ADDR" --method /etcdserverpb.KV/Put \
  --request-hex "$(etcd_put_hex "bench/kv/r-{nnnnnnnnnn}")"
# The keys redis-benchmark -r reads: key:NNNNNNNNNNNN, 12 digits.
"$PY" - "$KEYSPACE" "$VALUE_SIZE" <<'PY' | timeout 300 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --pipe >&2 ||
import sys
keys, size = int(sys.argv[1]), int(sys.argv[2])
value = b"x" * size
out = sys.stdout.buffer
for i in range(keys):
    key = b"key:%012d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, size, value))
PY
  die "seeding redis failed"
[[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" dbsize) = "$KEYSPACE" ]] || die "seeding redis: wrong dbsize"
log "seeded $KEYSPACE keys into redis"

# Every read must find its record: the size of one answer says what a read returns.
MICRO_READ_SIZE=$("$LOADGEN" call --target "$MICRO_ADDR" --method "$READ_METHOD" \
  --request-type micro.store.v1.ReadRequest --request-text "$MICRO_READ_TEXT" | field response_bytes)
ETCD_READ_SIZE=$("$LOADGEN" call --target "$ETCD_ADDR" --method /etcdserverpb.KV/Range \
  --request-hex "$ETCD_RANGE" | field response_bytes)
((ETCD_READ_SIZE > VALUE_SIZE)) || die "etcd Range answered $ETCD_READ_SIZE bytes: key not found?"
record size micro-read - "$MICRO_READ_SIZE"
record size etcd-range - "$ETCD_READ_SIZE"
sleep 1
record rss micro idle "$(rss_mb "$MICRO_PID")"
record rss etcd idle "$(rss_mb "$ETCD_PID")"
record rss redis idle "$(rss_mb "$REDIS_PID")"

# --- load ----------------------------------------------------------------------------------------

load() {  # system, concurrency, then loadgen flags
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

# redis-benchmark runs a count, not a time: counts come from the rate of the run before, so that
# each run takes about DURATION s (WARMUP s of warm-up first, not measured), and every run is
# bounded in time as well.
declare -A REDIS_RATE
redis_bench() {  # test, concurrency, count: prints the CSV's data line
  timeout $((DURATION * 4 + 30)) redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -t "$1" \
    -d "$VALUE_SIZE" -c "$2" -n "$3" -r "$KEYSPACE" -P 1 --csv 2>"$TMP/redis-bench.err" |
    grep -v '^"test"' | grep . | tail -n 1
}
redis_rps() { cut -d, -f2 <<<"$1" | tr -d '"' | cut -d. -f1; }
count_for() { "$PY" -c 'import sys
rate, secs, cap = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print(max(100, min(cap, int(rate * secs))))' "$1" "$2" "$MAX_CALLS"; }
redis_load() {  # system, test (set or get), concurrency
  local system=$1 test=$2 c=$3 key="$2-$3" line n
  if [[ -z ${REDIS_RATE[$key]:-} ]]; then
    line=$(redis_bench "$test" "$c" $((1000 + 100 * c))) || true
    REDIS_RATE[$key]=$(redis_rps "$line")
    [[ ${REDIS_RATE[$key]:-0} -gt 0 ]] || REDIS_RATE[$key]=1000
  fi
  if [[ $WARMUP != 0 ]]; then
    line=$(redis_bench "$test" "$c" "$(count_for "${REDIS_RATE[$key]}" "$WARMUP")") || true
  fi
  n=$(count_for "${REDIS_RATE[$key]}" "$DURATION")
  if line=$(redis_bench "$test" "$c" "$n") && [[ $(redis_rps "$line") -gt 0 ]] &&
    ! grep -qi error "$TMP/redis-bench.err"; then
    REDIS_RATE[$key]=$(redis_rps "$line")
    record run "$system" "$c" "$("$PY" -c 'import csv, json, sys
row = next(csv.reader([sys.argv[1]]))
rps, n = float(row[1]), int(sys.argv[2])
print(json.dumps({"qps": rps, "calls": n, "seconds": n / rps, "errors": 0,
                  "p50_us": float(row[4]) * 1000, "p99_us": float(row[6]) * 1000,
                  "max_us": float(row[7]) * 1000}))' "$line" "$n")"
  else
    log "$system at concurrency $c failed: $line $(head -c 300 "$TMP/redis-bench.err")"
    record run "$system" "$c" '{"failed": true}'
  fi
}

micro_write() {  # concurrency, key prefix
  load micro-write "$1" --target "$MICRO_ADDR" --method "$WRITE_METHOD" \
    --request-type micro.store.v1.WriteRequest --request-text "$(micro_write_text "$2{n}")"
}
etcd_put() {
  load etcd-put "$1" --target "$ETCD_ADDR" --method /etcdserverpb.KV/Put \
    --request-hex "$(etcd_put_hex "bench/kv/$2{nnnnnnnnnn}")"
}

for c in $CONCURRENCY; do
  for ((r = 1; r <= RUNS; r++)); do
    log "concurrency $c, run $r of $RUNS"
    # Interleaved, so drift in the machine's speed touches every system alike. Each write run
    # writes keys of its own (w-cC-rR-NNNNNNNNNNNN); reads cycle through the seeded keys.
    micro_write "$c" "w-c$c-r$r-"
    etcd_put "$c" "w-c$c-r$r-"
    redis_load redis-set set "$c"
    load micro-read "$c" --target "$MICRO_ADDR" --method "$READ_METHOD" \
      --request-type micro.store.v1.ReadRequest --request-text "$MICRO_READ_TEXT" \
      --number-modulo "$KEYSPACE"
    load etcd-range "$c" --target "$ETCD_ADDR" --method /etcdserverpb.KV/Range \
      --request-hex "$ETCD_RANGE" --number-modulo "$KEYSPACE"
    redis_load redis-get get "$c"
  done
done

# --- profiled write runs -------------------------------------------------------------------------

# One more write run per system, not in the table: perf stat counts the server's CPU time, context
# switches and fsync/fdatasync calls over DURATION s of it, and the client's CPU time; for micro,
# perf record samples where the daemon's threads spend their time.
PERF_EVENTS=task-clock,context-switches,syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync
# A client in the background is stopped by cleanup if the script is interrupted; once it has
# ended by itself (each is bounded in time and calls) and been waited for, it is forgotten.
forget_pid() {
  local i kept=()
  for i in "${PIDS[@]}"; do [[ $i = "$1" ]] || kept+=("$i"); done
  PIDS=("${kept[@]}")
}
perf_window() {  # system, server pid, client pid: counts both over DURATION s
  local system=$1 server=$2 client=$3 p1 p2
  timeout $((DURATION + 30)) perf stat -x, -e "$PERF_EVENTS" -p "$server" \
    -o "$TMP/perf-$system.server" -- sleep "$DURATION" 2>/dev/null &
  p1=$!
  timeout $((DURATION + 30)) perf stat -x, -e task-clock -p "$client" \
    -o "$TMP/perf-$system.client" -- sleep "$DURATION" 2>/dev/null &
  p2=$!
  wait "$p1" "$p2" || true
  record perf "$system" server "$(tr '\n' ';' <"$TMP/perf-$system.server" 2>/dev/null)"
  record perf "$system" client "$(tr '\n' ';' <"$TMP/perf-$system.client" 2>/dev/null)"
}
profile_loadgen() {  # system, server pid, then loadgen flags
  local system=$1 server=$2 client out
  shift 2
  "$LOADGEN" run "$@" --concurrency "$PROFILE_CONCURRENCY" --duration "$DURATION" \
    --warmup "$WARMUP" --max-calls "$MAX_CALLS" --json >"$TMP/profile-$system.json" &
  client=$!
  PIDS+=("$client")
  sleep "$WARMUP"
  perf_window "$system" "$server" "$client"
  wait "$client" || true
  forget_pid "$client"
  out=$(cat "$TMP/profile-$system.json")
  [[ -n $out ]] || out='{"failed": true}'
  record perf "$system" run "$out"
}
if [[ $PROFILE = 1 ]]; then
  c=$PROFILE_CONCURRENCY
  log "profiled write runs at concurrency $c"
  record load profile - "$(cut -d' ' -f1-3 /proc/loadavg)"
  "$LOADGEN" run --target "$MICRO_ADDR" --method "$WRITE_METHOD" \
    --request-type micro.store.v1.WriteRequest --request-text "$(micro_write_text "p-rec-{n}")" \
    --concurrency "$c" --duration "$DURATION" --warmup "$WARMUP" --max-calls "$MAX_CALLS" \
    >/dev/null &
  client=$!
  PIDS+=("$client")
  sleep "$WARMUP"
  timeout $((DURATION + 30)) perf record -F 499 --call-graph dwarf,16384 -p "$MICRO_PID" \
    -o "$TMP/perf.data" -- sleep "$DURATION" >/dev/null 2>&1 || true
  wait "$client" || true
  forget_pid "$client"
  if [[ -s $TMP/perf.data ]]; then
    # By thread (tid:name; unnamed threads such as the store's committer carry the process name),
    # then inclusive shares of the write path's steps, then the top symbols.
    perf report -i "$TMP/perf.data" --stdio --no-children --sort pid -g none 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -n 8 >"$TMP/perf-thread.txt" || true
    perf report -i "$TMP/perf.data" --stdio --children --sort pid,sym -g none 2>/dev/null |
      grep -E '^ +[0-9.]+%' | grep -E '(RocksDbStore::(CommitLoop|Commit)|ServerUnaryReactor::Finish|DBImpl::(Write|Get)|StoreService::Write|SerialExecutor::Loop)$|fdatasync|__libc_sendmsg$' |
      awk '$1 + 0 >= 0.5' | head -n 16 >"$TMP/perf-steps.txt" || true
    perf report -i "$TMP/perf.data" --stdio --no-children --sort dso,sym -g none 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -n 12 >"$TMP/perf-sym.txt" || true
    record profile micro thread "$(tr '\n' ';' <"$TMP/perf-thread.txt")"
    record profile micro steps "$(tr '\n' ';' <"$TMP/perf-steps.txt")"
    record profile micro sym "$(tr '\n' ';' <"$TMP/perf-sym.txt")"
  fi
  profile_loadgen micro "$MICRO_PID" --target "$MICRO_ADDR" --method "$WRITE_METHOD" \
    --request-type micro.store.v1.WriteRequest --request-text "$(micro_write_text "p-{n}")"
  profile_loadgen etcd "$ETCD_PID" --target "$ETCD_ADDR" --method /etcdserverpb.KV/Put \
    --request-hex "$(etcd_put_hex "bench/kv/p-{nnnnnnnnnn}")"
  # redis-benchmark runs a count: MAX_CALLS, bounded in time by timeout, and stopped once perf has
  # counted DURATION s of it (from WARMUP s on). The writes in that window are the difference in
  # Redis's own count of SET calls.
  n=$MAX_CALLS
  timeout $((DURATION * 4 + 30)) redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -t set \
    -d "$VALUE_SIZE" -c "$c" -n "$n" -r "$KEYSPACE" -P 1 -q >/dev/null 2>&1 &
  client=$!
  PIDS+=("$client")
  sleep "$WARMUP"
  bench_pid=$(pgrep -P "$client" -x redis-benchmark || true)
  set_calls() {
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info commandstats |
      sed -n 's/^cmdstat_set:calls=\([0-9]*\).*/\1/p'
  }
  before=$(set_calls)
  t0=$(date +%s%N)
  [[ -z $bench_pid ]] || perf_window redis "$REDIS_PID" "$bench_pid"
  after=$(set_calls)
  t1=$(date +%s%N)
  alive=0
  kill -0 "$bench_pid" 2>/dev/null && alive=1
  stop_pid "$client"
  if [[ -n $bench_pid && $alive = 1 && -n $before && -n $after ]]; then
    record perf redis run "{\"qps\": $(((after - before) * 1000000000 / (t1 - t0)))}"
  else
    log "profiled redis run: redis-benchmark was not running for the whole window"
    record perf redis run '{"failed": true}'
  fi
fi
disk_probe after
record rss micro peak "$(peak_rss_mb "$MICRO_PID")"
record rss etcd peak "$(peak_rss_mb "$ETCD_PID")"
record rss redis peak "$(peak_rss_mb "$REDIS_PID")"

# --- report --------------------------------------------------------------------------------------

build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
micro_version=$(timeout 5 "$MICRO" --version 2>/dev/null | head -n 1 || true)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)
[[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] || commit="$commit (uncommitted changes)"
rocksdb_version=$(dpkg-query -W -f '${Version}' librocksdb-dev 2>/dev/null || echo ?)
# shellcheck disable=SC2090
export COMMAND DURATION WARMUP RUNS VALUE_SIZE KEYSPACE PROFILE_CONCURRENCY
REPORT_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
REPORT_MACHINE="$(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1), \
$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r), \
$(df -T "$TMP" | awk 'NR == 2 { print $2 }') on $(df "$TMP" | awk 'NR == 2 { print $1 }')"
REPORT_VERSIONS="${micro_version:-micro unknown} (commit $commit, ${build_type:-unknown} build of \
$micro_built, RocksDB $rocksdb_version); $(etcd --version | head -n 1); \
$(redis-server --version | sed 's/ sha=.*//'); gRPC $(dpkg-query -W -f '${Version}' libgrpc++1.51 \
2>/dev/null || echo ?)"
export REPORT_DATE REPORT_MACHINE REPORT_VERSIONS

mkdir -p "$(dirname "$RESULTS")"
"$PY" - "$DATA" <<'PY' | tee "$RESULTS"
import json, os, statistics, sys
from collections import defaultdict

runs, rss, size, perf, profile, disk, load = defaultdict(list), {}, {}, {}, {}, {}, {}
for line in open(sys.argv[1]):
    kind, system, conc, value = line.rstrip("\n").split("\t", 3)
    if kind == "run": runs[(system, int(conc))].append(json.loads(value))
    elif kind == "rss": rss[(system, conc)] = value
    elif kind == "size": size[system] = int(value)
    elif kind == "perf": perf[(system, conc)] = value
    elif kind == "profile": profile[conc] = [l for l in value.split(";") if l.strip()]
    elif kind == "disk": disk[system] = value
    elif kind == "load": load[system] = value

e = os.environ
def med(system, c, key):
    ok = [r[key] for r in runs.get((system, c), []) if not r.get("failed") and key in r]
    return statistics.median(ok) if ok else None
def fmt(v, digits=0): return "—" if v is None else f"{v:,.{digits}f}"
def ratio(a, b): return None if a is None or not b else a / b
def fratio(v): return "—" if v is None else f"{v:.2f}"
def lat(system, c):
    vals = [med(system, c, k) for k in ("p50_us", "p99_us")]
    return "—" if None in vals else " / ".join(f"{v:,.0f}" for v in vals)

print("# Store throughput: micro vs etcd 3.4 vs Redis 7 (durable writes, reads)\n")
print(f"- date: {e['REPORT_DATE']}")
print(f"- machine: {e['REPORT_MACHINE']}")
print(f"- disk and load: one synced 256-byte write (`dd bs=256 count=2000 oflag=dsync`) took "
      f"{disk.get('before', '?')} µs before the runs and {disk.get('after', '?')} µs after; load "
      f"average {load.get('before', '?')} before, {load.get('after', '?')} after")
print(f"- versions: {e['REPORT_VERSIONS']}")
print(f"- command: `{e['COMMAND']}`")
print(f"- each cell: median of {e['RUNS']} runs of {e['DURATION']} s after {e['WARMUP']} s warm-up; "
      "clients, servers and everything else share the machine's cores")
print(f"- writes, {e['VALUE_SIZE']}-byte values, a new key per call: micro `Store/Write` "
      "(database `bench`, table `kv`, acknowledged after a synced RocksDB WAL write); etcd `KV/Put` "
      "(acknowledged after its WAL fsync); Redis `SET` with `appendonly yes, appendfsync always` "
      "(redis-benchmark `-r` keys: random, not all new)")
print(f"- reads of {int(e['KEYSPACE']):,} seeded keys: micro `Store/Read` of one key "
      f"({size.get('micro-read', '?')} B answer), etcd `KV/Range` serializable of one key "
      f"({size.get('etcd-range', '?')} B), Redis `GET` (random keys); micro and etcd cycle through "
      "the keys in order")
print()
concs = sorted({c for (_, c) in runs})
q = {(s, c): med(s, c, "qps") for (s, c) in runs}
print("| clients | micro write QPS | etcd put QPS | redis SET (fsync always) QPS | micro/etcd "
      "| micro/redis | micro read QPS | etcd range QPS | redis GET QPS | micro/etcd | micro/redis |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in concs:
    w, ep, rs = q.get(("micro-write", c)), q.get(("etcd-put", c)), q.get(("redis-set", c))
    rd, er, rg = q.get(("micro-read", c)), q.get(("etcd-range", c)), q.get(("redis-get", c))
    print(f"| {c} | {fmt(w)} | {fmt(ep)} | {fmt(rs)} | {fratio(ratio(w, ep))} "
          f"| {fratio(ratio(w, rs))} | {fmt(rd)} | {fmt(er)} | {fmt(rg)} "
          f"| {fratio(ratio(rd, er))} | {fratio(ratio(rd, rg))} |")
print()
print("Latency of one call, client-side, p50 / p99 µs (redis-benchmark reports in ms with 3 "
      "decimals, so its values are multiples of 1 µs):\n")
print("| clients | micro write | etcd put | redis SET | micro read | etcd range | redis GET |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for c in concs:
    print(f"| {c} | " + " | ".join(lat(s, c) for s in
          ("micro-write", "etcd-put", "redis-set", "micro-read", "etcd-range", "redis-get")) + " |")
print()

# The targets, as set: durable writes >= 3x etcd Put and >= Redis fsync-always SET at 16 and 64
# clients; reads >= 2x etcd Range and >= half of Redis GET.
def check(label, v, goal):
    if v is None: return f"{label} —"
    return f"{label} {v:.2f} {'✅' if v >= goal else '❌'}"
print("Targets (writes at 16 and 64 clients: ≥ 3x etcd, ≥ 1x Redis; reads: ≥ 2x etcd, ≥ 0.5x "
      "Redis):\n")
for c in concs:
    w, rd = q.get(("micro-write", c)), q.get(("micro-read", c))
    parts = []
    if c >= 16:
        parts += [check("write/etcd", ratio(w, q.get(("etcd-put", c))), 3),
                  check("write/redis", ratio(w, q.get(("redis-set", c))), 1)]
    parts += [check("read/etcd", ratio(rd, q.get(("etcd-range", c))), 2),
              check("read/redis", ratio(rd, q.get(("redis-get", c))), 0.5)]
    print(f"- {c} clients: " + ", ".join(parts))
print()

for s in ("micro", "etcd", "redis"):
    if (s, "idle") in rss:
        print(f"- RSS {s}: {rss[(s, 'idle')]} MB idle after seeding, "
              f"{rss.get((s, 'peak'), '?')} MB peak after the runs")

def perf_counts(text):
    out = {}
    for row in text.split(";"):
        cols = row.split(",")
        if len(cols) >= 3 and cols[2] and not row.startswith("#"):
            try: out[cols[2]] = float(cols[0])
            except ValueError: pass
    return out
if perf:
    secs = float(e["DURATION"])
    print(f"\n### Where the time goes: one profiled write run per system, "
          f"{e['PROFILE_CONCURRENCY']} clients\n")
    print(f"perf stat over {e['DURATION']} s of an extra write run (not in the tables above; one "
          "run each, so noisier than the medians): the server's CPU, the client's CPU "
          "(micro-loadgen or redis-benchmark), syncs (fsync + fdatasync calls) and context "
          f"switches, per second and per write. Load average as they started (the benchmark "
          f"itself keeps about 2 busy): {load.get('profile', '?')}.\n")
    print("| system | writes/s | server CPU (cores) | client CPU (cores) | server CPU µs/write "
          "| syncs/s | writes/sync | ctx switches/write |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in ("micro", "etcd", "redis"):
        if (s, "run") not in perf: continue
        run = json.loads(perf[(s, "run")])
        srv, cli = perf_counts(perf.get((s, "server"), "")), perf_counts(perf.get((s, "client"), ""))
        qps = run.get("qps")
        syncs = srv.get("syscalls:sys_enter_fsync", 0) + srv.get("syscalls:sys_enter_fdatasync", 0)
        cpu = srv.get("task-clock")
        ccpu = cli.get("task-clock")
        writes = qps * secs if qps else None
        cells = [fmt(qps), fmt(cpu and cpu / 1000 / secs, 2), fmt(ccpu and ccpu / 1000 / secs, 2),
                 fmt(cpu and writes and cpu * 1000 / writes, 1), fmt(syncs / secs),
                 fmt(writes / syncs if writes and syncs else None, 1),
                 fmt(writes and srv.get("context-switches", 0) / writes, 2)]
        print(f"| {s} | " + " | ".join(cells) + " |")
    if profile.get("thread"):
        print("\nmicro daemon, `perf record --call-graph dwarf` during another such run, shares of "
              "its on-CPU samples: by thread; then, inclusive, the steps of the write path (the "
              "thread that runs `CommitLoop` is the committer); then the top symbols:\n")
        print("```")
        for key in ("thread", "steps", "sym"):
            print("\n".join(l.rstrip() for l in profile.get(key, [])))
            if key != "sym": print()
        print("```")
    print()

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

print("""
Notes:
- micro and etcd are driven by micro-loadgen (gRPC C++ callback API, one connection per 16 calls
  in flight); Redis by redis-benchmark (single-threaded C, RESP, one connection per client). The
  clients run on the same cores as the servers, and a gRPC client costs far more CPU per call than
  redis-benchmark does, so on a small machine the load generator takes a large share of the CPU
  that the server under test could otherwise use: see the client CPU column above.
- Redis: redis-benchmark runs a count, not a time; the count comes from the previous run's rate so
  that a run lasts about DURATION s, and a run of WARMUP s precedes each. Its p99 is its own
  (histogram, ms with 3 decimals); it reports no p99.9.
- Redis with appendfsync always writes and fsyncs its AOF once per event-loop iteration, before
  answering the clients whose commands that iteration ran: group commit, like micro's committer
  thread and etcd's raft batching.""")
PY
log "wrote $RESULTS"

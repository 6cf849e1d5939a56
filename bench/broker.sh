#!/usr/bin/env bash
# Broker throughput and latency on this machine: micro's broker (PublishStream + SubscribeBatches)
# against nats-server (Debian's nats-server, core NATS, no JetStream) driven by a C client on
# Debian's libnats. Both systems in one run, interleaved; medians of RUNS runs. See bench/README.md.
#
#   bench/broker.sh          # after: ninja -C build micro micro-bench-broker-client micro-bench-nats-client
#
# Environment: BUILD_DIR (build), RUNS (3), MESSAGES (200000 per throughput run), LAT_MESSAGES
# (20000), LAT_RATE (10000 messages/s in the latency runs), BATCH (256 messages per PublishStream
# write), RESULTS (bench/results/broker.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ $BUILD_DIR = /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR
RUNS=${RUNS:-5}
MESSAGES=${MESSAGES:-200000}
LAT_MESSAGES=${LAT_MESSAGES:-20000}
LAT_RATE=${LAT_RATE:-10000}
BATCH=${BATCH:-256}
RESULTS=${RESULTS:-$ROOT/bench/results/broker.md}
COMMAND="BUILD_DIR=${BUILD_DIR#"$ROOT"/} RUNS=$RUNS MESSAGES=$MESSAGES LAT_MESSAGES=$LAT_MESSAGES \
LAT_RATE=$LAT_RATE BATCH=$BATCH bench/broker.sh"

MICRO=$BUILD_DIR/micro
MICRO_CLIENT=$BUILD_DIR/bench/micro-bench-broker-client
NATS_CLIENT=$BUILD_DIR/bench/micro-bench-nats-client
PY=/usr/bin/python3

log() { echo "broker.sh: $*" >&2; }
die() { log "$*"; exit 1; }

NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
[[ -x $NATS_SERVER ]] || die "nats-server is missing: apt-get install nats-server"
for tool in "$MICRO" "$MICRO_CLIENT" "$NATS_CLIENT"; do
  [[ -x $tool ]] || die "$tool is missing; build it first (micro-bench-nats-client needs libnats-dev)"
done

TMP=$(mktemp -d /tmp/micro-bench.XXXXXX)
DATA=$TMP/results.tsv  # kind \t system \t case \t loadgen line
source "$ROOT/bench/lib.sh"

# --- the servers, on 127.0.0.1 ------------------------------------------------------------------
read -r NATS_PORT < <(free_ports 1)
"$NATS_SERVER" -a 127.0.0.1 -p "$NATS_PORT" >"$TMP/nats.log" 2>&1 &
NATS_PID=$!
PIDS+=("$NATS_PID")
# The subscriber buffer as nats-server's default max_pending (64 MiB per connection), so both
# hold the same backlog before they drop (micro) or cut off a slow consumer (NATS).
"$MICRO" server --address 127.0.0.1:0 --data-dir "$TMP/data" --log-level warn \
  --broker-subscriber-buffer-bytes 67108864 >"$TMP/micro.log" 2>&1 &
MICRO_PID=$!
PIDS+=("$MICRO_PID")
for _ in $(seq 200); do
  [[ -s $TMP/data/server.json ]] && break
  sleep 0.05
done
MICRO_ADDRESS=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["grpc_address"])' \
  "$TMP/data/server.json") || die "micro server did not start: $(tail -n 5 "$TMP/micro.log")"
# Every call needs a token: the bench client sends MICRO_TOKEN (the admin's).
MICRO_TOKEN=$(micro_token "$MICRO" "$TMP/data" "$MICRO_ADDRESS") || die "micro login --admin failed"
export MICRO_TOKEN
NATS_URL=nats://127.0.0.1:$NATS_PORT
for _ in $(seq 200); do
  (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break
  sleep 0.05
done
OTHERS=$(pgrep -fa 'ninja|cc1plus|ctest' | grep -v "$$" | awk '{print $2}' | sort | uniq -c |
  awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}' || true)
log "micro on $MICRO_ADDRESS (pid $MICRO_PID), nats-server on $NATS_URL (pid $NATS_PID)"

# --- the runs ---------------------------------------------------------------------------------------
# case: name, subscribers, size, messages, rate
CASES=(
  "1to1-16B 1 16 $((MESSAGES * 5)) 0"  # 200,000 small messages pass in about 0.1 s: too short to time
  "1to1-1KiB 1 1024 $MESSAGES 0"
  "1to5-16B 5 16 $MESSAGES 0"
  "1to5-1KiB 5 1024 $((MESSAGES / 2)) 0"
  "latency-1to1-16B 1 16 $LAT_MESSAGES $LAT_RATE"
)
run=0
for ((r = 1; r <= RUNS; r++)); do
  for c in "${CASES[@]}"; do
    read -r name subs size count rate <<<"$c"
    run=$((run + 1))
    subject="bench.$run.$name"
    batch=$BATCH
    [[ $rate = 0 ]] || batch=1  # paced: each message goes as it is published
    line=$("$MICRO_CLIENT" "$MICRO_ADDRESS" "$subject" "$subs" "$size" "$count" "$rate" "$batch")
    log "micro $name run $r: $line"
    record run micro "$name" "$line"
    line=$("$NATS_CLIENT" "$NATS_URL" "$subject" "$subs" "$size" "$count" "$rate")
    log "nats  $name run $r: $line"
    record run nats "$name" "$line"
  done
done
MICRO_RSS=$(peak_rss_mb "$MICRO_PID")
NATS_RSS=$(peak_rss_mb "$NATS_PID")
NATS_VERSION=$("$NATS_SERVER" --version 2>&1 | head -n 1)
GRPC_VERSION=$(dpkg-query -W -f '${Version}' libgrpc++1.51 2>/dev/null || echo unknown)
NATS_C_VERSION=$(pkg-config --modversion libnats 2>/dev/null || echo unknown)

# --- the table -----------------------------------------------------------------------------------
{
  echo "# Broker: micro vs nats-server (core NATS)"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1), kernel $(uname -r)"
  echo "- versions: $("$MICRO" version 2>/dev/null | head -n 1) (commit $(git -C "$ROOT" rev-parse --short HEAD)); $NATS_VERSION; libnats $NATS_C_VERSION; gRPC $GRPC_VERSION"
  echo "- command: \`$COMMAND\`"
  echo "- also running on the machine during the run: ${OTHERS:-nothing else of note (no ninja, compiler or ctest)}"
  echo "- each cell: median of $RUNS runs; publisher, subscribers and servers share the machine's cores"
  echo "- micro: one PublishStream, $BATCH messages per write (1 in the paced latency case); each subscriber SubscribeBatches on a connection of its own; daemon with \`--broker-subscriber-buffer-bytes 67108864\` (64 MiB, nats-server's default max_pending; the default is 8 MiB); the client keeps large receive buffers in the heap (mallopt M_MMAP_THRESHOLD 64 MiB, M_TRIM_THRESHOLD 256 MiB)"
  echo "- NATS: libnats publisher (buffered, flushed at the end); each subscriber an async subscription on a connection of its own"
  echo "- msgs/s: messages that reached each subscriber per second, first publish to last receive; latency: publish call to receive, same clock"
  echo
  "$PY" - "$DATA" <<'PYEOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    kind, system, case, text = line.rstrip("\n").split("\t")
    fields = dict(item.split("=") for item in text.split())
    rows.setdefault((case, system), []).append({k: float(v) for k, v in fields.items()})
cases = []
for case, _ in rows:
    if case not in cases:
        cases.append(case)
def med(case, system, key):
    return statistics.median(r[key] for r in rows[(case, system)])
print("| case | micro msgs/s | NATS msgs/s | micro/NATS | micro p50 / p99 µs | NATS p50 / p99 µs | micro dropped | NATS dropped |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for case in cases:
    m, n = med(case, "micro", "msgs_per_s"), med(case, "nats", "msgs_per_s")
    print("| %s | %s | %s | %.2f | %.0f / %.0f | %.0f / %.0f | %.0f | %.0f |" % (
        case, format(int(m), ","), format(int(n), ","), m / n if n else 0,
        med(case, "micro", "p50_us"), med(case, "micro", "p99_us"),
        med(case, "nats", "p50_us"), med(case, "nats", "p99_us"),
        med(case, "micro", "dropped"), med(case, "nats", "dropped")))
PYEOF
  echo
  echo "- peak RSS after the runs: micro $MICRO_RSS MB, nats-server $NATS_RSS MB"
} >"$RESULTS"
cat "$RESULTS"

#!/usr/bin/env bash
# Events throughput on this machine: micro's durable Events/Publish (answered after a synced WAL
# write, group commit) and Consume (a new group reading a topic from sequence 1, acknowledging
# each event; and with auto_ack) against NATS JetStream 2.9 with file storage (js_PublishAsync,
# and a pull consumer acking each message), driven by a C client on Debian's libnats. Fresh data
# dirs for every run; runs interleaved; medians. See bench/README.md.
#
#   bench/events.sh        # after: ninja -C build micro micro-loadgen micro-bench-events-consume
#                          #        micro-bench-events-publish
#
# Environment: BUILD_DIR (build), COUNT (50000 events per run), SIZE (128-byte payloads),
# CONCURRENCY (64 publishes unacknowledged at most, for both; micro's PublishStream sends them
# in batches of CONCURRENCY/4), RUNS (3), RESULTS (bench/results/events.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ $BUILD_DIR = /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR
COUNT=${COUNT:-50000}
SIZE=${SIZE:-128}
CONCURRENCY=${CONCURRENCY:-64}
RUNS=${RUNS:-3}
RESULTS=${RESULTS:-$ROOT/bench/results/events.md}
COMMAND="BUILD_DIR=${BUILD_DIR#"$ROOT"/} COUNT=$COUNT SIZE=$SIZE CONCURRENCY=$CONCURRENCY RUNS=$RUNS bench/events.sh"

MICRO=$BUILD_DIR/micro
LOADGEN=$BUILD_DIR/bench/micro-loadgen
CONSUME=$BUILD_DIR/bench/micro-bench-events-consume
PUBLISH=$BUILD_DIR/bench/micro-bench-events-publish
BATCH=$(( CONCURRENCY / 4 > 0 ? CONCURRENCY / 4 : 1 ))
PY=/usr/bin/python3

log() { echo "events.sh: $*" >&2; }
die() { log "$*"; exit 1; }

for tool in "$LOADGEN" "$MICRO" "$CONSUME" "$PUBLISH"; do
  [[ -x $tool ]] || die "$tool is missing; build it first (see bench/README.md)"
done
apt_install() {
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2 ||
    { apt-get update >&2 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2; }
}
command -v nats-server >/dev/null || apt_install nats-server
pkg-config --exists libnats || apt_install libnats-dev pkg-config

TMP=$(mktemp -d /tmp/micro-bench-events.XXXXXX)
DATA=$TMP/results.tsv  # kind \t system \t run \t per second
source "$ROOT/bench/lib.sh"
json_get() { "$PY" -c 'import json, sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$@"; }

# shellcheck disable=SC2046 # pkg-config prints several words
cc -O2 -o "$TMP/nats-js" "$ROOT/bench/nats_js.c" $(pkg-config --cflags --libs libnats)
NATS_VERSION=$(nats-server --version 2>&1 | head -n 1)
OTHERS=$(pgrep -fa 'ninja|cmake --build|ctest|micro-loadgen|nats-server' | grep -v "$TMP" | head -n 5 || true)
PAYLOAD=$(head -c "$SIZE" /dev/zero | tr '\0' p)

run_micro() {  # run number
  local data=$TMP/micro-$1 addr out pid
  mkdir -p "$data"
  "$MICRO" server --address 127.0.0.1:0 --data-dir "$data" --log-level warn >"$TMP/micro.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  "$LOADGEN" wait-ready --address-file "$data/server.json" >/dev/null
  addr=$(json_get "$(cat "$data/server.json")" grpc_address)
  # Every call needs a token: micro-loadgen and the bench clients send MICRO_TOKEN.
  MICRO_TOKEN=$(micro_token "$MICRO" "$data" "$addr") || die "micro login --admin failed"
  export MICRO_TOKEN
  out=$("$LOADGEN" run --target "$addr" --method /micro.events.v1.Events/Publish \
    --request-text "topic: \"bench\" payload: \"$PAYLOAD\"" \
    --request-type micro.events.v1.PublishRequest --concurrency "$CONCURRENCY" --warmup 0 \
    --duration 600 --max-calls "$COUNT" --json)
  [[ $(json_get "$out" errors) = 0 ]] || die "micro publish errors: $out"
  record publish_unary micro "$1" "$(json_get "$out" qps)"
  out=$("$PUBLISH" --target "$addr" --topic bench --count "$COUNT" --size "$SIZE" \
    --batch "$BATCH" --in-flight "$CONCURRENCY") || die "micro stream publish failed: $out"
  record publish micro "$1" "$(json_get "$out" per_second)"
  out=$("$CONSUME" --target "$addr" --topic bench --group acked --count "$COUNT")
  record consume micro "$1" "$(json_get "$out" per_second)"
  out=$("$CONSUME" --target "$addr" --topic bench --group auto --count "$COUNT" --auto-ack)
  record consume_auto micro "$1" "$(json_get "$out" per_second)"
  record rss micro "$1" "$(rss_mb "$pid")"
  stop_pid "$pid"
}

run_nats() {  # run number
  local port url out pid
  port=$(free_ports 1)
  url=nats://127.0.0.1:$port
  nats-server -js -sd "$TMP/nats-$1" -a 127.0.0.1 -p "$port" >"$TMP/nats.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do
    "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
      "$port" 2>/dev/null && break
    sleep 0.05
  done
  out=$("$TMP/nats-js" publish "$url" "$COUNT" "$SIZE" "$CONCURRENCY")
  record publish nats "$1" "$(json_get "$out" per_second)"
  out=$("$TMP/nats-js" consume "$url" "$COUNT" acked 256)
  record consume nats "$1" "$(json_get "$out" per_second)"
  record rss nats "$1" "$(rss_mb "$pid")"
  stop_pid "$pid"
}

for ((run = 1; run <= RUNS; run++)); do
  log "run $run of $RUNS"
  run_micro "$run"
  run_nats "$run"
done

mkdir -p "$(dirname "$RESULTS")"
"$PY" - "$DATA" "$RESULTS" "$COMMAND" "$NATS_VERSION" "$OTHERS" "$COUNT" "$SIZE" "$CONCURRENCY" <<'PY'
import statistics, subprocess, sys, datetime
data, results, command, nats_version, others, count, size, conc = sys.argv[1:]
values = {}
for line in open(data):
    kind, system, run, value = line.rstrip("\n").split("\t")
    values.setdefault((kind, system), []).append(float(value))
med = {k: statistics.median(v) for k, v in values.items()}
def cell(kind, system):
    return f"{med[(kind, system)]:,.0f}" if (kind, system) in med else "-"
def ratio(kind, other="nats", mine="micro", other_kind=None):
    a, b = med.get((kind, mine)), med.get((other_kind or kind, other))
    return f"{a / b:.2f}" if a and b else "-"
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
out = [
    "# Events: micro vs NATS JetStream (file storage)", "",
    f"{datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit {commit}, {cpu}, "
    f"{len(open('/proc/cpuinfo').read().split('processor')) - 1} CPUs; {nats_version}.", "",
    f"Command: `{command}`", "",
    f"{count} events of {size} bytes per run, {conc} publishes in flight; medians of "
    f"{len(values.get(('publish', 'micro'), []))} runs (runs: " +
    ", ".join(f"{v:,.0f}" for v in values.get(("publish", "micro"), [])) + " micro publish/s; "
    "JetStream: " + ", ".join(f"{v:,.0f}" for v in values.get(("publish", "nats"), [])) + ").", "",
    "| measure | micro | JetStream | micro/JetStream |",
    "|---|---|---|---|",
    f"| durable publish, events/s (micro: PublishStream) | {cell('publish', 'micro')} | {cell('publish', 'nats')} | {ratio('publish')} |",
    f"| durable publish, one unary Publish per event, events/s | {cell('publish_unary', 'micro')} | - | {ratio('publish_unary', other_kind='publish')} |",
    f"| consume with an ack per event, events/s | {cell('consume', 'micro')} | {cell('consume', 'nats')} | {ratio('consume')} |",
    f"| consume with auto_ack (micro only), events/s | {cell('consume_auto', 'micro')} | - | - |",
    f"| RSS after the run, MiB | {cell('rss', 'micro')} | {cell('rss', 'nats')} | - |",
    "",
    f"- micro: `Events/PublishStream` through `micro-bench-events-publish`: batches of {max(int(conc) // 4, 1)} "
    f"events, at most {conc} unacknowledged; a batch's acks come after a synced WAL write (group "
    "commit). The unary row: `Events/Publish` through micro-loadgen, closed loop, "
    f"{conc} calls in flight; its ratio is to JetStream's publish. Consume: "
    "`micro-bench-events-consume`, a new group from sequence 1, `max_in_flight` 1024.",
    "- JetStream: `js_PublishAsync` with at most the same number pending, stream `BENCH` with "
    "file storage; consume: a durable pull consumer fetching 256 at a time, `natsMsg_Ack` each. "
    "JetStream 2.9's file store does not fsync each message (it syncs in the background), so its "
    "acknowledged publish is not on disk the way micro's is.",
    "- Other work on the machine when the run started: " + ("`" + others.replace("\n", "`; `") + "`" if others else "none seen") + ".",
]
open(results, "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY

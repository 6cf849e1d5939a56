#!/usr/bin/env bash
# A deploy seen by a client: helloworld (examples/helloworld, the C++ SDK) runs as 4 instances
# with a gRPC health check under a daemon; a client calls Greeter.SayHello through the daemon's
# port (the proxy) at a steady RATE while `micro update --wait` replaces the instances, once
# rolling (update.max_parallel 1, min_healthy_time 1s) and once all at once (max_parallel 0:
# every instance stopped, then started, as `micro update` did before rolling updates). A run
# with no update gives the client's own baseline. Failed calls and the latency added at p99, in
# one run, RUNS rounds interleaved, medians.
#
#   bench/rollout.sh       # after: ninja -C build micro micro-bench-steady helloworld
#
# Environment: BUILD_DIR (build), RATE (200 calls/s), SETTLE (2 s of calls before and after the
# update), RUNS (3), RESULTS (bench/results/runtime.md: the section between the rollout markers
# is replaced, the rest kept).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ $BUILD_DIR = /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR
RATE=${RATE:-200}
SETTLE=${SETTLE:-2}
RUNS=${RUNS:-3}
RESULTS=${RESULTS:-$ROOT/bench/results/runtime.md}
COMMAND="BUILD_DIR=${BUILD_DIR#"$ROOT"/} RATE=$RATE SETTLE=$SETTLE RUNS=$RUNS bench/rollout.sh"

MICRO=$BUILD_DIR/micro
STEADY=$BUILD_DIR/bench/micro-bench-steady
HELLO=$BUILD_DIR/examples/helloworld/helloworld
PY=/usr/bin/python3
log() { echo "rollout.sh: $*" >&2; }
die() { log "$*"; exit 1; }
for tool in "$MICRO" "$STEADY" "$HELLO"; do
  [[ -x $tool ]] || die "$tool is missing; build it first"
done

TMP=$(mktemp -d /tmp/micro-bench-rollout.XXXXXX)
DATA=$TMP/results.tsv
source "$ROOT/bench/lib.sh"
OTHERS=$(pgrep -fa 'ninja|cc1plus|ctest' | grep -v "$$" | head -n 3 || true)

"$MICRO" server --address 127.0.0.1:0 --data-dir "$TMP/data" --http-address off \
  --log-level warn >"$TMP/daemon.log" 2>&1 &
PIDS+=($!)
for ((i = 0; i < 200; i++)); do [[ -s $TMP/data/server.json ]] && break; sleep 0.1; done
DAEMON=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["grpc_address"])' \
  "$TMP/data/server.json") || die "micro server did not start: $(tail -n 5 "$TMP/daemon.log")"
TOKEN=$(micro_token "$MICRO" "$TMP/data" "$DAEMON") || die "micro login --admin failed"
CLI_HOME=$(ls -d "$TMP"/home.* | head -n 1)
cli() { HOME=$CLI_HOME "$MICRO" "$1" --address "$DAEMON" "${@:2}"; }

mkdir -p "$TMP/hello"
manifest() {  # max_parallel, a value that makes each update's options new
  cat >"$TMP/hello/micro.yaml" <<EOF
name: hello
command: $HELLO
instances: 4
grace_period: 5s
env: {DEPLOY: "$2"}
health_check: {type: grpc, interval: 200ms}
update: {max_parallel: $1, min_healthy_time: 1s, healthy_deadline: 1m}
EOF
}
manifest 1 first
cli run --wait "$TMP/hello" >/dev/null 2>"$TMP/run.err" || die "deploy failed: $(cat "$TMP/run.err")"

REQUEST=0a03416461  # HelloRequest{name: "Ada"}
measure() {  # label, max_parallel (or "-": no update), round
  local label=$1 parallel=$2 round=$3 stop=$TMP/stop.$1.$3 client took=0
  rm -f "$stop"
  MICRO_TOKEN=$TOKEN "$STEADY" --target "$DAEMON" --method /helloworld.v1.Greeter/SayHello \
    --request-hex "$REQUEST" --rate "$RATE" --duration 300 --stop-file "$stop" \
    >"$TMP/client.$label.$round" 2>&1 &
  client=$!
  PIDS+=("$client")
  sleep "$SETTLE"
  if [[ $parallel != - ]]; then
    manifest "$parallel" "$label-$round"
    local t0 t1
    t0=$(date +%s%N)
    cli update "$TMP/hello" --wait --wait-timeout 120 >/dev/null 2>"$TMP/update.$label.$round" ||
      problem "$label round $round: micro update failed: $(tail -n 2 "$TMP/update.$label.$round")"
    t1=$(date +%s%N)
    took=$(((t1 - t0) / 1000000))
  else
    sleep 8  # about as long as a rolling update of 4 instances takes
  fi
  sleep "$SETTLE"
  touch "$stop"
  wait "$client" || true
  PIDS=("${PIDS[@]/$client/}")
  record client "$label" "$round" "$(cat "$TMP/client.$label.$round")"
  record took "$label" "$round" "$took"
  # Every instance runs and is healthy again before the next round.
  for ((i = 0; i < 300; i++)); do
    [[ $(cli status hello -o json | "$PY" -c 'import json, sys
s = json.load(sys.stdin)["services"][0]
print(sum(i["status"] == "STATUS_RUNNING" for i in s["instances"]))') = 4 ]] && break
    sleep 0.1
  done
}
problem() { log "problem: $1"; record problem - - "$1"; }

for ((round = 1; round <= RUNS; round++)); do
  log "round $round of $RUNS"
  measure none - "$round"
  measure rolling 1 "$round"
  measure at_once 0 "$round"
done

"$PY" - "$DATA" "$RESULTS" "$COMMAND" "$RATE" "$SETTLE" "$RUNS" "$OTHERS" <<'PY'
import json, re, statistics, subprocess, sys, datetime
data, results, command, rate, settle, runs, others = sys.argv[1:8]
rows = {}
problems = []
for line in open(data):
    kind, label, rnd, value = line.rstrip("\n").split("\t", 3)
    if kind == "problem":
        problems.append(value); continue
    entry = rows.setdefault(label, {}).setdefault(rnd, {})
    if kind == "client":
        try:
            entry.update(json.loads(value))
        except ValueError:
            problems.append(f"{label} round {rnd}: client said {value!r}")
    elif kind == "took":
        entry["took_ms"] = int(value)
def med(label, key):
    values = [r[key] for r in rows.get(label, {}).values() if key in r]
    return statistics.median(values) if values else float("nan")
def total(label, key):
    return sum(r.get(key, 0) for r in rows.get(label, {}).values())
base_p99 = med("none", "p99_us")
names = {"none": "no update (baseline)", "rolling": "rolling update (max_parallel 1)",
         "at_once": "all at once (max_parallel 0)"}
out = []
out.append("<!-- rollout:begin (written by bench/rollout.sh) -->")
out.append("## A deploy seen by a client: rolling update vs all at once (bench/rollout.sh)")
out.append("")
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
out.append(f"{datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit {commit}, `{command}`. "
           f"helloworld (C++ SDK) as 4 instances with a gRPC health check (every 200 ms); a client "
           f"calls Greeter.SayHello through the daemon's port (the proxy) at {rate} calls/s, open "
           f"loop (latency from when each call was due), for {settle} s before the update, during "
           f"it and {settle} s after; `micro update --wait` with new options. Medians of {runs} "
           f"rounds, interleaved; failed calls summed over the rounds.")
out.append("")
out.append("| deploy | calls (all rounds) | failed | failed % | p50 ms | p99 ms | added p99 ms | p99.9 ms | max ms | update took s |")
out.append("|---|---|---|---|---|---|---|---|---|---|")
for label in ["none", "rolling", "at_once"]:
    calls, failed = total(label, "calls"), total(label, "failed")
    codes = {}
    for r in rows.get(label, {}).values():
        for c, n in r.get("codes", {}).items(): codes[c] = codes.get(c, 0) + n
    failed_text = f"{failed}" + (f" ({', '.join(f'{c} {n}' for c, n in sorted(codes.items()))})" if codes else "")
    p99 = med(label, "p99_us")
    added = "-" if label == "none" else f"{(p99 - base_p99) / 1000:+.2f}"
    took = "-" if label == "none" else f"{med(label, 'took_ms') / 1000:.1f}"
    out.append(f"| {names[label]} | {calls} | {failed_text} | {100 * failed / calls if calls else 0:.2f} | "
               f"{med(label, 'p50_us') / 1000:.2f} | {p99 / 1000:.2f} | {added} | "
               f"{med(label, 'p999_us') / 1000:.2f} | {med(label, 'max_us') / 1000:.1f} | {took} |")
out.append("")
errors = [r.get("first_error") for label in rows for r in rows[label].values() if r.get("first_error")]
if errors:
    out.append(f"First error seen: `{errors[0]}`.")
    out.append("")
if others.strip():
    out.append(f"Other work on the machine during the run: `{others.splitlines()[0][:100]}`.")
    out.append("")
out.append("Problems: " + ("; ".join(problems) if problems else "none") + ".")
out.append("<!-- rollout:end -->")
section = "\n".join(out)
print(section)
try:
    text = open(results).read()
except OSError:
    text = ""
pattern = re.compile(r"<!-- rollout:begin.*?<!-- rollout:end -->", re.S)
text = pattern.sub(lambda m: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
open(results, "w").write(text)
PY
log "wrote $RESULTS"

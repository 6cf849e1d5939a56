#!/usr/bin/env bash
# What authorization costs: Registry/GetService at CONCURRENCY calls in flight against two
# daemons in one run, one checking every call's token (the default) and one with
# auth.enabled false; runs interleaved, medians. And what a login costs (Auth.Token, one at a
# time) against the Argon2id verification alone (libsodium, t = 2, m = 19 MiB, in-process).
#
#   bench/auth.sh          # after: ninja -C build micro micro-loadgen micro-bench-argon2
#
# Environment: BUILD_DIR (build), CONCURRENCY (16), DURATION (5 s), RUNS (5), LOGINS (20),
# RESULTS (bench/results/auth.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-build}
[[ $BUILD_DIR = /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR
CONCURRENCY=${CONCURRENCY:-16}
DURATION=${DURATION:-5}
RUNS=${RUNS:-5}
LOGINS=${LOGINS:-20}
RESULTS=${RESULTS:-$ROOT/bench/results/auth.md}
COMMAND="BUILD_DIR=${BUILD_DIR#"$ROOT"/} CONCURRENCY=$CONCURRENCY DURATION=$DURATION RUNS=$RUNS LOGINS=$LOGINS bench/auth.sh"

MICRO=$BUILD_DIR/micro
LOADGEN=$BUILD_DIR/bench/micro-loadgen
ARGON=$BUILD_DIR/bench/micro-bench-argon2
PY=/usr/bin/python3
log() { echo "auth.sh: $*" >&2; }
die() { log "$*"; exit 1; }
for tool in "$MICRO" "$LOADGEN" "$ARGON"; do
  [[ -x $tool ]] || die "$tool is missing; build it first"
done

TMP=$(mktemp -d /tmp/micro-bench-auth.XXXXXX)
DATA=$TMP/results.tsv
source "$ROOT/bench/lib.sh"
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
OTHERS=$(pgrep -fa 'ninja|cc1plus|ctest' | grep -v "$$" | head -n 3 || true)

start() {  # data dir, extra flags; sets ADDRESS. Not in a subshell: PIDS must keep the pid.
  local dir=$1 out
  shift
  mkdir -p "$dir"
  "$MICRO" server --address 127.0.0.1:0 --data-dir "$dir" --log-level warn "$@" >"$dir.log" 2>&1 &
  PIDS+=($!)
  out=$("$LOADGEN" wait-ready --address-file "$dir/server.json" --timeout-ms 20000) ||
    die "micro server did not become ready: $(tail -n 5 "$dir.log")"
  ADDRESS=$(field address <<<"$out")
}
start "$TMP/on"
ON=$ADDRESS
start "$TMP/off" --auth-enabled false
OFF=$ADDRESS
TOKEN=$(micro_token "$MICRO" "$TMP/on" "$ON") || die "micro login --admin failed"
REGISTER='service { name: "bench" version: "1.0.0" nodes { id: "n1" address: "127.0.0.1:9000" } }'
for addr in "$ON" "$OFF"; do
  MICRO_TOKEN=$TOKEN "$LOADGEN" call --target "$addr" --method /micro.registry.v1.Registry/Register \
    --request-type micro.registry.v1.RegisterRequest --request-text "$REGISTER" >/dev/null
done

run() {  # system, address
  local out
  out=$(MICRO_TOKEN=$TOKEN "$LOADGEN" run --target "$2" --method /micro.registry.v1.Registry/GetService \
    --request-type micro.registry.v1.GetServiceRequest --request-text 'name: "bench"' \
    --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup 1 --max-calls 5000000 --json)
  "$PY" -c 'import json, sys; r = json.loads(sys.argv[1]); assert r["errors"] == 0, r; print(r["qps"], r["p50_us"], r["p99_us"])' "$out" |
    { read -r qps p50 p99; printf '%s\t%s\t%s\t%s\n' "$1" "$qps" "$p50" "$p99" >>"$DATA"; }
}
for ((r = 1; r <= RUNS; r++)); do
  log "run $r of $RUNS"
  # Alternating which goes first, so drift in the machine's speed touches both alike.
  if ((r % 2)); then
    run auth "$ON"
    run noauth "$OFF"
  else
    run noauth "$OFF"
    run auth "$ON"
  fi
done

# Logins one at a time: each verifies the secret (Argon2id) and stores a refresh token (synced).
SECRET=$(cat "$TMP/on/admin.secret")
ON_PID=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["pid"])' "$TMP/on/server.json")
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, clock ticks
TICKS_BEFORE=$(cpu_ticks "$ON_PID")
LOGIN=$("$LOADGEN" run --target "$ON" --method /micro.auth.v1.Auth/Token \
  --request-type micro.auth.v1.TokenRequest --request-text "id: \"admin\" secret: \"$SECRET\"" \
  --concurrency 1 --duration 600 --warmup 0 --max-calls "$LOGINS" --json)
LOGIN_CPU_MS=$(( ($(cpu_ticks "$ON_PID") - TICKS_BEFORE) * 1000 / $(getconf CLK_TCK) ))
HASH=$("$ARGON" "$LOGINS")

"$PY" - "$DATA" "$RESULTS" "$COMMAND" "$LOGIN" "$HASH" "$OTHERS" "$CONCURRENCY" "$LOGIN_CPU_MS" <<'PY'
import json, statistics, subprocess, sys, datetime
data, results, command, login, hash_, others, conc, login_cpu_ms = sys.argv[1:]
rows = {}
for line in open(data):
    system, qps, p50, p99 = line.split("\t")
    rows.setdefault(system, []).append((float(qps), float(p50), float(p99)))
med = {s: [statistics.median(v[i] for v in rows[s]) for i in range(3)] for s in rows}
login, hash_ = json.loads(login), json.loads(hash_)
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cost = 1 - med["auth"][0] / med["noauth"][0]
out = [
    "# Auth: what checking every call's token costs", "",
    f"{datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit {commit}, 2 CPUs.", "",
    f"Command: `{command}`", "",
    f"Registry/GetService, {conc} calls in flight, medians of {len(rows['auth'])} interleaved runs "
    "(runs: " + ", ".join(f"{q:,.0f}" for q, _, _ in rows["auth"]) + " with auth; " +
    ", ".join(f"{q:,.0f}" for q, _, _ in rows["noauth"]) + " without).", "",
    "| daemon | calls/s | p50 µs | p99 µs |", "|---|---|---|---|",
    f"| auth on (default) | {med['auth'][0]:,.0f} | {med['auth'][1]:.0f} | {med['auth'][2]:.0f} |",
    f"| auth.enabled false | {med['noauth'][0]:,.0f} | {med['noauth'][1]:.0f} | {med['noauth'][2]:.0f} |",
    "",
    f"- Throughput cost of authorization: {cost * 100:.1f}% of the calls per second without it "
    "(target: at most 10%; a negative figure means the run's noise was larger than the cost).",
    f"- Login (`Auth.Token` with id and secret, one at a time, {login['calls']} logins): p50 "
    f"{login['p50_us'] / 1000:.1f} ms, p99 {login['p99_us'] / 1000:.1f} ms. The Argon2id "
    f"verification alone (libsodium `crypto_pwhash_str_verify`, t = 2, m = 19 MiB, "
    f"{hash_['runs']} runs): p50 {hash_['p50_ms']:.1f} ms, p99 {hash_['p99_ms']:.1f} ms. A login "
    "also reads the account, signs the access token and writes the refresh token (to the WAL, not synced), and runs on the auth service's thread behind a gRPC call.",
    f"- CPU time, which this machine's varying speed disturbs less than wall time: the daemon "
    f"spent {int(login_cpu_ms) / login['calls']:.1f} ms per login (all its threads), one "
    f"verification {hash_['cpu_ms_each']:.1f} ms: a login costs "
    f"{int(login_cpu_ms) / login['calls'] / hash_['cpu_ms_each']:.2f} times the hash "
    "(target: at most the hash's cost, i.e. about 1).",
    "- Other work on the machine when the run started: " + ("`" + others.replace("\n", "`; `") + "`" if others else "none seen") + ".",
]
open(results, "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY

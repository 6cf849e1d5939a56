#!/usr/bin/env bash
# The runtime against supervisord 4.2, in one run on this machine: how fast a crashed process is
# running again, how fast a prebuilt binary runs once deployed, and what the supervisor itself
# costs (RSS, CPU) while it watches 200 and 1,000 idle processes. See bench/README.md.
#
#   bench/runtime.sh [BUILD_DIR]          # after: ninja -C build micro micro-bench-proc
#
# Environment: BUILD_DIR (build; the first argument wins), CRASHES (30 restarts measured),
# CRASH_DELAY_MS (200: how long each crashing run lives), DEPLOYS (10 rounds), FLEETS ("200 1000"
# idle processes), SETTLE (5 s after all run), WINDOW (30 s of CPU accounting), SKIP_MICRO (1:
# supervisord only), SKIP_SUPERVISORD (1: micro only), RESULTS (bench/results/runtime.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${1:-${BUILD_DIR:-build}}
[[ $BUILD_DIR = /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR
CRASHES=${CRASHES:-30}
CRASH_DELAY_MS=${CRASH_DELAY_MS:-200}
DEPLOYS=${DEPLOYS:-10}
FLEETS=${FLEETS:-200 1000}
SETTLE=${SETTLE:-5}
WINDOW=${WINDOW:-30}
SKIP_MICRO=${SKIP_MICRO:-0}
SKIP_SUPERVISORD=${SKIP_SUPERVISORD:-0}
RESULTS=${RESULTS:-$ROOT/bench/results/runtime.md}
# shellcheck disable=SC2089,SC2090 # a string to print, never to run
COMMAND="CRASHES=$CRASHES CRASH_DELAY_MS=$CRASH_DELAY_MS DEPLOYS=$DEPLOYS FLEETS='$FLEETS' \
SETTLE=$SETTLE WINDOW=$WINDOW"
[[ $SKIP_MICRO != 1 ]] || COMMAND+=" SKIP_MICRO=1"
[[ $SKIP_SUPERVISORD != 1 ]] || COMMAND+=" SKIP_SUPERVISORD=1"
COMMAND+=" bench/runtime.sh ${BUILD_DIR#"$ROOT"/}"

MICRO=$BUILD_DIR/micro
PROC=$BUILD_DIR/bench/micro-bench-proc
PY=/usr/bin/python3
CLK_TCK=$(getconf CLK_TCK)

log() { echo "runtime.sh: $*" >&2; }
die() { log "$*"; exit 1; }

for tool in "$PROC" $([[ $SKIP_MICRO = 1 ]] || echo "$MICRO"); do
  [[ -x $tool ]] || die "$tool is missing; build it first (see bench/README.md)"
done
if ! command -v supervisord >/dev/null || ! command -v supervisorctl >/dev/null; then
  log "installing supervisor"
  # Debian's package would start its own service where policy allows it; this script never uses
  # that one: it runs a supervisord of its own, in the foreground, with a config in its temp dir.
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends supervisor >&2 ||
    { apt-get update >&2 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends supervisor >&2; }
fi

micro_built=$([[ -x $MICRO ]] && date -u -r "$MICRO" '+%Y-%m-%d %H:%M UTC' || echo "?")
TMP=$(mktemp -d /tmp/micro-bench-runtime.XXXXXX)
DATA=$TMP/results.tsv  # kind \t system \t key \t value
source "$ROOT/bench/lib.sh"
record load before - "$(cut -d' ' -f1-3 /proc/loadavg)"

now_ns() { echo "${EPOCHREALTIME/./}000"; }  # bash's clock, no fork: µs precision
problem() { log "problem: $2"; record problem "$1" - "$2"; }

# PIDs of the processes below the given roots that run micro-bench-proc (the supervised ones,
# however deep the supervisor puts them).
bench_procs() {
  "$PY" - "$PROC" "$@" <<'PY'
import os, sys
exe, roots = os.path.realpath(sys.argv[1]), {int(p) for p in sys.argv[2:] if p}
children = {}
for d in os.listdir("/proc"):
    if not d.isdigit(): continue
    try:
        stat = open(f"/proc/{d}/stat").read()
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        continue
    children.setdefault(ppid, []).append(int(d))
found, todo = [], list(roots)
while todo:
    for c in children.get(todo.pop(), []):
        todo.append(c)
        try:
            if os.readlink(f"/proc/{c}/exe") == exe: found.append(c)
        except OSError:
            pass
print(" ".join(map(str, sorted(found))))
PY
}
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }  # utime + stime
mem_of() {  # pid: "VmRSS_kB Rss_kB Pss_kB threads"
  local vm th rss pss
  vm=$(awk '/^VmRSS/ { print $2 }' "/proc/$1/status")
  th=$(awk '/^Threads/ { print $2 }' "/proc/$1/status")
  rss=$(awk '/^Rss:/ { print $2 }' "/proc/$1/smaps_rollup")
  pss=$(awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup")
  echo "$vm $rss $pss $th"
}
lines_in() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }
wait_lines() {  # file, count, timeout s: waits until the file has that many lines (bounded)
  local deadline=$((EPOCHSECONDS + $3))
  while (($(lines_in "$1") < $2)); do
    ((EPOCHSECONDS < deadline)) || return 1
    sleep 0.005
  done
}

# --- supervisord ---------------------------------------------------------------------------------

SV=$TMP/supervisord
SV_PID=
SV_CONF=$SV/supervisord.conf
SV_MINFDS=$(($(tr ' ' '\n' <<<"$FLEETS" | sort -n | tail -n 1) * 5 + 1024))
SV_PROGRAMS=()  # programs added and not yet removed: cleanup stops them
svctl() { timeout 120 supervisorctl -c "$SV_CONF" "$@"; }
sv_start() {
  mkdir -p "$SV/conf.d" "$SV/log"
  # minfds: every process costs supervisord 3 pipe ends and 2 log files (stdout, stderr: AUTO),
  # so 1,000 need about 5,000 descriptors; plus a margin. No more than that: each child closes
  # every descriptor from 3 to minfds, one Python os.close() at a time, before its exec.
  cat >"$SV_CONF" <<EOF
[unix_http_server]
file=$SV/supervisor.sock
chmod=0700

[supervisord]
nodaemon=true
logfile=$SV/supervisord.log
pidfile=$SV/supervisord.pid
childlogdir=$SV/log
minfds=$SV_MINFDS
minprocs=2000

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://$SV/supervisor.sock

[include]
files = $SV/conf.d/*.conf
EOF
  supervisord -n -c "$SV_CONF" >"$SV/stdout.log" 2>&1 &
  SV_PID=$!
  PIDS+=("$SV_PID")
  local i
  for ((i = 0; i < 400; i++)); do
    [[ $(timeout 10 supervisorctl -c "$SV_CONF" pid 2>/dev/null) = "$SV_PID" ]] && break
    kill -0 "$SV_PID" 2>/dev/null || { cat "$SV/stdout.log" "$SV/supervisord.log" >&2; die "supervisord exited"; }
    sleep 0.05
  done
  ((i < 400)) || die "supervisord did not answer on $SV/supervisor.sock"
  log "supervisord $SV_PID on $SV/supervisor.sock"
}
sv_add() {  # program, then conf lines: writes the conf and runs supervisorctl update
  local name=$1
  shift
  printf '%s\n' "[program:$name]" "$@" >"$SV/conf.d/$name.conf"
  SV_PROGRAMS+=("$name")
  svctl update >>"$SV/ctl.log" 2>&1
}
sv_remove() {  # program: stop every process of it, forget it, delete its conf
  local name=$1 kept=() p
  svctl stop "$name:*" >>"$SV/ctl.log" 2>&1 || true
  svctl remove "$name" >>"$SV/ctl.log" 2>&1 || true
  rm -f "$SV/conf.d/$name.conf"
  for p in "${SV_PROGRAMS[@]}"; do [[ $p = "$name" ]] || kept+=("$p"); done
  SV_PROGRAMS=("${kept[@]}")
}
sv_running() { svctl status "$1:*" 2>/dev/null | grep -c ' RUNNING ' || true; }

# --- micro ---------------------------------------------------------------------------------------

MICRO_PID=
MICRO_SERVICES=()  # deployed and not yet killed: cleanup kills them
micro_start() {
  mkdir -p "$TMP/micro"
  "$MICRO" server --address 127.0.0.1:0 --data-dir "$TMP/micro/data" >"$TMP/micro/server.log" 2>&1 &
  MICRO_PID=$!
  PIDS+=("$MICRO_PID")
  local i addr=
  for ((i = 0; i < 400; i++)); do
    if [[ -s $TMP/micro/data/server.json ]]; then
      addr=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["grpc_address"])' \
        "$TMP/micro/data/server.json" 2>/dev/null || true)
      # Ready once the admin can log in (`micro health` itself needs a login now).
      [[ -n $addr ]] && MICRO_TOKEN=$(micro_token "$MICRO" "$TMP/micro/data" "$addr" 2>/dev/null) &&
        break
    fi
    kill -0 "$MICRO_PID" 2>/dev/null || { tail -n 30 "$TMP/micro/server.log" >&2; die "micro server exited"; }
    sleep 0.05
  done
  ((i < 400)) || { tail -n 30 "$TMP/micro/server.log" >&2; die "micro server did not become ready"; }
  export MICRO_ADDRESS=$addr
  # Every call needs a token: the micro CLI sends MICRO_TOKEN (the admin's).
  export MICRO_TOKEN
  log "micro server $MICRO_PID at $addr"
}
mctl() { timeout 120 "$MICRO" "$@"; }
micro_run() {  # name, then `micro run` arguments (after the name's own)
  MICRO_SERVICES+=("$1")
  mctl run --timeout 120 "${@:2}" >>"$TMP/micro/ctl.log" 2>&1
}
micro_kill() {
  local kept=() s
  mctl kill "$1" --timeout 120 >>"$TMP/micro/ctl.log" 2>&1 || { problem micro "micro kill $1 failed: $(tail -n 3 "$TMP/micro/ctl.log" | tr '\n' ' ')"; }
  for s in "${MICRO_SERVICES[@]}"; do [[ $s = "$1" ]] || kept+=("$s"); done
  MICRO_SERVICES=("${kept[@]}")
}
micro_running() {
  mctl status "$1" --output json 2>/dev/null | "$PY" -c 'import json, sys
try: print(sum(s.get("instances_running", 0) for s in json.load(sys.stdin).get("services", [])))
except Exception: print(0)'
}

# Everything started is stopped on exit, even on failure: services first (micro kill; supervisorctl
# stop), then the daemons by PID (lib.sh's cleanup), then any supervised process still alive.
runtime_cleanup() {
  local roots=() left s
  [[ -n $MICRO_PID ]] && kill -0 "$MICRO_PID" 2>/dev/null && roots+=("$MICRO_PID")
  [[ -n $SV_PID ]] && kill -0 "$SV_PID" 2>/dev/null && roots+=("$SV_PID")
  ((${#roots[@]} > 0)) || return 0
  left=$(bench_procs "${roots[@]}")
  if [[ -n $MICRO_PID ]] && kill -0 "$MICRO_PID" 2>/dev/null; then
    for s in "${MICRO_SERVICES[@]}"; do timeout 60 "$MICRO" kill "$s" >/dev/null 2>&1 || true; done
    stop_pid "$MICRO_PID"
  fi
  if [[ -n $SV_PID ]] && kill -0 "$SV_PID" 2>/dev/null; then
    ((${#SV_PROGRAMS[@]} == 0)) || timeout 120 supervisorctl -c "$SV_CONF" stop all >/dev/null 2>&1 || true
    stop_pid "$SV_PID"
  fi
  for s in $left; do
    [[ $(readlink "/proc/$s/exe" 2>/dev/null) = "$(readlink -f "$PROC")" ]] && kill -KILL "$s" 2>/dev/null &&
      log "killed leftover supervised process $s"
  done
  return 0
}
trap 'runtime_cleanup; cleanup' EXIT

[[ $SKIP_SUPERVISORD = 1 ]] || sv_start
[[ $SKIP_MICRO = 1 ]] || micro_start
sleep 1
for sys in supervisord micro; do
  pid=$([[ $sys = micro ]] && echo "$MICRO_PID" || echo "$SV_PID")
  [[ -z $pid ]] || record mem "$sys" 0 "$(mem_of "$pid")"
done

# --- 1. restart after a crash --------------------------------------------------------------------

# From the "exit" mark a crashing run writes just before exit(1) to the "start" mark of the run
# that replaces it: CRASHES restarts, each run living CRASH_DELAY_MS. Bounded: CRASHES *
# (CRASH_DELAY_MS + 2 s) + 10 s in all (supervisord takes about a second per restart).
restart_latencies() {  # marks file: the ms from each exit to the next start, comma-separated
  "$PY" - "$1" "$CRASHES" <<'PY'
import sys
marks = sorted((int(ns), kind) for kind, ns, _ in (l.split() for l in open(sys.argv[1]) if l.strip()))
out, exit_ns = [], None
for ns, kind in marks:
    if kind == "exit": exit_ns = ns
    elif exit_ns is not None:
        out.append(f"{(ns - exit_ns) / 1e6:.3f}")
        exit_ns = None
print(",".join(out[:int(sys.argv[2])]))
PY
}
measure_restarts() {  # system
  local sys=$1 marks=$TMP/crash-$1.marks limit=$((CRASHES * (CRASH_DELAY_MS + 2000) / 1000 + 10))
  log "$sys: $CRASHES restarts of a process that crashes after $CRASH_DELAY_MS ms"
  if [[ $sys = supervisord ]]; then
    sv_add crasher "command=$PROC crash $marks $CRASH_DELAY_MS" autostart=true autorestart=true \
      startsecs=0 startretries=1000 || problem "$sys" "supervisorctl update failed for crasher"
  else
    mkdir -p "$TMP/crasher"
    cat >"$TMP/crasher/micro.yaml" <<EOF
name: crasher
command: $PROC
args: [crash, $marks, "$CRASH_DELAY_MS"]
backoff: {initial: 0}
EOF
    micro_run crasher "$TMP/crasher" || problem "$sys" "micro run $TMP/crasher failed: $(tail -n 3 "$TMP/micro/ctl.log" | tr '\n' ' ')"
  fi
  # CRASHES + 1 starts and the exits before them: 2 * CRASHES + 1 lines.
  wait_lines "$marks" $((2 * CRASHES + 1)) "$limit" ||
    problem "$sys" "only $(grep -c '^start' "$marks" 2>/dev/null || echo 0) starts of $((CRASHES + 1)) in $limit s"
  if [[ $sys = supervisord ]]; then sv_remove crasher; else micro_kill crasher; fi
  record restart "$sys" - "$([[ -f $marks ]] && restart_latencies "$marks")"
}
[[ $SKIP_SUPERVISORD = 1 ]] || measure_restarts supervisord
[[ $SKIP_MICRO = 1 ]] || measure_restarts micro

# --- 2. deploy to running ------------------------------------------------------------------------

# From just before the deploy (supervisord: writing the program's conf, then `supervisorctl
# update`; micro: `micro run --name N -- PROC mark FILE`) to the program's own "start" mark, and
# to the deploy command's return. A new name each round; removed before the next (interleaved).
deploy_once() {  # system, round
  local sys=$1 i=$2 marks=$TMP/deploy-$1-$2.marks t0 t1 start
  t0=$(now_ns)
  if [[ $sys = supervisord ]]; then
    sv_add "deploy$i" "command=$PROC mark $marks" autostart=true autorestart=true startsecs=0 ||
      problem "$sys" "supervisorctl update failed for deploy$i"
  else
    micro_run "deploy$i" --name "deploy$i" -- "$PROC" mark "$marks" ||
      problem "$sys" "micro run --name deploy$i failed: $(tail -n 3 "$TMP/micro/ctl.log" | tr '\n' ' ')"
  fi
  t1=$(now_ns)
  if wait_lines "$marks" 1 20; then
    start=$(awk 'NR == 1 { print $2 }' "$marks")
    record deploy "$sys" "$i" "$(((start - t0) / 1000)) $(((t1 - t0) / 1000))"  # µs
  else
    problem "$sys" "deploy$i did not start within 20 s"
  fi
  if [[ $sys = supervisord ]]; then sv_remove "deploy$i"; else micro_kill "deploy$i"; fi
}
log "deploy to running, $DEPLOYS rounds"
for ((r = 1; r <= DEPLOYS; r++)); do
  [[ $SKIP_SUPERVISORD = 1 ]] || deploy_once supervisord "$r"
  [[ $SKIP_MICRO = 1 ]] || deploy_once micro "$r"
done
# What one round trip of each CLI costs (a trivial call: supervisorctl pid, micro health); most of a
# deploy from the shell is this.
for ((r = 1; r <= 5; r++)); do
  if [[ $SKIP_SUPERVISORD != 1 ]]; then
    t0=$(now_ns); svctl pid >/dev/null; record cli supervisord "$r" $((($(now_ns) - t0) / 1000))
  fi
  if [[ $SKIP_MICRO != 1 ]]; then
    t0=$(now_ns); mctl health >/dev/null; record cli micro "$r" $((($(now_ns) - t0) / 1000))
  fi
done

# --- 3. the supervisor's own cost with N idle processes ------------------------------------------

# Each supervisor gets N processes of `micro-bench-proc mark FILE` (one start mark, then pause()):
# supervisord one program with numprocs=N, micro one service with --instances N. Once all N have
# marked and the supervisor says all N run, SETTLE s, then both are measured over the same WINDOW
# s: CPU = utime + stime of the supervisor's process (all its threads, not its children), and RSS
# at the end. Then both fleets are stopped and removed, timed.
fleet_deploy() {  # system, N
  local sys=$1 n=$2 marks=$TMP/fleet-$1-$2.marks t0 t1 last running i
  log "$sys: deploying $n idle processes"
  t0=$(now_ns)
  if [[ $sys = supervisord ]]; then
    sv_add "idle$n" "command=$PROC mark $marks" "numprocs=$n" 'process_name=%(program_name)s_%(process_num)d' \
      autostart=true autorestart=true startsecs=0 || problem "$sys" "supervisorctl update failed for idle$n"
  else
    micro_run "idle$n" --name "idle$n" --instances "$n" -- "$PROC" mark "$marks" ||
      problem "$sys" "micro run --name idle$n --instances $n failed: $(tail -n 3 "$TMP/micro/ctl.log" | tr '\n' ' ')"
  fi
  t1=$(now_ns)
  if wait_lines "$marks" "$n" 180; then
    last=$(awk '$2 > m { m = $2 } END { print m }' "$marks")
    record spawn "$sys" "$n" "$(((last - t0) / 1000)) $(((t1 - t0) / 1000))"
  else
    problem "$sys" "only $(lines_in "$marks") of $n processes started within 180 s"
  fi
  for ((i = 0; i < 60; i++)); do
    if [[ $sys = supervisord ]]; then running=$(sv_running "idle$n"); else running=$(micro_running "idle$n"); fi
    ((running >= n)) && break
    sleep 0.5
  done
  ((running >= n)) || problem "$sys" "$sys reports $running of $n running"
}
fleet_remove() {  # system, N
  local sys=$1 n=$2 t0
  t0=$(now_ns)
  if [[ $sys = supervisord ]]; then sv_remove "idle$n"; else micro_kill "idle$n"; fi
  record stop "$sys" "$n" $((($(now_ns) - t0) / 1000))
}
for n in $FLEETS; do
  systems=()
  [[ $SKIP_SUPERVISORD = 1 ]] || systems+=(supervisord)
  [[ $SKIP_MICRO = 1 ]] || systems+=(micro)
  for sys in "${systems[@]}"; do fleet_deploy "$sys" "$n"; done
  sleep "$SETTLE"
  declare -A C0
  w0=$(now_ns)
  for sys in "${systems[@]}"; do
    pid=$([[ $sys = micro ]] && echo "$MICRO_PID" || echo "$SV_PID")
    C0[$sys]=$(cpu_ticks "$pid")
  done
  log "measuring CPU over $WINDOW s with $n processes each"
  sleep "$WINDOW"
  w1=$(now_ns)
  for sys in "${systems[@]}"; do
    pid=$([[ $sys = micro ]] && echo "$MICRO_PID" || echo "$SV_PID")
    record cpu "$sys" "$n" "$("$PY" -c 'import sys
d, hz, ns = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print(f"{d / hz / (ns / 1e9) * 100:.3f} {d}")' $(($(cpu_ticks "$pid") - C0[$sys])) "$CLK_TCK" $((w1 - w0)))"
    record mem "$sys" "$n" "$(mem_of "$pid")"
    record procs "$sys" "$n" "$(wc -w <<<"$(bench_procs "$pid")")"
  done
  for sys in "${systems[@]}"; do fleet_remove "$sys" "$n"; done
done
for sys in supervisord micro; do
  pid=$([[ $sys = micro ]] && echo "$MICRO_PID" || echo "$SV_PID")
  [[ -z $pid ]] && continue
  left=$(bench_procs "$pid")
  [[ -z $left ]] || problem "$sys" "supervised processes still alive after every removal: $left"
  record mem "$sys" end "$(mem_of "$pid")"
  record hwm "$sys" - "$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")"
done
record load after - "$(cut -d' ' -f1-3 /proc/loadavg)"
if [[ $SKIP_MICRO != 1 ]] && grep -qiE '\b(error|critical)\b' "$TMP/micro/server.log"; then
  log "micro server log has errors:"
  grep -iE '\b(error|critical)\b' "$TMP/micro/server.log" | head -n 10 >&2
fi

# --- report --------------------------------------------------------------------------------------

build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
micro_version=$(if [[ -x $MICRO ]]; then timeout 5 "$MICRO" version 2>/dev/null | head -n 1; fi || true)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)
[[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] || commit="$commit (uncommitted changes)"
# shellcheck disable=SC2090
export COMMAND CRASHES CRASH_DELAY_MS DEPLOYS SETTLE WINDOW SV_MINFDS
REPORT_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
REPORT_MACHINE="$(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1), \
$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
REPORT_VERSIONS="${micro_version:-micro unknown} (commit $commit, ${build_type:-unknown} build of \
$micro_built); supervisord $(supervisord --version) (Debian supervisor \
$(dpkg-query -W -f '${Version}' supervisor 2>/dev/null || echo ?), $(python3 --version))"
export REPORT_DATE REPORT_MACHINE REPORT_VERSIONS

mkdir -p "$(dirname "$RESULTS")"
# bench/rollout.sh keeps its section in the same file: it survives this rewrite.
ROLLOUT_SECTION=$(sed -n '/<!-- rollout:begin/,/<!-- rollout:end -->/p' "$RESULTS" 2>/dev/null || true)
"$PY" - "$DATA" <<'PY' | tee "$RESULTS"
import math, os, statistics, sys
from collections import defaultdict

restart, deploy, cli, spawn, stop, cpu, mem, procs, hwm, load = {}, defaultdict(list), defaultdict(list), {}, {}, {}, {}, {}, {}, {}
problems = []
for line in open(sys.argv[1]):
    kind, system, key, value = line.rstrip("\n").split("\t", 3)
    if kind == "restart": restart[system] = [float(v) for v in value.split(",") if v]
    elif kind == "deploy": deploy[system].append([int(v) / 1000 for v in value.split()])
    elif kind == "cli": cli[system].append(int(value) / 1000)
    elif kind == "spawn": spawn[(system, key)] = [int(v) / 1e6 for v in value.split()]
    elif kind == "stop": stop[(system, key)] = int(value) / 1e6
    elif kind == "cpu": cpu[(system, key)] = float(value.split()[0])
    elif kind == "mem": mem[(system, key)] = [int(v) for v in value.split()]
    elif kind == "procs": procs[(system, key)] = int(value)
    elif kind == "hwm": hwm[system] = int(value)
    elif kind == "load": load[system] = value
    elif kind == "problem": problems.append(f"- {system}: {value}")

e = os.environ
def med(v): return statistics.median(v) if v else None
def p90(v): return sorted(v)[math.ceil(0.9 * len(v)) - 1] if v else None  # nearest rank
def fmt(v, d=1): return "—" if v is None else f"{v:,.{d}f}"
def ratio(a, b): return None if a is None or not b else a / b
def mb(kb): return kb / 1024
SYS = ("supervisord", "micro")

print("# Runtime: micro vs supervisord 4.2 (restart, deploy, the supervisor's own cost)\n")
print(f"- date: {e['REPORT_DATE']}")
print(f"- machine: {e['REPORT_MACHINE']}; load average {load.get('before', '?')} before, "
      f"{load.get('after', '?')} after")
print(f"- versions: {e['REPORT_VERSIONS']}")
print(f"- command: `{e['COMMAND']}`")
print("- both supervise the same static binary, `micro-bench-proc` (bench/proc.cc), run in turn in "
      "one run; each with its default logging (supervisord: `loglevel=info`, every process's stdout "
      f"and stderr to AUTO log files, `minfds={e['SV_MINFDS']}`; micro: its per-instance log "
      "files); supervisord runs in the foreground (`-n`) with its own config and socket in a temp "
      "dir, micro as `micro server --address 127.0.0.1:0` with a fresh data dir")
print(f"- restart: a process that writes a start mark, lives {e['CRASH_DELAY_MS']} ms, writes an "
      "exit mark and exits 1; latency = its exit mark to its replacement's start mark, "
      f"{e['CRASHES']} restarts. supervisord: `autorestart=true startsecs=0 startretries=1000` "
      "(`startsecs=0`: a run counts as started at once, so a quick exit is an ordinary exit, "
      "restarted at once, and never the BACKOFF state); micro: a manifest with "
      "`backoff: {initial: 0}`")
print(f"- deploy: from just before the deploy to the program's start mark, {e['DEPLOYS']} rounds, "
      "interleaved, a new name each, removed after. supervisord: write `conf.d/NAME.conf` "
      "(`startsecs=0`) + `supervisorctl update`, removed with `supervisorctl stop` + `remove`; "
      "micro: `micro run --name NAME -- micro-bench-proc mark FILE`, removed with `micro kill`")
print(f"- cost: N idle processes (`numprocs=N` / `--instances N`); once all N have started and are "
      f"reported running, {e['SETTLE']} s, then both supervisors over the same {e['WINDOW']} s: "
      "CPU = utime + stime of the supervisor process (all threads, not its children) from "
      "/proc/PID/stat, as % of one core; RSS at the end: VmRSS, and Rss / Pss from "
      "/proc/PID/smaps_rollup")
print()

r = {s: restart.get(s) for s in SYS}
d = {s: [x[0] for x in deploy.get(s, [])] for s in SYS}
dc = {s: [x[1] for x in deploy.get(s, [])] for s in SYS}
rows = [
    ("restart after a crash, median ms", med(r["supervisord"]), med(r["micro"])),
    ("restart after a crash, p90 ms", p90(r["supervisord"]), p90(r["micro"])),
    ("deploy to running, median ms", med(d["supervisord"]), med(d["micro"])),
    ("deploy command returned, median ms", med(dc["supervisord"]), med(dc["micro"])),
    ("one CLI round trip (`supervisorctl pid`, `micro health`), median ms",
     med(cli.get("supervisord")), med(cli.get("micro"))),
]
print("| latency | supervisord | micro | supervisord ÷ micro |")
print("|---|---:|---:|---:|")
for label, a, b in rows:
    print(f"| {label} | {fmt(a, 2)} | {fmt(b, 2)} | {fmt(ratio(a, b))} |")
print(f"\nSamples: restarts {len(r['supervisord'] or [])} / {len(r['micro'] or [])}, "
      f"deploys {len(d['supervisord'])} / {len(d['micro'])} (supervisord / micro); "
      "p90 by nearest rank.\n")

counts = sorted({int(k) for (_, k) in mem if k.isdigit()})
print("| idle processes | supervisor | VmRSS MB | smaps Rss / Pss MB | threads | CPU % of a core "
      "| all started after s | stop + remove s |")
print("|---:|---|---:|---:|---:|---:|---:|---:|")
for n in counts:
    k = str(n)
    for s in SYS:
        m = mem.get((s, k))
        if not m: continue
        sp, st = spawn.get((s, k)), stop.get((s, k))
        running = procs.get((s, k))
        note = "" if n == 0 or running in (None, n) else f" ({running} running)"
        print(f"| {n:,}{note} | {s} | {fmt(mb(m[0]))} | {fmt(mb(m[1]))} / {fmt(mb(m[2]))} | {m[3]} "
              f"| {fmt(cpu.get((s, k)), 2) if n else '—'} | {fmt(sp[0], 2) if sp else '—'} "
              f"| {fmt(st, 2) if st is not None else '—'} |")
for s in SYS:
    m = mem.get((s, "end"))
    if m:
        print(f"\n- {s} after every fleet was removed: VmRSS {fmt(mb(m[0]))} MB (Pss {fmt(mb(m[2]))}), "
              f"peak VmHWM {fmt(mb(hwm.get(s, 0)))} MB", end="")
print("\n")

def check(ok): return "—" if ok is None else ("✅" if ok else "❌")
rr = ratio(med(r["supervisord"]), med(r["micro"]))
top = str(counts[-1]) if counts else None
rss_top = mem.get(("micro", top)) if top else None
print("Targets:\n")
print(f"- restart latency at most a tenth of supervisord's (median): supervisord ÷ micro = "
      f"{fmt(rr)} {check(None if rr is None else rr >= 10)}")
if rss_top:
    print(f"- micro under 64 MB RSS with {int(top):,} supervised processes: VmRSS "
          f"{fmt(mb(rss_top[0]))} MB {check(mb(rss_top[0]) < 64)}")
for n in counts[1:] if counts and counts[0] == 0 else counts:
    c = cpu.get(("micro", str(n)))
    if c is not None:
        print(f"- micro under 1% CPU with {n:,} idle processes: {fmt(c, 2)}% {check(c < 1)}")
if problems:
    print("\n**Problems**:")
    print("\n".join(problems))
PY
[[ -z $ROLLOUT_SECTION ]] || printf '\n%s\n' "$ROLLOUT_SECTION" >>"$RESULTS"
log "wrote $RESULTS"

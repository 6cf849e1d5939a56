# Shell helpers shared by the benchmark scripts; sourced after TMP, DATA and PY are set.
# Starts nothing itself: the scripts add the PIDs they start to PIDS, and cleanup stops them.
PIDS=()

# SIGTERM, then SIGKILL after 5 s; the pid is forgotten so that cleanup never signals a reused one.
stop_pid() {
  local pid=$1 i kept=()
  if kill -TERM "$pid" 2>/dev/null; then
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  for i in "${PIDS[@]}"; do [[ $i = "$pid" ]] || kept+=("$i"); done
  PIDS=("${kept[@]}")
}
cleanup() {
  while ((${#PIDS[@]} > 0)); do stop_pid "${PIDS[0]}"; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The access token of the daemon's admin (micro login --admin with the daemon's data dir), for
# MICRO_TOKEN: micro-loadgen and the bench clients send it. Valid 24 hours.
micro_token() {  # micro binary, data dir, address
  local home
  home=$(mktemp -d "$TMP/home.XXXXXX")
  HOME=$home "$1" login --admin --ttl 86400 --data-dir "$2" --address "$3" >/dev/null || return 1
  "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["access_token"])' \
    "$home/.micro/tokens/${3//:/_}.json"
}

# Ports free right now on 127.0.0.1 (the kernel picks them; the peers then bind them by number).
free_ports() {
  "$PY" -c 'import socket
socks = [socket.socket() for _ in range(int(__import__("sys").argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

# Hex of a protobuf message, fields given as NUM:s:TEXT (bytes), NUM:v:INT (varint) or NUM:x:N
# (N bytes of 'x'): etcd's requests are encoded by hand since we carry no etcd protos.
# The text {nnnnnnnnnn} in a key is numbered per call by micro-loadgen (see request_builder.h).
pb_hex() {
  "$PY" -c 'import sys
def varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7f) | (0x80 if n > 0x7f else 0))
        n >>= 7
        if not n: return bytes(out)
msg = bytearray()
for arg in sys.argv[1:]:
    num, kind, val = arg.split(":", 2)
    if kind == "v":
        msg += varint(int(num) << 3) + varint(int(val))
        continue
    data = val.encode() if kind == "s" else b"x" * int(val)
    msg += varint(int(num) << 3 | 2) + varint(len(data)) + data
print(msg.hex())' "$@"
}

rss_mb() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
peak_rss_mb() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }  # value of KEY=VALUE in a loadgen line
record() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$DATA"; }

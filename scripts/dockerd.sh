#!/usr/bin/env bash
# A private dockerd for the container driver's tests, isolated in one directory.
#   scripts/dockerd.sh start DIR   start it (socket DIR/docker.sock), import micro-test:latest,
#                                  print the socket path; exit 77 if dockerd cannot run here
#   scripts/dockerd.sh stop DIR    stop it by PID and remove what it left in DIR
# It listens on its unix socket only, and touches no host networking: no iptables rules, no
# bridge, no IP forwarding (CI machines and this VM have no systemd and restricted networking).
# Its containerd is the one dockerd spawns itself, with its state under DIR too.
set -euo pipefail

readonly kStartTimeout=30  # seconds until the socket must answer
readonly kStopTimeout=30   # seconds between SIGTERM and SIGKILL

usage() {
  echo "usage: $0 start|stop DIR" >&2
  exit 2
}

[[ $# -eq 2 ]] || usage
action=$1
mkdir -p "$2"
dir=$(cd "$2" && pwd)
sock=$dir/docker.sock
pidfile=$dir/dockerd.pid
log=$dir/dockerd.log

# The CLI from the docker.io package matches the daemon; another one first on PATH may not.
docker_cli() {
  local cli=docker
  [[ -x /usr/bin/docker ]] && cli=/usr/bin/docker
  timeout 60 "$cli" -H "unix://$sock" "$@"
}

skip() {
  echo "dockerd.sh: cannot run dockerd here: $*" >&2
  [[ -f $log ]] && tail -n 20 "$log" >&2
  exit 77
}

running_pid() {
  [[ -f $pidfile ]] || return 1
  local pid
  pid=$(cat "$pidfile")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

install_if_missing() {
  command -v dockerd >/dev/null && [[ -x /bin/busybox ]] && return 0
  [[ $(id -u) -eq 0 ]] || skip "docker.io is not installed and we are not root"
  echo "dockerd.sh: installing docker.io and busybox-static" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    docker.io busybox-static >&2 || skip "apt-get install docker.io busybox-static failed"
}

# A rootfs of busybox and the applets the tests use, imported as micro-test:latest.
import_test_image() {
  local rootfs=$dir/rootfs
  rm -rf "$rootfs"
  mkdir -p "$rootfs"/{bin,dev,etc,proc,sys,tmp}
  cp /bin/busybox "$rootfs/bin/busybox"
  local applet
  for applet in sh sleep echo cat env true false kill ls ps yes; do
    ln -s busybox "$rootfs/bin/$applet"
  done
  tar -C "$rootfs" -c . |
    docker_cli import --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - micro-test:latest \
      >/dev/null
  rm -rf "$rootfs"
}

start() {
  if running_pid >/dev/null; then
    echo "$sock"
    return 0
  fi
  install_if_missing
  [[ $(id -u) -eq 0 ]] || skip "dockerd needs root"
  # unix socket paths are limited to 107 bytes; containerd's lives deeper than ours.
  (( ${#dir} < 70 )) || skip "$dir is too long a path for the sockets below it"
  mkdir -p "$dir/data" "$dir/exec"
  echo '{}' >"$dir/daemon.json"  # ignore the host's /etc/docker/daemon.json
  rm -f "$sock" "$pidfile"
  # setsid + redirections: dockerd outlives this script and holds none of its pipes, so CTest
  # does not wait for it.
  setsid dockerd \
    --host "unix://$sock" \
    --config-file "$dir/daemon.json" \
    --data-root "$dir/data" \
    --exec-root "$dir/exec" \
    --pidfile "$pidfile" \
    --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
    </dev/null >"$log" 2>&1 &
  local pid=$! deadline=$((SECONDS + kStartTimeout))
  until docker_cli version >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || skip "dockerd exited during start-up (log: $log)"
    if ((SECONDS >= deadline)); then
      kill -TERM "$pid" 2>/dev/null || true
      skip "dockerd did not answer on $sock within ${kStartTimeout}s (log: $log)"
    fi
    sleep 0.2
  done
  import_test_image || { stop; skip "docker import of the test image failed"; }
  echo "$sock"
}

# containerd and its shims, whose command lines mention DIR (their config, their socket): left
# behind when dockerd had to be killed.
containerd_under_dir() {
  local pid cmdline
  pgrep -a -f containerd | while read -r pid cmdline; do
    if [[ $cmdline == *"$dir/"* ]]; then echo "$pid"; fi
  done
  return 0
}

# Processes still in the cgroups of this dockerd's containers (cgroupfs driver: .../docker/<id>):
# they outlive a shim that was killed.
container_processes() {
  local container procs
  for container in "$dir"/data/containers/*/; do
    container=$(basename "$container")
    [[ $container =~ ^[0-9a-f]{64}$ ]] || continue
    for procs in /sys/fs/cgroup/*/docker/"$container"/cgroup.procs; do
      cat "$procs" || true
    done
  done 2>/dev/null | sort -u
  return 0
}

stop() {
  local pid
  if pid=$(running_pid); then
    # Containers first, so none outlives its shim.
    local ids
    ids=$(docker_cli ps -aq 2>/dev/null || true)
    [[ -z $ids ]] || docker_cli rm -f $ids >/dev/null 2>&1 || true
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + kStopTimeout))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "dockerd.sh: dockerd $pid ignored SIGTERM for ${kStopTimeout}s: SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  local leftover
  for leftover in $(container_processes) $(containerd_under_dir); do
    kill -KILL "$leftover" 2>/dev/null || true
  done
  local cgroup
  for cgroup in /sys/fs/cgroup/*/docker/*/; do
    [[ -d $dir/data/containers/$(basename "$cgroup") ]] || continue
    rmdir "$cgroup" 2>/dev/null || true
  done
  # Whatever dockerd did not unmount (after a SIGKILL), deepest first, before removing files.
  local mount
  for mount in $(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount -l "$mount" 2>/dev/null || true
  done
  rm -rf --one-file-system "$dir/data" "$dir/exec" "$dir/rootfs" "$sock" "$pidfile" \
    "$dir/daemon.json"
}

case $action in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac

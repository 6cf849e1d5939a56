#!/usr/bin/env bash
# The container image (packaging/image/build.sh) under the test dockerd (scripts/dockerd.sh,
# the CTest fixture `dockerd`): it serves with TLS from its default command with the data dir on
# a named volume, and answers `micro health` from the host with the CA from that volume.
#   tests/packaging/image_test.sh BUILD_DIR DOCKER_SOCKET
# The test dockerd has no bridge network: the default command runs with --network none (checked
# with `docker exec`), and the host check runs with --network host on 127.0.0.1:0, so nothing
# listens beyond loopback.
set -euo pipefail
build_dir=$(cd "${1:?usage: $0 BUILD_DIR DOCKER_SOCKET}" && pwd)
socket=${2:?usage: $0 BUILD_DIR DOCKER_SOCKET}
source "$(dirname "$0")/common.sh"
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
micro=$build_dir/micro

export DOCKER_HOST=unix://$socket
[[ -S $socket ]] || skip "no test dockerd at $socket (scripts/dockerd.sh could not start one here)"
docker_cli version >/dev/null 2>&1 || skip "the test dockerd at $socket does not answer"

start=$SECONDS
id=micro-pkg-$$-$RANDOM
image=$id:test
volume=$id-data
work=$(mktemp -d)
cleanup() {
  docker_cli rm -f "$id-a" "$id-b" >/dev/null 2>&1 || true
  docker_cli volume rm "$volume" >/dev/null 2>&1 || true
  docker_cli rmi "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

check "the image builds" "$source_dir/packaging/image/build.sh" --tag "$image" "$micro" >/dev/null
config=$(docker_cli image inspect "$image" --format '{{json .Config}}')
echo "image config: $config"
check "the image runs as micro" grep -q '"User":"micro"' <<<"$config"
check "the image keeps its data dir on a volume" grep -q '"Volumes":{"/var/lib/micro":{}}' <<<"$config"
check "the image serves gRPC on every interface, the HTTP gateway off" \
  grep -q '"--address","0.0.0.0:8081","--http-address","off"' <<<"$config"
check "the image exposes 8081" grep -q '"8081/tcp"' <<<"$config"
size=$(docker_cli image inspect "$image" --format '{{.Size}}')
check "the image ($size bytes) carries no debug information (< 100 MB)" \
  test "${size:-0}" -gt 0 -a "${size:-0}" -lt 100000000
docker_cli volume create "$volume" >/dev/null
data=$(docker_cli volume inspect "$volume" --format '{{.Mountpoint}}')

# Waits (bounded) until the daemon in container $1 wrote server.json with a pid other than $2.
wait_for_server_json() {
  local container=$1 old=$2 deadline=$((SECONDS + 30))
  until [[ -f $data/server.json ]] && ! grep -q "\"started_unix_ms\": $old," "$data/server.json"; do
    if [[ $(docker_cli inspect -f '{{.State.Running}}' "$container") != true ]] ||
      ((SECONDS >= deadline)); then
      docker_cli logs "$container" >&2 || true
      fail "container $container did not serve within 30 s"
    fi
    sleep 0.2
  done
}
json_field() { sed -n "s/^ *\"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}\$/\1/p" "$data/server.json"; }

# A: the default command, in a network namespace of its own.
docker_cli run -d --name "$id-a" --network none -v "$volume:/var/lib/micro" "$image" >/dev/null
wait_for_server_json "$id-a" none
check "default command: gRPC on 0.0.0.0:8081" test "$(json_field grpc_address)" = 0.0.0.0:8081
check "default command: automatic TLS" test "$(json_field tls)" = true
check "default command: no HTTP gateway" test -z "$(json_field http_address)"
check "the volume belongs to the image's user micro, 0750" \
  test "$(stat -c '%u %a' "$data")" = "10001 750"
first_started=$(json_field started_unix_ms)
admin_secret=$(cat "$data/admin.secret")
check "default command: micro login --admin in the container" docker_cli exec -e HOME=/tmp \
  "$id-a" micro login --admin --data-dir /var/lib/micro --tls-ca /var/lib/micro/tls/ca.pem
health=$(docker_cli exec -e HOME=/tmp "$id-a" micro health) || fail "health in the container: $health"
check "default command: SERVING in the container ($health)" grep -q '^SERVING' <<<"$health"
docker_cli stop -t 30 "$id-a" >/dev/null
check "docker stop: the daemon exits 0" test "$(docker_cli inspect -f '{{.State.ExitCode}}' "$id-a")" = 0

# B: the same volume, reachable from the host on loopback with TLS on.
docker_cli run -d --name "$id-b" --network host -v "$volume:/var/lib/micro" "$image" \
  server --config /etc/micro/micro.yaml --data-dir /var/lib/micro \
  --address 127.0.0.1:0 --tls-auto true --http-address off >/dev/null
wait_for_server_json "$id-b" "$first_started"
address=$(json_field grpc_address)
check "the daemon serves on $address" grep -qE '^127\.0\.0\.1:[0-9]+$' <<<"$address"
check "the data survived the container: the same admin secret" \
  test "$(cat "$data/admin.secret")" = "$admin_secret"
if plain=$(HOME=$work/none "$micro" health --address "$address" --timeout 5 2>&1); then
  fail "health without TLS answered: $plain"
fi
check "a client without the CA is refused for TLS ($plain)" grep -qi 'tls' <<<"$plain"
mkdir -p "$work/home"
check "micro login --admin from the host with the volume's CA" env HOME="$work/home" "$micro" \
  login --admin --data-dir "$data" --address "$address" --tls-ca "$data/tls/ca.pem"
health=$(HOME=$work/home "$micro" health --address "$address") || fail "health from the host: $health"
check "SERVING from the host ($health)" grep -q '^SERVING' <<<"$health"
docker_cli stop -t 30 "$id-b" >/dev/null
check "docker stop: the daemon exits 0" test "$(docker_cli inspect -f '{{.State.ExitCode}}' "$id-b")" = 0
echo "image_test: passed in $((SECONDS - start)) s"

#!/usr/bin/env bash
# Builds the container image of the micro daemon without pulling a base image: a root file
# system of the micro binary, the shared libraries it loads, the dynamic loader, /etc/passwd and
# /etc/group with the user micro, and the default /etc/micro/micro.yaml, imported with
# `docker import` (docs/install.md, "From the container image").
#
#   packaging/image/build.sh [--tag TAG] [--tarball FILE] MICRO_BINARY
#
#   --tag TAG       the image's name (default micro:<version the binary prints>)
#   --tarball FILE  also keep the root file system as this tar file
# The docker CLI is the one on PATH (/usr/bin/docker first); DOCKER_HOST selects the engine.
set -euo pipefail

readonly kUid=10001  # the user micro in the image; the data volume belongs to it
readonly kDataDir=/var/lib/micro

usage() {
  echo "usage: $0 [--tag TAG] [--tarball FILE] MICRO_BINARY" >&2
  exit 2
}

tag=""
tarball=""
binary=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --tag) tag=${2:?}; shift 2 ;;
    --tarball) tarball=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    -*) usage ;;
    *) [[ -z $binary ]] || usage; binary=$1; shift ;;
  esac
done
[[ -n $binary && -x $binary ]] || usage
source_dir=$(cd "$(dirname "$0")/../.." && pwd)

docker_cli() {
  local cli=docker
  [[ -x /usr/bin/docker ]] && cli=/usr/bin/docker
  timeout 300 "$cli" "$@"
}

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{usr/bin,etc/micro,tmp,proc,sys,dev,run} "$rootfs$kDataDir"
chmod 1777 "$rootfs/tmp"

# The binary without its debug information (a RelWithDebInfo build carries ~140 MB of it).
objcopy --strip-debug "$binary" "$rootfs/usr/bin/micro"
version=$("$rootfs/usr/bin/micro" version | awk 'NR == 1 { print $NF }')
[[ -n $tag ]] || tag=micro:${version:-latest}

# Every library the loader resolves, at the path it resolves it to, plus the loader itself
# (the "=>"-less absolute path ldd prints). Symbolic links are copied as the files they name.
ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
  sort -u | while read -r lib; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
# Debian's loader path is /lib64/ld-linux-x86-64.so.2 and its libraries live in /lib/...: a
# merged /usr has /lib -> usr/lib, which the image does not need.

cat >"$rootfs/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/usr/sbin/nologin
micro:x:$kUid:$kUid:micro daemon:$kDataDir:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
cat >"$rootfs/etc/group" <<GROUP
root:x:0:
micro:x:$kUid:
nogroup:x:65534:
GROUP
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
cp "$source_dir/config/micro.yaml" "$rootfs/etc/micro/micro.yaml"
# The volume at /var/lib/micro starts as a copy of this folder: owned by micro, 0750.
chown "$kUid:$kUid" "$rootfs$kDataDir"
chmod 0750 "$rootfs$kDataDir"

# No CA certificates: the daemon makes no outgoing TLS connection (its own TLS CA is made in
# the data dir), and its container driver talks to a unix socket.
tar_args=(-C "$rootfs" --numeric-owner --sort=name -c .)
if [[ -n $tarball ]]; then
  tar "${tar_args[@]}" -f "$tarball"
fi

# gRPC on every interface of the container, so a published port reaches it; a non-loopback
# address gets automatic TLS (its CA in <volume>/tls/ca.pem). The HTTP gateway is off: it is
# plain HTTP, which the daemon refuses on a non-loopback address without --insecure.
tar "${tar_args[@]}" | docker_cli import \
  --change "USER micro" \
  --change "WORKDIR $kDataDir" \
  --change "ENV PATH=/usr/bin HOME=$kDataDir" \
  --change "EXPOSE 8081" \
  --change "VOLUME $kDataDir" \
  --change 'ENTRYPOINT ["/usr/bin/micro"]' \
  --change "CMD [\"server\", \"--config\", \"/etc/micro/micro.yaml\", \"--data-dir\", \"$kDataDir\", \"--address\", \"0.0.0.0:8081\", \"--http-address\", \"off\"]" \
  --change "LABEL org.opencontainers.image.title=micro org.opencontainers.image.version=$version" \
  - "$tag" >/dev/null
echo "$tag"

#!/usr/bin/env bash
# The Debian package installs into a clean Debian bookworm root (debootstrap, minbase, from the
# configured Debian mirror): postinst creates the user micro and /var/lib/micro (micro, 0750),
# `micro version` runs there, the installed daemon serves as micro with the packaged config,
# and a purge removes /etc/micro but keeps the data dir and the user.
#   tests/packaging/install_test.sh BUILD_DIR
# The root with the package's dependencies is made once (about 2-3 minutes) and cached as a tar
# file in $MICRO_PACKAGING_CACHE (default /var/cache/micro-tests), keyed by those dependencies;
# later runs unpack it (seconds).
set -euo pipefail
build_dir=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
source "$(dirname "$0")/common.sh"

[[ $(id -u) -eq 0 ]] || skip "needs root for debootstrap, chroot and dpkg in the root"
for tool in debootstrap chroot unshare dpkg-deb; do
  command -v "$tool" >/dev/null || fail "$tool is missing: scripts/deps.sh installs it"
done

start=$SECONDS
deb=$(package_deb "$build_dir")
# The package's dependencies, names only, so the cached root has them and dpkg -i needs no
# network.
depends=$(dpkg-deb --field "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/ //g' |
  grep -v '^$' | sort -u | paste -sd, -)
cache_dir=${MICRO_PACKAGING_CACHE:-/var/cache/micro-tests}
cache=$cache_dir/bookworm-minbase-$(printf '%s' "$depends" | md5sum | cut -c1-12).tar
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)\/* *$/\1/p' /etc/apt/sources.list.d/*.sources \
  2>/dev/null | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d /tmp/micro-install-test.XXXXXX)
root=$work/root
daemon_pid=""
cleanup() {
  if [[ -n $daemon_pid ]]; then
    kill -KILL "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

# Runs a command chrooted into $root, in a mount namespace of its own with /proc and /dev:
# they go away with it.
in_root() {
  unshare --mount sh -c 'mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" &&
    exec chroot "$0" "$@"' "$root" "$@"
}

if [[ ! -f $cache ]]; then
  echo "making the Debian root ($mirror, then $depends) once; cached in $cache"
  mkdir -p "$cache_dir" "$root"
  timeout 900 debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/setup.log" 2>&1 ||
    { tail -n 30 "$work/setup.log" >&2; fail "debootstrap from $mirror failed"; }
  # apt in the root resolves what debootstrap cannot (virtual packages such as
  # libspdlog1.10-fmt9).
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  in_root env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q \
    --no-install-recommends ${depends//,/ } >>"$work/setup.log" 2>&1 ||
    { tail -n 30 "$work/setup.log" >&2; fail "apt-get install of the dependencies failed"; }
  in_root apt-get clean
  tar -C "$root" --numeric-owner -cf "$cache.tmp" . && mv "$cache.tmp" "$cache"
  rm -rf --one-file-system "$root"
  echo "the root took $((SECONDS - start)) s"
fi
mkdir -p "$root"
tar -C "$root" --numeric-owner -xf "$cache"
check "the root has no micro user before the install" \
  bash -c '! chroot "$1" getent passwd micro >/dev/null' _ "$root"

cp "$deb" "$root/tmp/micro.deb"
in_root dpkg -i /tmp/micro.deb >"$work/dpkg.log" 2>&1 ||
  { cat "$work/dpkg.log" >&2; fail "dpkg -i failed in the clean root"; }
check "dpkg says micro is installed" \
  bash -c 'chroot "$1" dpkg-query -W -f="\${Status}" micro | grep -qx "install ok installed"' _ "$root"
version=$(chroot "$root" /usr/bin/micro version) || fail "micro version failed in the root"
check "micro version runs in the root ($version)" grep -q '^micro [0-9]' <<<"$version"
passwd=$(chroot "$root" getent passwd micro) || fail "postinst made no user micro"
check "postinst made a system user micro with home /var/lib/micro ($passwd)" \
  bash -c 'IFS=: read -r _ _ uid _ _ home shell <<<"$1"; ((uid < 1000)) &&
    [[ $home == /var/lib/micro && $shell == */nologin ]]' _ "$passwd"
check "/var/lib/micro belongs to micro:micro, mode 0750" \
  test "$(chroot "$root" stat -c '%U:%G %a' /var/lib/micro)" = "micro:micro 750"
check "dpkg knows /etc/micro/micro.yaml as a conffile" bash -c \
  'chroot "$1" dpkg-query -W -f="\${Conffiles}" micro | grep -q "/etc/micro/micro.yaml "' _ "$root"

# The installed daemon, as the unit runs it (user micro, packaged config and data dir), on
# 127.0.0.1:0 instead of the default port.
# Not through in_root: a function in the background is a subshell of its own. unshare, sh,
# chroot, setpriv and env all exec (runuser would stay as the parent): $! is the daemon.
unshare --mount sh -c 'mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" &&
  exec chroot "$0" "$@"' "$root" /usr/bin/setpriv --reuid=micro --regid=micro --init-groups \
  /usr/bin/env HOME=/var/lib/micro /usr/bin/micro server --config /etc/micro/micro.yaml \
  --data-dir /var/lib/micro --address 127.0.0.1:0 --http-address off >"$work/daemon.log" 2>&1 &
daemon_pid=$!
deadline=$((SECONDS + 30))
until [[ -f $root/var/lib/micro/server.json ]]; do
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$work/daemon.log" >&2; fail "the daemon exited"; }
  ((SECONDS < deadline)) || { cat "$work/daemon.log" >&2; fail "no server.json within 30 s"; }
  sleep 0.2
done
address=$(sed -n 's/^ *"grpc_address": "\(.*\)",$/\1/p' "$root/var/lib/micro/server.json")
health=$(in_root env HOME=/tmp sh -c 'micro login --admin --data-dir /var/lib/micro --address "$0" \
  >/dev/null && micro health --address "$0"' "$address") || fail "health in the root: $health"
check "the installed daemon serves as micro ($health)" grep -q '^SERVING' <<<"$health"
check "its files belong to micro" \
  test "$(chroot "$root" stat -c '%U' /var/lib/micro/admin.secret)" = micro
kill -TERM "$daemon_pid"
code=0
wait "$daemon_pid" || code=$?
daemon_pid=""
[[ $code -eq 0 ]] || { tail -n 20 "$work/daemon.log" >&2; fail "the daemon exited with $code at SIGTERM"; }
echo "ok: the daemon stops with exit 0 at SIGTERM"

in_root dpkg --purge micro >"$work/purge.log" 2>&1 ||
  { cat "$work/purge.log" >&2; fail "dpkg --purge failed"; }
check "purge removes /usr/bin/micro and /etc/micro" \
  test ! -e "$root/usr/bin/micro" -a ! -e "$root/etc/micro"
check "purge keeps the data dir" test -f "$root/var/lib/micro/admin.secret"
check "purge keeps the user micro (it still owns the data dir)" chroot "$root" getent passwd micro
check "purge says what it kept" grep -q "kept the data dir /var/lib/micro" "$work/purge.log"
echo "install_test: passed in $((SECONDS - start)) s"

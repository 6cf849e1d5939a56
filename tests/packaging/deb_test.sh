#!/usr/bin/env bash
# The Debian package: it builds from the build dir (cpack -G DEB), holds the expected files,
# lintian reports no error, and systemd-analyze accepts its unit.
#   tests/packaging/deb_test.sh BUILD_DIR
set -euo pipefail
build_dir=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
source "$(dirname "$0")/common.sh"

for tool in dpkg-deb lintian systemd-analyze; do
  command -v "$tool" >/dev/null || fail "$tool is missing: scripts/deps.sh installs it"
done

start=$SECONDS
deb=$(package_deb "$build_dir")
echo "built $deb in $((SECONDS - start)) s"

contents=$(dpkg-deb --contents "$deb")
for path in ./usr/bin/micro ./etc/micro/micro.yaml ./lib/systemd/system/micro.service \
  ./usr/share/doc/micro/copyright ./usr/share/doc/micro/changelog.gz \
  ./usr/share/doc/micro/install.md; do
  check "the package holds $path" grep -q " $path\$" <<<"$contents"
done
check "/usr/bin/micro is executable, root-owned" \
  grep -qE '^-rwxr-xr-x root/root .* \./usr/bin/micro$' <<<"$contents"
check "nothing of the SDK is in the package" \
  bash -c '! grep -qE "/include/|\.a$|/cmake/" <<<"$1"' _ "$contents"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb --control "$deb" "$work/control"
check "/etc/micro/micro.yaml is a conffile" grep -qx /etc/micro/micro.yaml "$work/control/conffiles"
depends=$(dpkg-deb --field "$deb" Depends)
check "Depends names adduser (postinst) and the shared libraries" \
  bash -c '[[ $1 == *adduser* && $1 == *libgrpc++1.51* && $1 == *librocksdb* ]]' _ "$depends"
check "postinst creates the user micro and the data dir 0750" \
  bash -c 'grep -q "adduser --system" "$1" && grep -q "chmod 0750 /var/lib/micro" "$1"' _ \
  "$work/control/postinst"
for script in postinst prerm postrm; do
  check "$script is valid sh" sh -n "$work/control/$script"
done

# The unit as the package ships it.
dpkg-deb -x "$deb" "$work/root"
unit=$work/root/lib/systemd/system/micro.service
check "the unit is Type=notify" grep -qx 'Type=notify' "$unit"
check "the unit runs the daemon with the packaged config and data dir" grep -qx \
  'ExecStart=/usr/bin/micro server --config /etc/micro/micro.yaml --data-dir /var/lib/micro' "$unit"
check "the unit restarts on failure" grep -qx 'Restart=on-failure' "$unit"
check "the unit delegates its cgroup (the runtime's per-instance cgroups)" \
  grep -qx 'Delegate=yes' "$unit"
check "the unit leaves the supervised services to the daemon (KillMode=process)" \
  grep -qx 'KillMode=process' "$unit"
check "the data dir is the only writable path" grep -qx 'ReadWritePaths=/var/lib/micro' "$unit"
stop_timeout=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\?$/\1/p' "$unit")
# shutdown_grace_seconds (10) + a service's grace_period (10) + a container stop's engine
# deadline (30): the defaults in docs/runtime.md.
check "TimeoutStopSec ($stop_timeout s) exceeds the daemon's and services' default grace periods" \
  test "${stop_timeout:-0}" -gt 50

# systemd-analyze verify against the package's own tree (/usr/bin/micro must exist and be
# executable), with the system's units for the targets it names. It exits 0 on warnings, so any
# output at all fails the test.
cp -a /lib/systemd/system/. "$work/root/lib/systemd/system/"
mkdir -p "$work/root/bin" && cp /bin/kill "$work/root/bin/kill"
verify=$(systemd-analyze verify --root="$work/root" /lib/systemd/system/micro.service 2>&1) ||
  fail "systemd-analyze verify failed: $verify"
check "systemd-analyze verify accepts the unit without a warning ($verify)" test -z "$verify"
exposure=$(systemd-analyze security --offline=yes --root="$work/root" micro.service 2>&1 |
  grep 'Overall exposure level' || true)
echo "systemd-analyze security: ${exposure:-no figure}"

# lintian: no error (it exits non-zero on one); its warnings are printed.
lintian_out=$(lintian --allow-root "$deb" 2>&1) || fail "lintian reports errors: $lintian_out"
echo "lintian: ${lintian_out:-clean}"
check "lintian reports no error" bash -c '! grep -q "^E:" <<<"$1"' _ "$lintian_out"
echo "deb_test: passed in $((SECONDS - start)) s"

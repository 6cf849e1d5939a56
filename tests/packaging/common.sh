# Shared by the packaging tests (sourced): failure, skipping and assertions.
# A test exits 0 when every check passed, 1 at the first failed check, 77 (CTest's
# SKIP_RETURN_CODE) only when a tool it needs cannot run on this machine, saying why.

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

skip() {
  echo "SKIPPED: $*" >&2
  exit 77
}

# check DESCRIPTION COMMAND...: runs COMMAND, fails the test with DESCRIPTION if it fails.
check() {
  local what=$1
  shift
  if ! "$@"; then fail "$what"; fi
  echo "ok: $what"
}

# The package the build made (cpack -G DEB through the target package_deb).
package_deb() {
  local build_dir=$1
  cmake --build "$build_dir" --target package_deb >"$build_dir/package_deb.log" 2>&1 ||
    { tail -n 30 "$build_dir/package_deb.log" >&2; fail "cpack -G DEB failed"; }
  local debs=("$build_dir"/micro_*.deb)
  [[ -f ${debs[0]} && ${#debs[@]} -eq 1 ]] || fail "expected one micro_*.deb in $build_dir: ${debs[*]}"
  echo "${debs[0]}"
}

# The docker CLI of the docker.io package (it matches the test dockerd), bounded in time.
docker_cli() {
  local cli=docker
  [[ -x /usr/bin/docker ]] && cli=/usr/bin/docker
  timeout 120 "$cli" "$@"
}

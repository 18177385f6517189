# shellcheck shell=bash
# What bench/proxy.sh and bench/api.sh share; sourced after they define say and die.

# apt-get install the packages named, when there are any.
install_missing() {
  [ "$#" -gt 0 ] || return 0
  [ "$(id -u)" = 0 ] || die "$* missing: install them, or run as root to let the script do it"
  say "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q "$@" >&2
}

# Set PODLAB to an absolute path of a release podlab: $PODLAB if given, else cargo builds one.
release_podlab() {
  if [ -n "${PODLAB:-}" ]; then
    [ -x "$PODLAB" ] || die "PODLAB=$PODLAB is not an executable"
  else
    command -v cargo >/dev/null 2>&1 || die "cargo not found: run scripts/install-deps.sh (and put ~/.cargo/bin on PATH)"
    say "building podlab (release)"
    cargo build --release --locked --bin podlab >&2
    PODLAB=${CARGO_TARGET_DIR:-target}/release/podlab
  fi
  PODLAB=$(realpath "$PODLAB")
}

#!/usr/bin/env bash
# Install what podlab and its labs need on Debian or Ubuntu. Safe to run again: it only
# calls apt-get when a package is missing.
#
#   scripts/install-deps.sh            build tools, BusyBox, iproute2, iptables, ... and Rust
#   scripts/install-deps.sh --bench    also hyperfine, runc, crun, umoci and jq (bench/run.sh)
#   scripts/install-deps.sh --vm       also qemu, cpio and jq (the cgroup v2 VM test lane)
#   scripts/install-deps.sh --test     also docker-registry, skopeo, runc, podman, umoci, etcd-server
#                                      and sqlite3 (registry, runtime and store tests)
set -euo pipefail

# Edition 2024 needs Rust 1.85 or newer.
MIN_RUST_MAJOR=1
MIN_RUST_MINOR=85

say() { printf 'install-deps: %s\n' "$*"; }
die() { printf 'install-deps: error: %s\n' "$*" >&2; exit 1; }

bench=0
vm=0
test=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    --vm) vm=1 ;;
    --test) test=1 ;;
    -h | --help)
      sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown option $arg (known: --bench, --vm, --test)" ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    exec sudo bash "$0" "$@"
  fi
  die "run this as root (packages are installed with apt-get)"
fi

command -v apt-get >/dev/null 2>&1 ||
  die "apt-get not found: this script knows Debian and Ubuntu only. Install by hand: a C compiler, pkg-config, protoc, a static BusyBox, iproute2, iptables, util-linux, procps, kmod, curl, and Rust >= ${MIN_RUST_MAJOR}.${MIN_RUST_MINOR}"

# --- Packages ---------------------------------------------------------------------------
packages=(
  build-essential pkg-config # cc and the linker for Rust, headers for native crates
  libseccomp-dev             # the runtime's seccomp filters (the libseccomp crate links it)
  busybox-static             # the root filesystem of the labs and boxes
  iproute2 iptables          # ip, bridge; the service proxy's rules
  util-linux                 # unshare, nsenter, lsns, findmnt, mount
  procps                     # ps, top, pgrep, sysctl
  iputils-ping               # ping in the network lab
  kmod                       # modprobe (overlay, br_netfilter)
  curl ca-certificates       # rustup, and registries later
  protobuf-compiler          # protoc: the etcd client crate generates its gRPC code at build time
)
if [ "$bench" = 1 ]; then
  packages+=(hyperfine runc crun jq umoci)
fi
if [ "$test" = 1 ]; then
  packages+=(docker-registry skopeo runc podman umoci etcd-server sqlite3)
fi
if [ "$vm" = 1 ]; then
  packages+=(qemu-system-x86 cpio jq)
fi

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q || die "apt-get update failed (no network, or a broken source in /etc/apt?)"
  apt-get install -y -q "${missing[@]}" || die "apt-get install failed for: ${missing[*]}"
fi

# --- Rust -------------------------------------------------------------------------------
# sudo resets PATH, so a rustup toolchain in ~/.cargo/bin may be installed but not on it.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

rust_note=""
if ! command -v cargo >/dev/null 2>&1; then
  say "cargo not found: installing Rust with rustup (https://sh.rustup.rs, needs internet)"
  if curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
    sh -s -- -y --profile minimal --component rustfmt --component clippy; then
    export PATH="$HOME/.cargo/bin:$PATH"
    rust_note=" (installed with rustup in $HOME/.cargo; in a new shell it is on PATH, here run: . \"$HOME/.cargo/env\")"
  else
    die "could not install Rust with rustup (no internet access?). Install Rust >= ${MIN_RUST_MAJOR}.${MIN_RUST_MINOR} another way (https://rustup.rs), then run this again"
  fi
fi

version=$(cargo --version | awk '{print $2}')
major=${version%%.*}
rest=${version#*.}
minor=${rest%%.*}
case "$major$minor" in
  *[!0-9]* | '') die "cannot read the version of cargo: '$(cargo --version)'" ;;
esac
if [ "$major" -lt "$MIN_RUST_MAJOR" ] ||
  { [ "$major" -eq "$MIN_RUST_MAJOR" ] && [ "$minor" -lt "$MIN_RUST_MINOR" ]; }; then
  hint="install a newer toolchain from https://rustup.rs"
  if command -v rustup >/dev/null 2>&1; then
    hint="run: rustup update stable"
  fi
  die "cargo $version at $(command -v cargo) is too old: podlab uses Rust edition 2024, which needs Rust >= ${MIN_RUST_MAJOR}.${MIN_RUST_MINOR}; $hint"
fi

# --- Summary ----------------------------------------------------------------------------
if [ "${#missing[@]}" -gt 0 ]; then
  pkgs="installed ${#missing[@]} package(s): ${missing[*]}"
else
  pkgs="all ${#packages[@]} packages already present"
fi
say "ok: $pkgs; cargo $version$rust_note"

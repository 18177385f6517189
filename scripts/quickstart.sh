#!/usr/bin/env bash
# Quick start: install what is needed, build podlab, and run the demo — a BusyBox shell in
# its own pid, mount and uts namespaces with a 64 MiB memory limit.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  # sudo resets PATH; keep the caller's, where cargo usually is.
  exec sudo env "PATH=$PATH" "$0" "$@"
fi
scripts/install-deps.sh
# A toolchain that install-deps just put in ~/.cargo is not on our PATH yet.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --locked
podlab="$CARGO_TARGET_DIR/release/podlab"
# The offline BusyBox image (from images/busybox), so `--image busybox` needs no network.
"$podlab" image build busybox
echo
echo "== podlab box: a BusyBox shell in new pid/mnt/uts namespaces, memory limited to 64Mi"
"$podlab" box --explain --rootfs busybox --ns pid,mnt,uts --hostname podlab-demo --memory 64Mi -- \
  sh -c 'echo "hostname: $(hostname)"; echo "my pid: $$"; echo "processes I can see:"; ps'
echo
echo "podlab is built at $podlab. Next: $podlab lab list"

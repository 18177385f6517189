#!/usr/bin/env bash
# Quick start: install what is needed, build podlab, and run the demos — a BusyBox shell in
# its own pid, mount and uts namespaces with a 64 MiB memory limit, then the web pod of
# examples/web-pod.yaml, whose page is fetched over the pod network. The pod's node agent
# runs in a network namespace of its own (podlab-demo), so the host's network is not touched.
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
echo "== podlab run -f examples/web-pod.yaml: a pod (pause + 2 containers) on its own node network"
demo_root=$(mktemp -d /tmp/podlab-demo.XXXXXX)
cleanup() {
  "$podlab" --root "$demo_root" reset >/dev/null 2>&1 || true
  ip netns del podlab-demo 2>/dev/null || true
  rm -rf "$demo_root"
}
trap cleanup EXIT
ip netns del podlab-demo 2>/dev/null || true
ip netns add podlab-demo
"$podlab" --root "$demo_root" image build busybox >/dev/null
"$podlab" --root "$demo_root" node --netns podlab-demo --detach
"$podlab" --root "$demo_root" run -f examples/web-pod.yaml --wait
"$podlab" --root "$demo_root" get pods -o wide
ip=$("$podlab" --root "$demo_root" get pods web -o json | sed -n 's/.*"podIP": "\(.*\)".*/\1/p' | head -1)
echo "== the page, fetched from the node: wget -qO- http://$ip:8080/"
ip netns exec podlab-demo timeout 5 busybox wget -qO- "http://$ip:8080/"
"$podlab" --root "$demo_root" delete -f examples/web-pod.yaml
echo
echo "podlab is built at $podlab. Next: $podlab lab list, or examples/web-pod.yaml on your own node"

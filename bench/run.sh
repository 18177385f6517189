#!/usr/bin/env bash
# Benchmarks: how long does it take to start a process in a fresh set of namespaces and a
# BusyBox root filesystem, with podlab and with runc, against a floor made of the plain
# util-linux tools? All commands are measured in ONE hyperfine run, then printed as a
# Markdown table.
#
#   sudo bench/run.sh                    (from anywhere; it works from the repository root)
#
# Environment:
#   RUNS=30              measured runs per command (after 3 warm-up runs)
#   CARGO_TARGET_DIR     where cargo builds podlab (default: target)
#   PODLAB=/path/podlab  use this binary instead of building one (no cargo build)
#   KEEP_JSON=FILE       also copy hyperfine's JSON results to FILE
#
# To add a benchmark: write a function that calls `add NAME COMMAND`, and call it in main.
set -euo pipefail

cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (namespaces and cgroups need it): sudo bench/run.sh"

RUNS=${RUNS:-30}
case "$RUNS" in '' | *[!0-9]*) die "RUNS must be a number, not '$RUNS'" ;; esac

# --- Tools ------------------------------------------------------------------------------
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q "${missing[@]}" >&2
  fi
}

# --- Scratch space, removed on exit -----------------------------------------------------
TMP=$(mktemp -d /tmp/podlab-bench.XXXXXX)
cleanup() {
  # A container left behind by an interrupted runc run would keep its cgroup.
  if [ -d "$TMP/runc" ]; then
    local id
    for id in $(runc --root "$TMP/runc" list -q 2>/dev/null); do
      runc --root "$TMP/runc" delete -f "$id" >/dev/null 2>&1 || true
    done
  fi
  rm -rf --one-file-system -- "$TMP"
}
trap cleanup EXIT
ROOTFS=$TMP/rootfs
BUNDLE=$TMP/bundle

# --- The benchmarks ---------------------------------------------------------------------
# Each benchmark adds one command. The first one added is the floor the others are
# compared with.
NAMES=()
COMMANDS=()
add() {
  NAMES+=("$1")
  COMMANDS+=("$2")
}

# The floor: new pid, mount, uts, ipc and net namespaces and a chroot, with nothing else
# (no cgroup, no pivot_root, no /proc, no supervision). What any runtime needs at least.
bench_floor() {
  add "floor: unshare + chroot" \
    "unshare --fork --pid --mount --uts --ipc --net chroot $ROOTFS /bin/true"
}

# podlab box with every namespace but user, in its own cgroup, with /proc, /dev and /sys
# mounted and pivot_root into the root filesystem.
bench_podlab_box() {
  add "podlab box --all-ns" \
    "$(printf '%q' "$PODLAB") --root $TMP/podlab box --all-ns --rootfs $ROOTFS -- /bin/true"
}

# runc with the default spec of `runc spec`: the same namespaces, a cgroup, the standard
# mounts. A container id must be unique only among the containers that exist at the same
# time; `runc run` deletes its container when the process exits, and hyperfine runs one
# command after the other, so every run can use the same id.
bench_runc() {
  mkdir -p "$BUNDLE" "$TMP/runc"
  (cd "$BUNDLE" && runc spec)
  jq --arg root "$ROOTFS" \
    '.root.path = $root | .process.terminal = false | .process.args = ["/bin/true"]' \
    "$BUNDLE/config.json" >"$BUNDLE/config.json.new"
  mv "$BUNDLE/config.json.new" "$BUNDLE/config.json"
  add "runc run" \
    "runc --root $TMP/runc run -b $BUNDLE podlab-bench"
}

# --- Report -----------------------------------------------------------------------------
# Reads "mean stddev" lines (seconds) in the order of NAMES and prints the table.
print_table() {
  local json=$1 floor runc_row=-1 podlab_row=-1 i
  local -a mean sd
  while read -r m s; do
    mean+=("$m")
    sd+=("$s")
  done < <(jq -r '.results[] | "\(.mean) \(.stddev // 0)"' "$json")
  [ "${#mean[@]}" -eq "${#NAMES[@]}" ] || die "hyperfine reported ${#mean[@]} results for ${#NAMES[@]} commands"
  floor=${mean[0]}
  for i in "${!NAMES[@]}"; do
    case "${NAMES[$i]}" in
      runc*) runc_row=$i ;;
      podlab*) [ "$podlab_row" -ge 0 ] || podlab_row=$i ;;
    esac
  done

  echo
  echo "| command | mean (ms) | ± σ (ms) | × floor | × runc |"
  echo "|---------|----------:|---------:|--------:|-------:|"
  for i in "${!NAMES[@]}"; do
    awk -v name="${NAMES[$i]}" -v m="${mean[$i]}" -v s="${sd[$i]}" -v f="$floor" \
      -v r="$([ "$runc_row" -ge 0 ] && echo "${mean[$runc_row]}" || echo 0)" 'BEGIN {
        xr = (r > 0) ? sprintf("%.2f", m / r) : "-"
        printf "| %s | %.2f | %.2f | %.2f | %s |\n", name, m * 1000, s * 1000, m / f, xr
      }'
  done
  if [ "$runc_row" -ge 0 ] && [ "$podlab_row" -ge 0 ]; then
    awk -v p="${mean[$podlab_row]}" -v r="${mean[$runc_row]}" 'BEGIN {
      printf "\npodlab box takes %.2f × the time of runc run (%.2f ms against %.2f ms).\n", p / r, p * 1000, r * 1000
    }'
  fi
  echo
  echo "Commands:"
  for i in "${!NAMES[@]}"; do
    echo "- ${NAMES[$i]}: \`${COMMANDS[$i]}\`"
  done
}

machine() {
  local cg cpu
  cg=$(stat -fc %T /sys/fs/cgroup)
  case "$cg" in cgroup2fs) cg="cgroup v2" ;; *) cg="cgroup v1" ;; esac
  cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
  echo "Machine: ${cpu:-unknown CPU}, $(nproc) CPU(s), Linux $(uname -r), $cg;" \
    "$(hyperfine --version), $(runc --version | head -1); $RUNS runs after 3 warm-up runs."
}

# --- Main -------------------------------------------------------------------------------
main() {
  ensure_packages hyperfine runc busybox-static jq

  if [ -n "${PODLAB:-}" ]; then
    [ -x "$PODLAB" ] || die "PODLAB=$PODLAB is not an executable"
    say "using $PODLAB (no build)"
  else
    command -v cargo >/dev/null 2>&1 || die "cargo not found: run scripts/install-deps.sh (and put ~/.cargo/bin on PATH)"
    say "building podlab (release)"
    cargo build --release --locked >&2
    PODLAB=${CARGO_TARGET_DIR:-target}/release/podlab
  fi
  PODLAB=$(realpath "$PODLAB")

  say "building a BusyBox root filesystem in $ROOTFS"
  sh images/busybox/build.sh "$ROOTFS" >&2

  bench_floor
  bench_podlab_box
  bench_runc

  # One run of each, with its output shown: a broken command fails here, clearly,
  # instead of deep inside hyperfine.
  local i
  for i in "${!NAMES[@]}"; do
    sh -c "${COMMANDS[$i]}" >&2 || die "'${NAMES[$i]}' failed: ${COMMANDS[$i]}"
  done

  local args=()
  for i in "${!NAMES[@]}"; do
    args+=(--command-name "${NAMES[$i]}" "${COMMANDS[$i]}")
  done
  say "measuring ${#NAMES[@]} commands"
  # --shell=none: hyperfine starts each command directly (no shell to subtract), which
  # keeps the few-millisecond floor accurate. Commands are split into words as a shell
  # would (quotes work), but no variables, pipes or redirections.
  hyperfine --shell=none --warmup 3 --runs "$RUNS" --export-json "$TMP/results.json" "${args[@]}" >&2
  if [ -n "${KEEP_JSON:-}" ]; then
    cp "$TMP/results.json" "$KEEP_JSON"
  fi

  machine
  print_table "$TMP/results.json"
}

main "$@"

#!/usr/bin/env bash
# Benchmarks, in three tables, each measured in ONE hyperfine run and printed as Markdown:
#
# 1. box start-up: how long does it take to start a process in a fresh set of namespaces
#    and a BusyBox root filesystem, with podlab and with runc, against a floor made of the
#    plain util-linux tools?
# 2. image pull + unpack: how long does it take to pull a multi-layer image from a local
#    registry and unpack its layers, with `podlab image pull` and with the pair
#    `skopeo copy` + `umoci unpack`, cold (empty store) and warm (image already there)?
# 3. OCI runtime lifecycle: create + start + wait + delete of /bin/true in a BusyBox bundle
#    with podlab-runtime, runc and crun (the same config.json, from `runc spec`), both as one
#    `run` and as four separate commands, against the `unshare ... chroot` floor.
#
#   sudo bench/run.sh              both tables (from anywhere; it works from the repository root)
#   sudo bench/run.sh box          only the box start-up table
#   sudo bench/run.sh image        only the image pull + unpack table
#   sudo bench/run.sh runtime      only the runtime lifecycle table
#
# Environment:
#   RUNS=30              measured runs per command (after 3 warm-up runs; 1 for images)
#   IMAGE_RUNS=N         measured runs per command of the image table (default: RUNS)
#   CARGO_TARGET_DIR     where cargo builds podlab (default: target)
#   PODLAB=/path/podlab  use this binary instead of building one (no cargo build); the
#                        runtime table uses podlab-runtime from the same directory
#   KEEP_JSON=FILE       also copy hyperfine's JSON results to FILE (the image table's
#                        to FILE-image.json when both tables run)
#
# To add a benchmark: write a function that calls `add NAME COMMAND [PREPARE]`, and call it
# from the function of its table.
set -euo pipefail

cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

usage="usage: bench/run.sh [box|image|runtime|all]   (default: all)"
WHAT=${1:-all}
case "$WHAT" in
  all | box | image | runtime) ;;
  -h | --help) echo "$usage"; exit 0 ;;
  *) die "unknown benchmark '$WHAT'; $usage" ;;
esac
[ "$#" -le 1 ] || die "too many arguments; $usage"

[ "$(id -u)" = 0 ] || die "run as root (namespaces and cgroups need it): sudo bench/run.sh"

RUNS=${RUNS:-30}
case "$RUNS" in '' | *[!0-9]* | 0) die "RUNS must be a positive number, not '$RUNS'" ;; esac
IMAGE_RUNS=${IMAGE_RUNS:-$RUNS}
case "$IMAGE_RUNS" in '' | *[!0-9]* | 0) die "IMAGE_RUNS must be a positive number, not '$IMAGE_RUNS'" ;; esac

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
# Everything the benchmarks make lives under $TMP: root filesystems, runc state, podlab
# stores, the registry's storage, OCI layouts and bundles.
TMP=$(mktemp -d /tmp/podlab-bench.XXXXXX)
REGISTRY_PID=
cleanup() {
  # A container left behind by an interrupted runc run would keep its cgroup.
  if [ -d "$TMP/runc" ]; then
    local id
    for id in $(runc --root "$TMP/runc" list -q 2>/dev/null); do
      runc --root "$TMP/runc" delete -f "$id" >/dev/null 2>&1 || true
    done
  fi
  local rt
  for rt in podlab runc crun; do
    [ -d "$TMP/rt-$rt" ] || continue
    for id in "$TMP/rt-$rt"/*; do
      [ -d "$id" ] || continue
      runtime_cmd "$rt" delete -f "${id##*/}" >/dev/null 2>&1 || true
    done
  done
  if [ -n "$REGISTRY_PID" ]; then
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
  fi
  rm -rf --one-file-system -- "$TMP"
}
trap cleanup EXIT
ROOTFS=$TMP/rootfs
BUNDLE=$TMP/bundle

# --- Measuring --------------------------------------------------------------------------
# Each benchmark adds one command, with an optional PREPARE command that hyperfine runs
# before every run of it (not measured). A table is one hyperfine run over its commands.
NAMES=()
COMMANDS=()
PREPARES=()
add() {
  NAMES+=("$1")
  COMMANDS+=("$2")
  PREPARES+=("${3:-}")
}
new_table() {
  NAMES=()
  COMMANDS=()
  PREPARES=()
}

# measure JSON WARMUP RUNS: run each command once with its output shown (a broken command
# fails here, clearly, instead of deep inside hyperfine), then measure them all.
measure() {
  local json=$1 warmup=$2 runs=$3 i with_prepare=0
  for i in "${!NAMES[@]}"; do
    if [ -n "${PREPARES[$i]}" ]; then
      with_prepare=1
      sh -c "${PREPARES[$i]}" >&2 || die "preparing '${NAMES[$i]}' failed: ${PREPARES[$i]}"
    fi
    sh -c "${COMMANDS[$i]}" >&2 || die "'${NAMES[$i]}' failed: ${COMMANDS[$i]}"
  done

  local args=()
  for i in "${!NAMES[@]}"; do
    args+=(--command-name "${NAMES[$i]}" "${COMMANDS[$i]}")
  done
  # --prepare given once per command applies to the commands in order (hyperfine >= 1.12);
  # a command without one gets `true`.
  if [ "$with_prepare" = 1 ]; then
    for i in "${!NAMES[@]}"; do
      args+=(--prepare "${PREPARES[$i]:-true}")
    done
  fi
  say "measuring ${#NAMES[@]} commands"
  # --shell=none: hyperfine starts each command directly (no shell to subtract), which
  # keeps the few-millisecond floor accurate. Commands are split into words as a shell
  # would (quotes work), but no variables, pipes or redirections: a command that needs
  # them says `sh -c '...'`.
  hyperfine --shell=none --warmup "$warmup" --runs "$runs" --export-json "$json" "${args[@]}" >&2
}

# Reads "mean stddev" lines (seconds) of a hyperfine JSON file in the order of NAMES into
# the arrays MEAN and SD.
read_results() {
  local json=$1 m s
  MEAN=()
  SD=()
  while read -r m s; do
    MEAN+=("$m")
    SD+=("$s")
  done < <(jq -r '.results[] | "\(.mean) \(.stddev // 0)"' "$json")
  [ "${#MEAN[@]}" -eq "${#NAMES[@]}" ] || die "hyperfine reported ${#MEAN[@]} results for ${#NAMES[@]} commands"
}

print_commands() {
  local i
  echo
  echo "Commands:"
  for i in "${!NAMES[@]}"; do
    if [ -n "${PREPARES[$i]}" ]; then
      echo "- ${NAMES[$i]}: \`${COMMANDS[$i]}\` (before each run: \`${PREPARES[$i]}\`)"
    else
      echo "- ${NAMES[$i]}: \`${COMMANDS[$i]}\`"
    fi
  done
}

keep_json() {
  local json=$1 suffix=$2
  [ -n "${KEEP_JSON:-}" ] || return 0
  if [ "$WHAT" = all ] && [ -n "$suffix" ]; then
    cp "$json" "${KEEP_JSON%.json}-$suffix.json"
  else
    cp "$json" "$KEEP_JSON"
  fi
}

machine() {
  local cg cpu
  cg=$(stat -fc %T /sys/fs/cgroup)
  case "$cg" in cgroup2fs) cg="cgroup v2" ;; *) cg="cgroup v1" ;; esac
  cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
  echo "Machine: ${cpu:-unknown CPU}, $(nproc) CPU(s), Linux $(uname -r), $cg; $(hyperfine --version), $*."
}

# === Table 1: box start-up ==============================================================
# The first command added is the floor the others are compared with.

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

print_box_table() {
  local floor runc_row=-1 podlab_row=-1 i
  floor=${MEAN[0]}
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
    awk -v name="${NAMES[$i]}" -v m="${MEAN[$i]}" -v s="${SD[$i]}" -v f="$floor" \
      -v r="$([ "$runc_row" -ge 0 ] && echo "${MEAN[$runc_row]}" || echo 0)" 'BEGIN {
        xr = (r > 0) ? sprintf("%.2f", m / r) : "-"
        printf "| %s | %.2f | %.2f | %.2f | %s |\n", name, m * 1000, s * 1000, m / f, xr
      }'
  done
  if [ "$runc_row" -ge 0 ] && [ "$podlab_row" -ge 0 ]; then
    awk -v p="${MEAN[$podlab_row]}" -v r="${MEAN[$runc_row]}" 'BEGIN {
      printf "\npodlab box takes %.2f × the time of runc run (%.2f ms against %.2f ms).\n", p / r, p * 1000, r * 1000
    }'
  fi
  print_commands
}

table_box() {
  new_table
  say "building a BusyBox root filesystem in $ROOTFS"
  sh images/busybox/build.sh "$ROOTFS" >&2

  bench_floor
  bench_podlab_box
  bench_runc

  measure "$TMP/box.json" 3 "$RUNS"
  keep_json "$TMP/box.json" ""
  read_results "$TMP/box.json"

  echo "## Box start-up"
  echo
  machine "$(runc --version | head -1); $RUNS runs after 3 warm-up runs"
  print_box_table
}

# === Table 2: image pull + unpack =======================================================
IMG=$TMP/image          # everything of this table
REGISTRY_PORT=
IMAGE_REF=              # 127.0.0.1:PORT/bench/multi:latest
IMAGE_INFO=             # "N layers, X MiB compressed, ..." for the report

# The Debian docker-registry (distribution 2.8) on 127.0.0.1 only, with its own
# configuration and storage under $IMG/registry. Tries ports 5100 to 5199: a port that
# already answers is skipped, and a registry that exits at once (port taken in between)
# makes it try the next one.
start_registry() {
  local dir=$IMG/registry port i rc
  mkdir -p "$dir/storage"
  for port in $(seq 5100 5199); do
    rc=0
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" || rc=$?
    [ "$rc" = 7 ] || continue # curl's 7: connection refused; anything else: port in use
    cat >"$dir/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: podlab-bench-only
CONFIG
    docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
    REGISTRY_PID=$!
    for i in $(seq 50); do
      kill -0 "$REGISTRY_PID" 2>/dev/null || break
      if curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$port/v2/"; then
        REGISTRY_PORT=$port
        say "registry (pid $REGISTRY_PID) listening on 127.0.0.1:$port, storage in $dir/storage"
        return 0
      fi
      sleep 0.1
    done
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
    REGISTRY_PID=
  done
  cat "$dir/log" >&2 || true
  die "could not start docker-registry on any port 5100-5199 of 127.0.0.1 (its last log is above)"
}

# fill DIR PREFIX BYTES PIECE: BYTES of random data (incompressible, so gzip does real
# work) cut into files of PIECE bytes each, named DIR/PREFIXaaaa, DIR/PREFIXaaab, ...
fill() {
  mkdir -p "$1"
  head -c "$3" /dev/urandom | split -a 4 -b "$4" - "$1/$2"
}

# put_blob LAYOUT FILE: move FILE into the layout's blobs under its digest; prints the
# digest and the size.
put_blob() {
  local hex size
  hex=$(sha256sum <"$2" | cut -d' ' -f1)
  size=$(stat -c %s "$2")
  mv -- "$2" "$1/blobs/sha256/$hex"
  echo "sha256:$hex $size"
}

# append_layer LAYOUT DIR COMMENT: add DIR/srv (GNU tar, owned by root, gzip) as a new
# top layer of the image of LAYOUT's index.json: a new layer blob, config (diff_ids and
# history) and manifest, and the index pointing at it. (Not `umoci insert`: umoci 0.4.7
# writes layers without the tar end-of-archive and the padding of the last file, which
# GNU tar, Python's tarfile and podlab refuse as truncated.)
append_layer() {
  local layout=$1 src=$2 comment=$3 blobs=$1/blobs/sha256 diff_id layer cfg man
  tar -C "$src" --numeric-owner --owner=0 --group=0 -cf "$IMG/layer.tar" srv
  diff_id=sha256:$(sha256sum <"$IMG/layer.tar" | cut -d' ' -f1)
  gzip -n -6 "$IMG/layer.tar"
  read -r -a layer < <(put_blob "$layout" "$IMG/layer.tar.gz")

  man=$(jq -r '.manifests[0].digest' "$layout/index.json")
  man=$blobs/${man#sha256:}
  cfg=$(jq -r '.config.digest' "$man")
  jq -c --arg d "$diff_id" --arg c "$comment" \
    '.rootfs.diff_ids += [$d] | .history += [{created_by: $c}]' "$blobs/${cfg#sha256:}" >"$IMG/config.json"
  read -r -a cfg < <(put_blob "$layout" "$IMG/config.json")
  jq -c --arg c "${cfg[0]}" --argjson cs "${cfg[1]}" --arg l "${layer[0]}" --argjson ls "${layer[1]}" \
    '.config.digest = $c | .config.size = $cs
     | .layers += [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $l, size: $ls}]' \
    "$man" >"$IMG/manifest.json"
  read -r -a man < <(put_blob "$layout" "$IMG/manifest.json")
  jq --arg m "${man[0]}" --argjson ms "${man[1]}" '.manifests[0].digest = $m | .manifests[0].size = $ms' \
    "$layout/index.json" >"$IMG/index.json"
  mv "$IMG/index.json" "$layout/index.json"
}

# The benchmark image, 6 layers, built as an OCI layout (`podlab image build busybox` and
# `podlab image save`, then a layer per directory of generated files) and pushed to the
# registry with skopeo:
#   1. BusyBox                                                        ~1 MB, ~400 links
#   2. many small random files: 10 MiB in files of 512 B to 16 KiB    ~8500 files
#   3. a few big random files: 3 × 8 MiB + 4 MiB                      28 MiB
#   4. text (compressible): base64 of 6 MiB of random data in ~64 KiB files, a `seq` listing
#   5. a whiteout: one directory of layer 2 deleted
#   6. a change: one big file of layer 3 replaced (8 MiB)
make_image() {
  local layout=$IMG/layout src=$IMG/src d size
  say "building the benchmark image (BusyBox + 5 layers of generated files)"
  "$PODLAB" --root "$IMG/build" image build busybox >&2
  "$PODLAB" --root "$IMG/build" image save busybox:latest "$layout" >&2

  for size in 512 1024 4096 16384; do
    for d in 0 1 2 3 4; do
      fill "$src/small/srv/small/s$size-$d" f 524288 "$size"
    done
  done
  append_layer "$layout" "$src/small" "bench: many small files"

  fill "$src/big/srv/big" blob 25165824 8388608
  head -c 4194304 /dev/urandom >"$src/big/srv/big/odd"
  append_layer "$layout" "$src/big" "bench: a few big files"

  mkdir -p "$src/text/srv/text"
  head -c 6291456 /dev/urandom | base64 | split -a 3 -l 850 - "$src/text/srv/text/b64-"
  seq 1 1000000 >"$src/text/srv/text/numbers"
  append_layer "$layout" "$src/text" "bench: text"

  mkdir -p "$src/whiteout/srv/small"
  : >"$src/whiteout/srv/small/.wh.s512-4"
  append_layer "$layout" "$src/whiteout" "bench: delete a directory"

  mkdir -p "$src/change/srv/big"
  head -c 8388608 /dev/urandom >"$src/change/srv/big/blobaaaa"
  append_layer "$layout" "$src/change" "bench: replace a big file"
  rm -rf "$src"

  IMAGE_REF=127.0.0.1:$REGISTRY_PORT/bench/multi:latest
  say "pushing it to $IMAGE_REF"
  skopeo copy -q --dest-tls-verify=false "oci:$layout:latest" "docker://$IMAGE_REF" >&2

  # What was pushed, for the report: layers and their compressed size, and the unpacked
  # files as umoci sees them.
  local manifest
  manifest=$(skopeo inspect --raw --tls-verify=false "docker://$IMAGE_REF")
  IMAGE_INFO=$(jq -r '"\(.layers | length) layers, \((([.layers[].size] | add) + .config.size) / 1048576 * 10 | round / 10) MiB compressed"' <<<"$manifest")
  umoci unpack --image "$layout:latest" "$IMG/probe" >/dev/null 2>&1 || die "umoci cannot unpack the benchmark image"
  IMAGE_INFO="$IMAGE_INFO, $(du -sm "$IMG/probe/rootfs" | cut -f1) MiB in $(find "$IMG/probe/rootfs" | wc -l) files and directories unpacked"
  rm -rf "$IMG/probe" "$IMG/build" "$layout"
}

# podlab, cold: an empty store every run (a fresh --root), so the pull downloads the
# config and all layers in parallel, verifies their digests and unpacks every layer.
bench_podlab_pull_cold() {
  local r=$IMG/podlab-cold
  add "podlab pull, cold" \
    "$(printf '%q' "$PODLAB") --root $r image pull $IMAGE_REF" \
    "rm -rf --one-file-system $r"
}

# skopeo + umoci, cold: no OCI layout and no bundle, so skopeo downloads every blob (and
# checks its digest) and umoci unpacks all layers into one root filesystem.
bench_pair_cold() {
  local oci=$IMG/oci-cold bundle=$IMG/bundle-cold
  add "skopeo copy + umoci unpack, cold" \
    "sh -c 'skopeo copy -q --src-tls-verify=false docker://$IMAGE_REF oci:$oci:t && umoci unpack --image $oci:t $bundle'" \
    "rm -rf --one-file-system $oci $bundle"
}

# podlab, warm: the image is in the store, so the pull fetches the manifest, finds every
# blob and unpacked layer already there and stops.
bench_podlab_pull_warm() {
  add "podlab pull, warm" \
    "$(printf '%q' "$PODLAB") --root $IMG/podlab-warm image pull $IMAGE_REF"
}

# skopeo + umoci, warm: skopeo copies into the OCI layout that already holds every blob
# (it fetches the manifest and skips the blobs it has), but umoci has no cache of unpacked
# layers: it unpacks every layer again into a fresh bundle each run.
bench_pair_warm() {
  local oci=$IMG/oci-warm bundle=$IMG/bundle-warm
  add "skopeo copy + umoci unpack, warm" \
    "sh -c 'skopeo copy -q --src-tls-verify=false docker://$IMAGE_REF oci:$oci:t && umoci unpack --image $oci:t $bundle'" \
    "rm -rf --one-file-system $bundle"
}

# Rows in the order added: podlab cold, pair cold, podlab warm, pair warm. Each podlab row
# is compared with the pair at the same temperature.
print_image_table() {
  local i ref
  echo
  echo "| command | mean (ms) | ± σ (ms) | × skopeo+umoci |"
  echo "|---------|----------:|---------:|---------------:|"
  for i in "${!NAMES[@]}"; do
    ref=$((i - i % 2 + 1)) # the pair row of the same temperature
    awk -v name="${NAMES[$i]}" -v m="${MEAN[$i]}" -v s="${SD[$i]}" -v r="${MEAN[$ref]}" 'BEGIN {
      printf "| %s | %.1f | %.1f | " (m / r < 0.1 ? "%.4f" : "%.2f") " |\n", name, m * 1000, s * 1000, m / r
    }'
  done
  echo
  for i in 0 2; do
    awk -v which="$([ "$i" = 0 ] && echo cold || echo warm)" -v p="${MEAN[$i]}" -v r="${MEAN[$((i + 1))]}" 'BEGIN {
      printf "%s: podlab image pull takes " (p / r < 0.1 ? "%.4f" : "%.2f") " × the time of skopeo copy + umoci unpack (%.1f ms against %.1f ms): goal ≤ 1.0× %s.\n",
        which, p / r, p * 1000, r * 1000, (p <= r) ? "met" : "NOT met"
    }'
    echo
  done
  echo "Image: $IMAGE_REF, $IMAGE_INFO."
  print_commands
}

table_image() {
  new_table
  mkdir -p "$IMG"
  start_registry
  make_image

  bench_podlab_pull_cold
  bench_pair_cold
  bench_podlab_pull_warm
  bench_pair_warm

  # One warm-up run: a cold run takes seconds, and the measured runs of the warm rows
  # must find the image there (the check run of measure() has put it there already).
  measure "$TMP/image.json" 1 "$IMAGE_RUNS"
  keep_json "$TMP/image.json" image
  read_results "$TMP/image.json"

  echo "## Image pull + unpack"
  echo
  machine "$(skopeo --version), $(umoci --version), docker-registry $(dpkg-query -W -f='${Version}' docker-registry); $IMAGE_RUNS runs after 1 warm-up run"
  print_image_table
}

# === Table 3: OCI runtime lifecycle =====================================================
# crun 1.8 refuses to run on a hybrid cgroup layout (v1 controllers + /sys/fs/cgroup/unified):
# "cgroups in hybrid mode not supported". The whole table is therefore measured inside one
# private mount namespace where /sys/fs/cgroup/unified is unmounted — for every runtime, so
# they all run under the same conditions (the host's mount table is not touched).

# runtime_bin NAME: the binary of runtime NAME (podlab, runc, crun).
runtime_bin() {
  case "$1" in
    podlab) echo "$PODLAB_RUNTIME" ;;
    *) command -v "$1" ;;
  esac
}

# runtime_cmd NAME ARGS...: the runtime called NAME with its own state root under $TMP.
runtime_cmd() {
  local name=$1
  shift
  "$(runtime_bin "$name")" --root "$TMP/rt-$name" "$@"
}

# The split lifecycle as one script: create, start, wait for the init to exit (it is not
# our child: watch /proc/PID until it is gone or a zombie), delete.
write_lifecycle_script() {
  cat >"$TMP/lifecycle.sh" <<'SCRIPT'
#!/bin/sh
# lifecycle.sh RUNTIME-BINARY ROOT BUNDLE ID
set -e
rt=$1 root=$2 bundle=$3 id=$4
"$rt" --root "$root" create --bundle "$bundle" --pid-file "$root.pid" "$id" </dev/null
read -r pid <"$root.pid" || true
"$rt" --root "$root" start "$id"
while [ -e "/proc/$pid" ]; do
  read -r _ _ state _ <"/proc/$pid/stat" 2>/dev/null || break
  [ "$state" = Z ] && break
done
"$rt" --root "$root" delete "$id"
SCRIPT
  chmod +x "$TMP/lifecycle.sh"
}

bench_runtimes() {
  local name
  mkdir -p "$BUNDLE" "$TMP/rt-podlab" "$TMP/rt-runc" "$TMP/rt-crun"
  (cd "$BUNDLE" && runc spec)
  jq --arg root "$ROOTFS" \
    '.root.path = $root | .process.terminal = false | .process.args = ["/bin/true"]' \
    "$BUNDLE/config.json" >"$BUNDLE/config.json.new"
  mv "$BUNDLE/config.json.new" "$BUNDLE/config.json"
  write_lifecycle_script
  add "floor: unshare + chroot" \
    "unshare --fork --pid --mount --uts --ipc --net chroot $ROOTFS /bin/true"
  for name in podlab runc crun; do
    add "$name run" "$(runtime_bin "$name") --root $TMP/rt-$name run -b $BUNDLE bench-$name"
  done
  for name in podlab runc crun; do
    add "$name create+start+wait+delete" \
      "$TMP/lifecycle.sh $(runtime_bin "$name") $TMP/rt-$name $BUNDLE bench-$name-split"
  done
}

# Rows: floor, podlab/runc/crun run, podlab/runc/crun split.
print_runtime_table() {
  local i ref
  echo
  echo "| command | mean (ms) | ± σ (ms) | × floor | × runc | × crun |"
  echo "|---------|----------:|---------:|--------:|-------:|-------:|"
  for i in "${!NAMES[@]}"; do
    ref=$(( i == 0 ? 1 : (i - 1) - (i - 1) % 3 + 1 )) # the podlab row of the same kind
    awk -v name="${NAMES[$i]}" -v m="${MEAN[$i]}" -v s="${SD[$i]}" -v f="${MEAN[0]}" \
      -v r="${MEAN[$((ref + 1))]}" -v c="${MEAN[$((ref + 2))]}" -v first="$i" 'BEGIN {
        if (first == 0) { printf "| %s | %.2f | %.2f | 1.00 | - | - |\n", name, m * 1000, s * 1000; exit }
        printf "| %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", name, m * 1000, s * 1000, m / f, m / r, m / c
      }'
  done
  echo
  for i in 1 4; do
    awk -v kind="$([ "$i" = 1 ] && echo "run" || echo "create+start+wait+delete")" \
      -v p="${MEAN[$i]}" -v c="${MEAN[$((i + 2))]}" -v f="${MEAN[0]}" 'BEGIN {
      printf "%s: podlab %.2f × crun (goal ≤ 1.0: %s), %.2f × the floor (goal ≤ 2.0: %s).\n",
        kind, p / c, (p <= c) ? "met" : "NOT met", p / f, (p <= 2 * f) ? "met" : "NOT met"
    }'
  done
  print_commands
}

table_runtime() {
  if [ -z "${PODLAB_BENCH_PRIVATE:-}" ] && mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then
    say "hybrid cgroups: measuring in a private mount namespace without /sys/fs/cgroup/unified (for crun)"
    # shellcheck disable=SC2016 # $0 is expanded by the inner shell
    PODLAB_BENCH_PRIVATE=1 PODLAB="$PODLAB" unshare --mount --propagation private \
      sh -c 'umount /sys/fs/cgroup/unified && exec "$0" runtime' "$(realpath "$0")"
    return
  fi
  new_table
  say "building a BusyBox root filesystem in $ROOTFS"
  sh images/busybox/build.sh "$ROOTFS" >&2
  bench_runtimes
  measure "$TMP/runtime.json" 3 "$RUNS"
  keep_json "$TMP/runtime.json" runtime
  read_results "$TMP/runtime.json"

  echo "## OCI runtime lifecycle"
  echo
  machine "$(runc --version | head -1), $(crun --version | head -1); $RUNS runs after 3 warm-up runs${PODLAB_BENCH_PRIVATE:+; /sys/fs/cgroup/unified unmounted in a private mount namespace}"
  print_runtime_table
}

# --- Main -------------------------------------------------------------------------------
main() {
  local packages=(hyperfine jq)
  case "$WHAT" in
    all) packages+=(runc crun busybox-static docker-registry skopeo umoci curl) ;;
    box) packages+=(runc busybox-static) ;;
    image) packages+=(busybox-static docker-registry skopeo umoci curl) ;;
    runtime) packages+=(runc crun busybox-static) ;;
  esac
  ensure_packages "${packages[@]}"

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
  PODLAB_RUNTIME=$(dirname "$PODLAB")/podlab-runtime
  [ -x "$PODLAB_RUNTIME" ] || die "$PODLAB_RUNTIME not found next to $PODLAB"

  case "$WHAT" in
    all)
      table_box
      echo
      table_image
      echo
      table_runtime
      ;;
    box) table_box ;;
    image) table_image ;;
    runtime) table_runtime ;;
  esac
}

main "$@"

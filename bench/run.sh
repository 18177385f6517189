#!/usr/bin/env bash
# Benchmarks, in four tables, each measured in ONE hyperfine run and printed as Markdown:
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
# 4. pods: start a 2-container pod (BusyBox httpd + a sidecar writing its page into a
#    shared emptyDir) until its page answers, and delete it, with podlab (`run -f --wait`,
#    `delete -f`) and with podman (`kube play`, `kube down`), from the same YAML.
# 5. service proxy (bench/proxy.sh, not hyperfine): full and partial syncs of 1k, 5k and 10k
#    Services x 5 endpoints into iptables, nft and legacy, against plain iptables-restore.
# 6. API server (bench/api.sh, not hyperfine): create, get, update, list and watch fan-out
#    latency (p50, p99) and throughput from 50 clients, on the SQLite store and on etcd.
#
#   sudo bench/run.sh              all tables (from anywhere; it works from the repository root)
#   sudo bench/run.sh box          only the box start-up table
#   sudo bench/run.sh image        only the image pull + unpack table
#   sudo bench/run.sh runtime      only the runtime lifecycle table
#   sudo bench/run.sh pods         only the pods table
#   sudo bench/run.sh proxy        only the service proxy table (bench/proxy.sh)
#   sudo bench/run.sh api          only the API server table (bench/api.sh)
#
# Environment:
#   RUNS=30              measured runs per command (after 3 warm-up runs; 1 for images and pods)
#   IMAGE_RUNS=N         measured runs per command of the image table (default: RUNS)
#   CARGO_TARGET_DIR     where cargo builds podlab (default: target)
#   PODLAB=/path/podlab  use this binary instead of building one (no cargo build); the
#                        runtime table uses podlab-runtime from the same directory
#   KEEP_JSON=FILE       also copy hyperfine's JSON results to FILE (the image table's
#                        to FILE-image.json when all tables run, and so on)
#
# To add a benchmark: write a function that calls `add NAME COMMAND [PREPARE]`, and call it
# from the function of its table.
set -euo pipefail

cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

usage="usage: bench/run.sh [box|image|runtime|pods|proxy|api|all]   (default: all)"
WHAT=${1:-all}
case "$WHAT" in
  all | box | image | runtime | pods | proxy | api) ;;
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
PODS_NS= # the pods table's network namespace, once made
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
  [ -z "$PODS_NS" ] || pods_cleanup
  rm -rf --one-file-system -- "$TMP"
}
trap cleanup EXIT
ROOTFS=$TMP/rootfs
BUNDLE=$TMP/bundle

# --- Measuring --------------------------------------------------------------------------
# Each benchmark adds one command, with an optional PREPARE command that hyperfine runs
# before every run of it (not measured). A table is one hyperfine run over its commands.
# CLEANUP, if set, is a command hyperfine runs after all the runs of each command.
NAMES=()
COMMANDS=()
PREPARES=()
CLEANUP=
add() {
  NAMES+=("$1")
  COMMANDS+=("$2")
  PREPARES+=("${3:-}")
}
new_table() {
  NAMES=()
  COMMANDS=()
  PREPARES=()
  CLEANUP=
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
  [ -z "$CLEANUP" ] || args+=(--cleanup "$CLEANUP")
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

# === Table 4: pods ======================================================================
# One 2-container pod (bench/pods/web.yaml: BusyBox httpd + a sidecar writing the page into
# a shared emptyDir), started and deleted by podlab and by podman from the same YAML, with
# the image already in each one's store. "Started" means both containers run AND the page
# answers over the pod network. Everything happens in a network namespace made for the
# bench (both node networks, bridges, iptables rules and pod traffic stay in there).
PODS=$TMP/pods
PODS_ROOT=$PODS/podlab          # podlab's --root: image store, node agent, pods
PODMAN_STATE=$PODS/podman-state # podman's graph root, run root, configuration, CNI state
PODS_YAML=$PWD/bench/pods/web.yaml
POD_NAME=bench-web
POD_PAGE="podlab-bench"         # what the sidecar writes into index.html
PODMAN_NET="podlab-bench"       # podman's CNI network, in the bench netns only
PODMAN_SUBNET=10.89.0.0/24
PODMAN_POD_IP=10.89.0.2         # `podman kube play --ip`: the page check needs no lookup
PODS_MADE=                      # host paths the table created (removed at the end if empty)

# The podman wrapper: podman as root with all of its state under $PODMAN_STATE (the same
# isolation as a stock podman would have with its own configuration files), inside the
# bench netns (nsenter --net: only the network namespace changes, so podman's mounts are
# the host's, as usual). The CNI plugins run as podman's children, so the bridge, the
# veth host ends and the iptables rules of the firewall and portmap plugins are made there.
write_podman() {
  local s=$PODMAN_STATE
  mkdir -p "$s/etc" "$s/root" "$s/runroot" "$s/tmp" "$s/home/.config/containers" "$s/xdg/run" \
    "$s/networks" "$s/imgtmp" "$s/hooks" "$s/cni-ipam" "$s/hostcache" "$s/vartmp"
  chmod 0700 "$s/xdg/run"
  cat >"$s/etc/containers.conf" <<CONF
[containers]
log_driver = "k8s-file"
# podman (root) asks the runtime for nofile/nproc 1048576; without CAP_SYS_RESOURCE the
# runtime cannot raise a hard limit above its own ("error setting rlimit type 7").
default_ulimits = ["nofile=$(pods_limit 'Max open files' 1048576):$(pods_limit 'Max open files' 1048576)", "nproc=$(pods_limit 'Max processes' 32768):$(pods_limit 'Max processes' 32768)"]

[network]
network_backend = "cni"
network_config_dir = "$s/networks"
cni_plugin_dirs = ["/usr/lib/cni"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$s/tmp/events.log"
lock_type = "file"
tmp_dir = "$s/tmp"
static_dir = "$s/root/libpod"
volume_path = "$s/root/volumes"
hooks_dir = ["$s/hooks"]
image_copy_tmp_dir = "$s/imgtmp"
runtime = "runc"
[engine.runtimes]
runc = ["$(command -v runc)"]
CONF
  cat >"$s/etc/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$s/root"
runroot = "$s/runroot"
[storage.options.overlay]
mountopt = "nodev"
CONF
  printf 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n' >"$s/etc/registries.conf"
  # c/image reads $HOME/.config/containers/policy.json first: accept the local transports only.
  echo '{"default":[{"type":"reject"}],"transports":{"oci-archive":{"":[{"type":"insecureAcceptAnything"}]},"containers-storage":{"":[{"type":"insecureAcceptAnything"}]}}}' \
    >"$s/home/.config/containers/policy.json"
  echo '{"auths":{}}' >"$s/etc/auth.json"
  # The bridge network of `podman network create --subnet`, with host-local's IPAM state
  # in $s/cni-ipam instead of /var/lib/cni/networks.
  jq -n --arg net "$PODMAN_NET" --arg subnet "$PODMAN_SUBNET" --arg gw "${PODMAN_SUBNET%.0/24}.1" --arg ipam "$s/cni-ipam" '{
    cniVersion: "0.4.0", name: $net,
    plugins: [
      {type: "bridge", bridge: "cni-podman1", isGateway: true, ipMasq: true, hairpinMode: true,
       ipam: {type: "host-local", dataDir: $ipam, routes: [{dst: "0.0.0.0/0"}],
              ranges: [[{subnet: $subnet, gateway: $gw}]]},
       capabilities: {ips: true}},
      {type: "portmap", capabilities: {portMappings: true}},
      {type: "firewall", backend: ""},
      {type: "tuning"}]}' >"$s/networks/$PODMAN_NET.conflist"

  cat >"$PODS/podman" <<SCRIPT
#!/bin/sh
# podman with its own configuration and state in $s, in the netns $PODS_NS.
export CONTAINERS_CONF=$s/etc/containers.conf CONTAINERS_STORAGE_CONF=$s/etc/storage.conf \\
  CONTAINERS_REGISTRIES_CONF=$s/etc/registries.conf REGISTRY_AUTH_FILE=$s/etc/auth.json \\
  HOME=$s/home XDG_CONFIG_HOME=$s/home/.config XDG_DATA_HOME=$s/home/.local/share \\
  XDG_RUNTIME_DIR=$s/xdg/run TMPDIR=$s/imgtmp
unset DBUS_SESSION_BUS_ADDRESS NOTIFY_SOCKET CONTAINER_HOST CONTAINER_CONNECTION
exec nsenter --net=/run/netns/$PODS_NS podman --root $s/root --runroot $s/runroot \\
  --tmpdir $s/tmp --storage-driver overlay --cgroup-manager cgroupfs --events-backend file \\
  --network-config-dir $s/networks --runtime runc --log-level error "\$@"
SCRIPT
  # podman load and the build of its pause image write a blob cache under
  # /var/lib/containers and unpack archives in /var/tmp whatever --root says: those run in
  # a private mount namespace with both bind-mounted from $s (or /var/lib on a tmpfs when
  # /var/lib/containers does not exist).
  cat >"$PODS/podman-image" <<SCRIPT
#!/bin/sh
exec unshare --mount --propagation private $PODS/podman-image-ns "\$@"
SCRIPT
  cat >"$PODS/podman-image-ns" <<SCRIPT
#!/bin/sh
set -e
if [ -d /var/lib/containers ]; then
  mount --bind $s/hostcache /var/lib/containers
else
  mount -t tmpfs -o mode=0755,size=64m podlab-bench /var/lib
fi
mount --bind $s/vartmp /var/tmp
exec $PODS/podman "\$@"
SCRIPT
  chmod +x "$PODS/podman" "$PODS/podman-image" "$PODS/podman-image-ns"
}

# pods_limit NAME DEFAULT: the hard limit NAME of /proc/self/limits, DEFAULT if unlimited,
# and at most 32768 for processes (podman itself sets RLIMIT_NPROC to 32768).
pods_limit() {
  local v
  v=$(awk -v n="$1" 'index($0, n) == 1 { print $(NF - 1) }' /proc/self/limits)
  [ "$v" != unlimited ] || v=$2
  [ "$1" != "Max processes" ] || [ "$v" -le 32768 ] || v=32768
  echo "$v"
}

# The scripts hyperfine runs: starting (until the page answers), and bringing the machine
# into a state (no pod, the podlab pod running, or the podman pod running) before a run.
write_pod_scripts() {
  local podlab
  podlab="$(printf '%q' "$PODLAB") --root $PODS_ROOT"
  # page IP: poll http://IP:8080/ with curl from the bench netns (50 ms apart, 10 s at most)
  # until it serves the sidecar's page. (Not busybox wget: Debian's static busybox crashes
  # in wget on this glibc.)
  cat >"$PODS/page" <<SCRIPT
#!/bin/sh
# Only from inside the bench netns: anywhere else, a pod IP would go to the default route.
[ "\$(stat -L -c %i /proc/self/ns/net)" = "\$(stat -L -c %i /run/netns/$PODS_NS)" ] ||
  { echo "bench: the page check must run in the netns $PODS_NS" >&2; exit 1; }
i=0
until [ "\$(curl -fsS --max-time 1 "http://\$1:8080/" 2>/dev/null)" = $POD_PAGE ]; do
  i=\$((i + 1))
  [ \$i -lt 200 ] || { echo "bench: http://\$1:8080/ did not serve the page within 10 s" >&2; exit 1; }
  sleep 0.05
done
SCRIPT
  # podlab: `run --wait` returns when both containers run and are ready and prints the
  # pod's IP ("pod/NAME is Running (2/2 ready, IP 10.244.0.5)").
  cat >"$PODS/podlab-start" <<SCRIPT
#!/bin/sh
set -e
out=\$($podlab run -f $PODS_YAML --wait --timeout 60s)
ip=\${out##*, IP }
ip=\${ip%%)*}
exec $PODS/page "\$ip"
SCRIPT
  # podman: `kube play` returns when the pod's containers are started. It prints the pod's
  # ID, kept for the cleanup: podman leaves the pod's cgroup in some hierarchies.
  cat >"$PODS/podman-start" <<SCRIPT
#!/bin/sh
set -e
out=\$($PODS/podman kube play --network $PODMAN_NET --ip $PODMAN_POD_IP $PODS_YAML)
echo "\$out" | sed -n '/^Pod:/ { n; p; }' >>$PODS/pod-ids
exec $PODS/page $PODMAN_POD_IP
SCRIPT
  cat >"$PODS/state" <<SCRIPT
#!/bin/sh
# state none|podlab|podman: make sure only that pod exists (none: neither).
set -e
podlab_has() { [ -e $PODS_ROOT/lib/manifests/pod_default_$POD_NAME.yaml ]; }
podman_has() { $PODS/podman pod exists $POD_NAME; }
if [ "\$1" != podlab ] && podlab_has; then $podlab delete -f $PODS_YAML >/dev/null; fi
if [ "\$1" != podman ] && podman_has; then $PODS/podman kube down $PODS_YAML >/dev/null; fi
case "\$1" in
  podlab) podlab_has || nsenter --net=/run/netns/$PODS_NS $PODS/podlab-start >/dev/null ;;
  podman) podman_has || nsenter --net=/run/netns/$PODS_NS $PODS/podman-start >/dev/null ;;
esac
SCRIPT
  chmod +x "$PODS/page" "$PODS/podlab-start" "$PODS/podman-start" "$PODS/state"
}

# Once, before the runs: the bench netns, podlab's node agent in it and its image, podman's
# configuration, its network and its images (busybox from podlab's store, and its pause
# image, which podman builds locally from catatonit).
pods_setup() {
  local ns=podlab-bench-$$ layout=$PODS/layout p
  mkdir -p "$PODS"
  # podman's CNI cache (/var/lib/cni/results), runc's default state directory and
  # podman's parent cgroups are host paths podman makes whatever its configuration says.
  for p in /var/lib/cni /run/runc /sys/fs/cgroup/libpod_parent /sys/fs/cgroup/*/; do
    [ "${p%/}" = "$p" ] || p=${p}libpod_parent # one per cgroup v1 hierarchy
    [ -e "$p" ] || PODS_MADE="$PODS_MADE $p"
  done
  say "making the network namespace $ns"
  ip netns add "$ns"
  PODS_NS=$ns
  ip -n "$ns" link set lo up

  say "podlab: image build busybox, node agent in $ns (--root $PODS_ROOT)"
  "$PODLAB" --root "$PODS_ROOT" image build busybox >&2
  "$PODLAB" --root "$PODS_ROOT" node --netns "$ns" --detach >&2

  say "podman: configuration in $PODMAN_STATE, busybox loaded from podlab image save"
  write_podman
  "$PODLAB" --root "$PODS_ROOT" image save docker.io/library/busybox:latest "$layout" >&2
  # podlab names the layout's manifest by its tag; podman names a loaded image after the
  # ref.name, so give it the full name, and make an oci-archive of the layout.
  jq '.manifests[0].annotations["org.opencontainers.image.ref.name"] = "docker.io/library/busybox:latest"' \
    "$layout/index.json" >"$PODS/index.json"
  mv "$PODS/index.json" "$layout/index.json"
  tar -C "$layout" -cf "$PODS/busybox.tar" .
  "$PODS/podman-image" load -i "$PODS/busybox.tar" >&2
  "$PODS/podman-image" pod create --name bench-pause >/dev/null
  "$PODS/podman" pod rm bench-pause >/dev/null
  rm -rf "$layout" "$PODS/busybox.tar"
  write_pod_scripts
}

# At exit (from cleanup): delete both pods, stop and reset podlab, reset podman, remove the
# netns and the host directories the table made (when empty). Every step is tried.
pods_cleanup() {
  local p c
  if [ -x "$PODS/state" ]; then "$PODS/state" none >/dev/null 2>&1 || true; fi
  if [ -x "$PODS/podman" ]; then
    "$PODS/podman" pod rm -a -f -t 0 >/dev/null 2>&1 || true
    "$PODS/podman" system reset --force >/dev/null 2>&1 || true
  fi
  "$PODLAB" --root "$PODS_ROOT" node stop >/dev/null 2>&1 || true
  "$PODLAB" --root "$PODS_ROOT" reset >/dev/null 2>&1 || true
  awk -v p="$PODS/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  ip netns delete "$PODS_NS" 2>/dev/null || true
  PODS_NS=
  # The pods' cgroups podman leaves (seen in the systemd and unified hierarchies), by ID.
  if [ -s "$PODS/pod-ids" ]; then
    while read -r c; do
      case "$c" in '' | *[!0-9a-f]*) continue ;; esac
      for p in /sys/fs/cgroup/libpod_parent/"$c" /sys/fs/cgroup/*/libpod_parent/"$c"; do
        [ ! -d "$p" ] || rmdir "$p" 2>/dev/null || say "left $p in place (not empty)"
      done
    done <"$PODS/pod-ids"
  fi
  for p in $PODS_MADE; do
    [ -d "$p" ] || continue
    for c in results conmon; do
      [ ! -d "$p/$c" ] || rmdir "$p/$c" 2>/dev/null || true
    done
    rmdir "$p" 2>/dev/null || say "left $p in place (not empty)"
  done
}

bench_pods() {
  local podlab
  podlab="$(printf '%q' "$PODLAB") --root $PODS_ROOT"
  add "podlab start" "nsenter --net=/run/netns/$PODS_NS $PODS/podlab-start" "$PODS/state none"
  add "podman start" "nsenter --net=/run/netns/$PODS_NS $PODS/podman-start" "$PODS/state none"
  add "podlab delete" "$podlab delete -f $PODS_YAML" "$PODS/state podlab"
  add "podman delete" "$PODS/podman kube down $PODS_YAML" "$PODS/state podman"
  CLEANUP="$PODS/state none"
}

# percentile JSON ROW P: the P-th percentile (nearest rank) of the times of row ROW, in s.
percentile() {
  jq -r --argjson row "$2" --argjson p "$3" \
    '.results[$row].times | sort | .[((length * $p / 100) | ceil) - 1]' "$1"
}

# Rows: podlab start, podman start, podlab delete, podman delete.
print_pods_table() {
  local json=$1 i ref
  echo
  echo "| command | mean (ms) | ± σ (ms) | p50 (ms) | p99 (ms) | × podman |"
  echo "|---------|----------:|---------:|---------:|---------:|---------:|"
  for i in "${!NAMES[@]}"; do
    ref=$((i - i % 2 + 1))
    awk -v name="${NAMES[$i]}" -v m="${MEAN[$i]}" -v s="${SD[$i]}" -v r="${MEAN[$ref]}" \
      -v p50="$(percentile "$json" "$i" 50)" -v p99="$(percentile "$json" "$i" 99)" 'BEGIN {
        printf "| %s | %.1f | %.1f | %.1f | %.1f | %.2f |\n", name, m * 1000, s * 1000, p50 * 1000, p99 * 1000, m / r
      }'
  done
  echo
  awk -v p="${MEAN[0]}" -v r="${MEAN[1]}" -v p50="$(percentile "$json" 0 50)" -v p99="$(percentile "$json" 0 99)" \
    -v n="$RUNS" 'BEGIN {
    printf "start: podlab takes %.2f × the time of podman (%.1f ms against %.1f ms): goal ≤ 0.2× %s.\n\n",
      p / r, p * 1000, r * 1000, (p <= 0.2 * r) ? "met" : "NOT met"
    printf "podlab start over %d runs: p50 %.1f ms, p99 %.1f ms: goal p99 well under 5 s %s.\n\n",
      n, p50 * 1000, p99 * 1000, (p99 < 5) ? "met" : "NOT met"
  }'
  awk -v p="${MEAN[2]}" -v r="${MEAN[3]}" 'BEGIN {
    printf "delete: podlab takes %.2f × the time of podman (%.1f ms against %.1f ms).\n", p / r, p * 1000, r * 1000
  }'
  echo
  echo "- Pod: bench/pods/web.yaml (2 containers sharing an emptyDir, image present), started until its page answers."
  echo "- Network: everything in the netns $PODS_NS; the page check runs curl there."
  echo "- podlab: node agent in that netns, pods on 10.244.0.0/24 (bridge podlab0)."
  echo "- podman: CNI bridge network $PODMAN_NET ($PODMAN_SUBNET: bridge, host-local, portmap, firewall, tuning) in the same netns,"
  echo "  \`kube play --network $PODMAN_NET --ip $PODMAN_POD_IP\`; overlay storage, runc, cgroupfs, its own configuration and storage;"
  echo "  \`kube down\` stops the containers with SIGKILL at once (timeout 0)."
  print_commands
}

table_pods() {
  new_table
  pods_setup
  bench_pods
  # One warm-up run: a run takes a second or more.
  measure "$TMP/pods.json" 1 "$RUNS"
  keep_json "$TMP/pods.json" pods
  read_results "$TMP/pods.json"

  echo "## Pods"
  echo
  machine "$(podman --version), $(runc --version | head -1), $(conmon --version | head -1); $RUNS runs after 1 warm-up run"
  print_pods_table "$TMP/pods.json"
}

# --- Table 5: service proxy -------------------------------------------------------------
# Its own script (one JSON line per run of `podlab __proxy-bench`, no hyperfine): see there.
table_proxy() {
  PODLAB=$PODLAB bench/proxy.sh
}

# --- Table 6: API server ---------------------------------------------------------------
# Its own script (a podlab server on SQLite, then one on a private etcd, each measured by
# `podlab __api-bench`): see there.
table_api() {
  PODLAB=$PODLAB bench/api.sh
}

# --- Main -------------------------------------------------------------------------------
main() {
  local packages=(hyperfine jq)
  case "$WHAT" in
    all) packages+=(runc crun busybox-static docker-registry skopeo umoci curl podman conmon containernetworking-plugins catatonit iptables etcd-server) ;;
    box) packages+=(runc busybox-static) ;;
    image) packages+=(busybox-static docker-registry skopeo umoci curl) ;;
    runtime) packages+=(runc crun busybox-static) ;;
    pods) packages+=(podman runc conmon containernetworking-plugins catatonit iptables curl) ;;
    proxy) packages+=(iptables) ;;
    api) packages+=(curl etcd-server) ;;
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
      echo
      table_pods
      echo
      table_proxy
      echo
      table_api
      ;;
    box) table_box ;;
    image) table_image ;;
    runtime) table_runtime ;;
    pods) table_pods ;;
    proxy) table_proxy ;;
    api) table_api ;;
  esac
}

main "$@"

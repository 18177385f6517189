#!/usr/bin/env bash
# The API server under load: latency (p50, p99) and throughput of create, get, update, list
# and watch fan-out with 50 concurrent clients, on the SQLite store and on etcd, side by side.
#
# For each store, one after the other (so that they never share the CPUs): a `podlab server`
# with its own --root in a temporary directory (for etcd, a private etcd on free loopback
# ports, its data in that directory too), then `podlab __api-bench` against it: 1000 pods
# created, read, updated (PUT with their resourceVersion) and deleted from 50 clients, 50
# lists of all of them from 5 clients, 100 creates timed until each of 100 watches has seen
# them (one create at a time from one client, then 100 more as a burst from the 50 clients).
# Then the server (and etcd) are stopped. Prints a Markdown table on stdout, progress on
# stderr. On exit, even on failure or Ctrl-C, everything it started is stopped and its
# temporary directory removed.
#
#   bench/api.sh
#   STORES=sqlite PODS=5000 bench/api.sh
#
# Environment:
#   STORES="sqlite etcd"   stores to run against
#   CLIENTS=50             concurrent clients (create, get, update, delete, the burst of watched creates)
#   PODS=1000              pods created, read, updated, listed and deleted
#   LISTS=50 LIST_CLIENTS=5   lists of all the pods, and from how many clients at once
#   WATCHERS=100 EVENTS=100   watches open, and creates each of them must see (twice: one at a time, a burst)
#   BENCH_DIR=/var/tmp     where the temporary directory goes (on disk, as /var/lib/podlab is:
#                          a tmpfs would make every fsync free)
#   PODLAB=/path/podlab    use this binary instead of building one (cargo build --release)
#   KEEP_JSON=FILE         also keep the JSON lines of the runs in FILE
set -euo pipefail

cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench/api: error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. bench/lib.sh

[ "$#" -eq 0 ] || die "no arguments (see the environment variables at the top of $0)"

STORES=${STORES:-sqlite etcd}
CLIENTS=${CLIENTS:-50}
PODS=${PODS:-1000}
LISTS=${LISTS:-50}
LIST_CLIENTS=${LIST_CLIENTS:-5}
WATCHERS=${WATCHERS:-100}
EVENTS=${EVENTS:-100}
BENCH_DIR=${BENCH_DIR:-/var/tmp}
for v in "$CLIENTS" "$PODS" "$LISTS" "$LIST_CLIENTS" "$WATCHERS" "$EVENTS"; do
  case "$v" in '' | *[!0-9]* | 0) die "CLIENTS, PODS, LISTS, LIST_CLIENTS, WATCHERS and EVENTS are positive numbers, not '$v'" ;; esac
done
for s in $STORES; do
  case "$s" in sqlite | etcd) ;; *) die "unknown store '$s': sqlite or etcd" ;; esac
done

missing=()
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v curl >/dev/null 2>&1 || missing+=(curl)
case " $STORES " in *" etcd "*) [ -x /usr/bin/etcd ] || missing+=(etcd-server) ;; esac
install_missing ${missing[@]+"${missing[@]}"}

release_podlab

TMP=$(mktemp -d "$BENCH_DIR/podlab-bench-api.XXXXXX")
PIDS=() # servers and etcds running, stopped in reverse order
stop_all() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[$i]}" 2>/dev/null || true
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
  PIDS=()
}
cleanup() {
  stop_all
  rm -rf --one-file-system -- "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port: a loopback TCP port nobody listens on.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    [ -n "$(ss -Htln "sport = :$p")" ] || { echo "$p"; return; }
  done
}

# start_etcd DIR: a private etcd, data in DIR; sets ETCD_PORT.
start_etcd() {
  local dir=$1 peer i
  ETCD_PORT=$(free_port)
  peer=$(free_port)
  [ "$peer" != "$ETCD_PORT" ] || peer=$(free_port)
  local name=podlab-bench-$$ client=http://127.0.0.1:$ETCD_PORT peer_url=http://127.0.0.1:$peer
  mkdir -p "$dir"
  /usr/bin/etcd --name "$name" --data-dir "$dir/data" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
    --initial-cluster "$name=$peer_url" </dev/null >"$dir/etcd.log" 2>&1 &
  PIDS+=($!)
  for i in $(seq 300); do
    curl -fsS --max-time 1 "$client/health" 2>/dev/null | grep -q '"health":"true"' && return
    kill -0 "${PIDS[-1]}" 2>/dev/null || { tail -20 "$dir/etcd.log" >&2; die "etcd exited at start"; }
    sleep 0.1
  done
  tail -20 "$dir/etcd.log" >&2
  die "etcd was not healthy within 30 s"
}

# start_server ROOT STORE: `podlab server` on 127.0.0.1, a free port; sets URL, CA, TOKEN.
start_server() {
  local root=$1 store=$2 i
  mkdir -p "$root"
  "$PODLAB" --root "$root" server --listen 127.0.0.1:0 --store "$store" \
    --kubeconfig-out "$root/admin.kubeconfig" </dev/null >/dev/null 2>"$root/server.log" &
  PIDS+=($!)
  CA=$root/lib/server/pki/ca.crt
  for i in $(seq 300); do
    if [ -s "$root/lib/server/server.addr" ]; then
      URL=$(head -1 "$root/lib/server/server.addr")
      TOKEN=$(awk -F, '/system:masters/ { print $1; exit }' "$root/lib/server/tokens.csv")
      [ -z "$TOKEN" ] || ! curl -fsS --max-time 1 --cacert "$CA" -H "Authorization: Bearer $TOKEN" \
        "$URL/readyz" >/dev/null 2>&1 || return 0
    fi
    kill -0 "${PIDS[-1]}" 2>/dev/null || { tail -20 "$root/server.log" >&2; die "podlab server exited at start"; }
    sleep 0.1
  done
  tail -20 "$root/server.log" >&2
  die "podlab server was not ready within 30 s"
}

for store in $STORES; do
  root=$TMP/$store
  case "$store" in
    sqlite) spec=sqlite ;;
    etcd)
      start_etcd "$TMP/etcd"
      spec=etcd://127.0.0.1:$ETCD_PORT
      ;;
  esac
  start_server "$root" "$spec"
  say "$store: $PODS pods from $CLIENTS clients, $LISTS lists, $EVENTS creates x $WATCHERS watchers ($URL)"
  "$PODLAB" __api-bench --server "$URL" --ca "$CA" --token "$TOKEN" --clients "$CLIENTS" --pods "$PODS" \
    --lists "$LISTS" --list-clients "$LIST_CLIENTS" --watchers "$WATCHERS" --events "$EVENTS" --json \
    | jq -c --arg store "$store" '. + {store: $store}' >"$TMP/$store.json" ||
    { tail -20 "$root/server.log" >&2; die "the bench failed against $store"; }
  jq -c . "$TMP/$store.json" >&2
  stop_all
done
[ -z "${KEEP_JSON:-}" ] || cat "$TMP"/*.json >"$KEEP_JSON"

# label OP: the row's name in the table.
label() {
  case "$1" in
    connect) echo "connect (TLS handshake + GET)" ;;
    list) echo "list of $PODS pods" ;;
    watch) echo "watch: one create at a time" ;;
    burst) echo "watch: burst from $CLIENTS clients" ;;
    *) echo "$1" ;;
  esac
}
# cell STORE OP: "ops/s | p50 | p99" of OP against STORE.
cell() { jq -r --arg op "$2" '.ops[$op] | "\(.ops_per_s) | \(.p50_ms) | \(.p99_ms)"' "$TMP/$1.json"; }
goal() {
  case "$1" in
    create | update | delete) echo "< 50 ms" ;;
    list | watch | burst) echo "< 100 ms" ;;
    *) echo "—" ;;
  esac
}

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
build=release
case "$PODLAB" in */debug/*) build=debug ;; esac
echo "## API server"
echo
versions="podlab $build build"
case " $STORES " in *" etcd "*) versions+=", $(/usr/bin/etcd --version | awk 'NR == 1')" ;; esac
echo "Machine: ${cpu:-unknown CPU}, $(nproc) CPU(s), Linux $(uname -r); $versions;"
echo "$CLIENTS clients, $PODS pods, $LISTS lists from $LIST_CLIENTS clients, $EVENTS creates seen by $WATCHERS watchers; data in $BENCH_DIR ($(findmnt -no FSTYPE -T "$BENCH_DIR"))."
echo
header="| operation | goal (p99) |"
rule="|-----------|-----------:|"
for store in $STORES; do
  header+=" $store ops/s | $store p50 (ms) | $store p99 (ms) |"
  rule+="------:|------:|------:|"
done
echo "$header"
echo "$rule"
for op in connect create get update list watch burst delete; do
  line="| $(label "$op") | $(goal "$op") |"
  for store in $STORES; do line+=" $(cell "$store" "$op") |"; done
  echo "$line"
done
echo
for store in $STORES; do
  jq -r --arg store "$store" '
    def verdict(p; limit): if p < limit then "met" else "NOT met" end;
    .ops as $o
    | ([$o.create.p99_ms, $o.update.p99_ms, $o.delete.p99_ms] | max) as $m
    | "\($store): mutating p99 < 50 ms \(verdict($m; 50)) (create \($o.create.p99_ms), update \($o.update.p99_ms), delete \($o.delete.p99_ms) ms); "
      + "list of \(.pods) pods p99 < 100 ms \(verdict($o.list.p99_ms; 100)) (\($o.list.p99_ms) ms); "
      + "watch delivery to \(.watchers) watchers p99 < 100 ms, one create at a time \(verdict($o.watch.p99_ms; 100)) (\($o.watch.p99_ms) ms), "
      + "a burst from \(.clients) clients \(verdict($o.burst.p99_ms; 100)) (\($o.burst.p99_ms) ms)"
      + (if .watch_missed > 0 then "; \(.watch_missed) events never arrived: NOT met" else "" end) + "."
  ' "$TMP/$store.json"
  echo
done

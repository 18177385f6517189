#!/usr/bin/env bash
# The service proxy's sync times: how long does podlab take to program N Services x E
# endpoints into iptables (full sync), and to apply a change of one Service (partial sync),
# on both iptables backends, against a plain `iptables-restore --noflush` of the same rules?
#
# Each run is `podlab __proxy-bench` in a network namespace made for it (and deleted after):
# a full sync, 5 partial syncs after one service's endpoints change (median), a service added,
# one deleted, a full re-sync over unchanged rules, kube-proxy's partial sync (every shared
# chain rewritten, through plain iptables-restore), a cleanup, and the whole rule text through
# plain iptables-restore. Prints a Markdown table on stdout, progress on stderr.
#
#   sudo bench/proxy.sh
#   sudo SIZES="1000 5000" BACKENDS=nft bench/proxy.sh
#
# Environment:
#   SIZES="1000 5000 10000"  numbers of services
#   ENDPOINTS=5              endpoints per service
#   BACKENDS="nft legacy"    iptables backends
#   PLAIN_TIMEOUT=120        seconds before giving up on a plain iptables-restore
#   REPEAT=5                 partial syncs timed per run
#   PODLAB=/path/podlab      use this binary instead of building one (cargo build --release)
#   KEEP_JSON=FILE           also keep the JSON lines of the runs in FILE
set -euo pipefail

cd "$(dirname "$0")/.."

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench/proxy: error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. bench/lib.sh

[ "$#" -eq 0 ] || die "no arguments (see the environment variables at the top of $0)"
[ "$(id -u)" = 0 ] || die "run as root (network namespaces and iptables need it): sudo bench/proxy.sh"

SIZES=${SIZES:-1000 5000 10000}
ENDPOINTS=${ENDPOINTS:-5}
BACKENDS=${BACKENDS:-nft legacy}
PLAIN_TIMEOUT=${PLAIN_TIMEOUT:-120}
REPEAT=${REPEAT:-5}
for v in $SIZES "$ENDPOINTS" "$PLAIN_TIMEOUT" "$REPEAT"; do
  case "$v" in '' | *[!0-9]* | 0) die "sizes, ENDPOINTS, PLAIN_TIMEOUT and REPEAT are positive numbers, not '$v'" ;; esac
done
for b in $BACKENDS; do
  case "$b" in nft | legacy) ;; *) die "unknown backend '$b': nft or legacy" ;; esac
done

missing=()
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v iptables-nft-restore >/dev/null 2>&1 && command -v iptables-legacy-restore >/dev/null 2>&1 || missing+=(iptables)
install_missing ${missing[@]+"${missing[@]}"}

release_podlab

NS=
RESULTS=$(mktemp /tmp/podlab-bench-proxy.XXXXXX)
cleanup() {
  [ -z "$NS" ] || ip netns delete "$NS" 2>/dev/null || true
  rm -f "$RESULTS"
}
trap cleanup EXIT

for backend in $BACKENDS; do
  for size in $SIZES; do
    NS=podlab-bench-proxy-$$
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    say "$backend: $size services x $ENDPOINTS endpoints (netns $NS)"
    ip netns exec "$NS" "$PODLAB" __proxy-bench --services "$size" --endpoints "$ENDPOINTS" \
      --backend "$backend" --plain-timeout "$PLAIN_TIMEOUT" --repeat "$REPEAT" >>"$RESULTS"
    tail -n 1 "$RESULTS" >&2
    ip netns delete "$NS"
    NS=
  done
done
[ -z "${KEEP_JSON:-}" ] || cp "$RESULTS" "$KEEP_JSON"

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo "## Service proxy"
echo
echo "Machine: ${cpu:-unknown CPU}, $(nproc) CPU(s), Linux $(uname -r); $(iptables --version | head -1); $ENDPOINTS endpoints per service."
echo
echo "| backend | services | rules | full sync (ms) | restores | partial: endpoints (ms) | add (ms) | delete (ms) | re-sync (ms) | kube-proxy-style partial (ms) | plain restore (ms) | full ÷ plain |"
echo "|---------|---------:|------:|---------------:|---------:|------------------------:|---------:|------------:|-------------:|------------------------------:|-------------------:|-------------:|"
jq -r --argjson t "$PLAIN_TIMEOUT" '
  def cell(v): if v == null then "> \($t * 1000)" else (v | tostring) end;
  "| \(.backend) | \(.services) | \(.rules) | \(.full_ms) | \(.full_restores) | \(.partial_ms) (max \(.partial_max_ms)) | \(.add_ms) | \(.delete_ms) | \(.resync_ms) | \(cell(.kube_proxy_partial_ms)) | \(cell(.plain_full_ms)) | \(if .plain_full_ms == null then "< \((.full_ms / ($t * 1000)) * 100 | round / 100)" else ((.full_ms / .plain_full_ms) * 100 | round / 100 | tostring) end) |"
' "$RESULTS"
echo
jq -rs '(map(.services) | max) as $most | .[] | select(.services == $most) |
  "Goal, a one-service change at \(.services) services under 100 ms (\(.backend)): \(.partial_ms) ms, \(if .partial_ms < 100 then "met" else "NOT met" end)."' "$RESULTS"
echo
echo "- partial: the median of $REPEAT syncs after one service's endpoints changed (one pod replaced); add, delete: a service added, one deleted."
echo "- re-sync: a full sync (iptables-save read and compared) when nothing changed."
echo "- kube-proxy-style partial: what kube-proxy sends for the same change (all shared chains rewritten, KUBE-SERVICES with one rule per service), through plain iptables-restore."
echo "- plain restore: the full rule text in one plain \`iptables-restore --noflush\`, on empty tables; \"> N\": gave up after N ms."

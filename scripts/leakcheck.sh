#!/usr/bin/env bash
# After the test suite: nothing of podlab may remain on the host — no cgroup under a
# podlab parent, no podlab-* network namespace, no pl*/podlab-* link, no mount of a podlab
# path, no podlab process, no /tmp/podlab-* scratch directory of a test. Prints what it finds and exits 1 if anything is left.
set -uo pipefail
left=0
report() { echo "leak: $*"; left=1; }

while read -r d; do report "cgroup $d"; done < <(find /sys/fs/cgroup -maxdepth 3 -name '*podlab*' 2>/dev/null)
while read -r n _; do report "netns $n"; done < <(ip netns list 2>/dev/null | grep -E '^podlab' || true)
while read -r l _; do report "link $l"; done < <(ip -br link 2>/dev/null | awk '{print $1}' | grep -E '^(pl|podlab)' || true)
while read -r m; do report "mount $m"; done < <(findmnt -rn -o TARGET 2>/dev/null | grep -i podlab || true)
# podlab itself, a container init still waiting (podlab-init) and a pod's pause process;
# the re-executed ones are matched by their command line ("podlab __rtinit", "podlab __pause",
# a pod's supervisor "podlab __supervise").
while read -r p; do report "process $p"; done < <(
  { pgrep -a -x 'podlab|podlab-init|podlab-runtime|podlab-sup' ; pgrep -a -f '^podlab __(init|rtinit|pause|supervise)'; } 2>/dev/null | sort -u || true
)
# an etcd started by the store and API server tests (named podlab-TEST-PID)
while read -r p; do report "process $p"; done < <(pgrep -a -f 'etcd --name podlab-' 2>/dev/null || true)
while read -r d; do report "scratch directory $d"; done < <(find /tmp -maxdepth 1 -name 'podlab-*' 2>/dev/null)
while read -r r; do report "iptables rule $r"; done < <(iptables-save 2>/dev/null | grep -i podlab || true)

if [ "$left" = 0 ]; then
  echo "leak check: nothing of podlab is left on this host"
fi
exit "$left"

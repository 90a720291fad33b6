#!/usr/bin/env bash
# Where the rig's small UDP datagrams are lost: runs ../shared/bench/tunnel-rig.sh's `udp` test
# (site-a -> site-b) for each implementation, round by round, and samples /proc/net/udp{,6} in
# the receiving namespace once a second, so that the drops of the iperf3 server's socket (port
# 5201) and those of the tunnel daemon's socket are told apart. The rig's kpps is what the
# iperf3 server read; `reached` adds what the tunnel delivered to its socket but it dropped.
# Then each process's share of the CPU over 5 s of the test from /proc/PID/task/*/schedstat:
# time on a core, and time runnable but waiting for one (the rest of 100 % it slept). `plain`
# (no tunnel) gives the ceiling: what iperf3 alone reaches on the same machine.
#
#   sudo gateway/bench/udp-sockets.sh [ROUNDS] IMPL...     (IMPL: a rig implementation, or qgw)
#   e.g. sudo gateway/bench/udp-sockets.sh 3 gotatun qgw
#
# qgw is target/release/qgw (QGW_BIN overrides) through rig-custom.sh. Rig options (RIG_* in
# the environment) are the rig's defaults: 10 s, 200-byte datagrams, unlimited rate, unpinned.
# RIG_RMEM_DEFAULT=BYTES runs with that default socket receive buffer (receive-buffer.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rig="${RIG:-$here/../../../shared/bench/tunnel-rig.sh}"
rounds=3
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
[[ $# -ge 1 ]] || { sed -n '2,16p' "$0"; exit 2; }
[[ $EUID -eq 0 ]] || { echo "udp-sockets.sh: run as root" >&2; exit 1; }
# shellcheck source=receive-buffer.sh source-path=SCRIPTDIR
source "$here/receive-buffer.sh"
out="$(mktemp -d /tmp/qgw-udp-sockets.XXXXXX)"
trap 'rmem_restore; rm -rf "$out"' EXIT
trap 'exit 130' INT TERM
rmem_apply
echo "$(rmem_note), $(date -u +%Y-%m-%dT%H:%M:%SZ)"

drops() { # the receiving namespace's UDP sockets: "PORT DROPS" lines (site-b's daemon: 51821)
  ip netns exec site-b cat /proc/net/udp /proc/net/udp6 2>/dev/null |
    awk '$1 != "sl" { split($2, a, ":"); print a[2], $NF }' |
    while read -r port n; do echo "$((16#$port)) $n"; done
}

sched() { # "NS COMM PID RUN_NS WAIT_NS" of every process in both namespaces, threads summed
  local ns pid t run wait r w comm
  for ns in site-a site-b; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      run=0 wait=0
      for t in /proc/"$pid"/task/*/schedstat; do
        read -r r w _ < "$t" 2>/dev/null || continue
        run=$((run + r)) wait=$((wait + w))
      done
      read -r comm < /proc/"$pid"/comm 2>/dev/null || comm=gone # builtins: the rig's own /proc
      echo "$ns $comm $pid $run $wait"                            # scan races with short children
    done
  done
}

share() { # FIRST LAST SECONDS: each process's share of one core, running and waiting to run
  awk -v s="$3" 'FNR == NR { r[$3] = $4; w[$3] = $5; next }
    ($3 in r) { printf "  %s %-14s on a core %3.0f %%, runnable but waiting %3.0f %%\n", $1, $2,
      ($4 - r[$3]) / s / 1e7, ($5 - w[$3]) / s / 1e7 }' "$1" "$2"
}

run() { # IMPL ROUND
  local impl=$1 log="$out/$1-$2.log" samples="$out/$1-$2.drops" pid
  : > "$samples"
  if [[ $impl == qgw ]]; then
    RIG_CUSTOM_CMD="$here/rig-custom.sh {IF}" RIG_CUSTOM_UAPI=0 RIG_CUSTOM_NAME=qgw \
      RIG_CUSTOM_VERSION=qgw "$rig" -T udp custom > "$log" 2>&1 &
  else
    "$rig" -T udp "$impl" > "$log" 2>&1 &
  fi
  pid=$!
  local i=0 seen=0
  while kill -0 "$pid" 2>/dev/null && ((i++ < 90)); do # bounded: a rig run takes under 90 s
    drops >> "$samples" || true
    # Scheduler shares over 5 s of the test, from its 3rd second (the client is up by then).
    if pgrep -f '^iperf3 -c' > /dev/null; then
      seen=$((seen + 1))
      ((seen == 3)) && sched > "$samples.s1"
      ((seen == 8)) && sched > "$samples.s2"
    fi
    sleep 1
  done
  wait "$pid" || { echo "rig failed for $impl, see:" >&2; tail -5 "$log" >&2; return 1; }
  local kpps dur iperf daemon
  kpps=$(grep -o 'kpps=[0-9.]*' "$log" | head -1 | cut -d= -f2)
  dur=$(grep -o ' dur=[0-9]*' "$log" | head -1 | cut -d= -f2)
  # The highest count seen per port (sockets come and go between tests).
  for port in 5201 $([[ $impl == plain ]] || echo 51821); do # both sockets must have been seen, or the figures mean nothing
    grep -q "^$port " "$samples" || { echo "no socket on port $port in site-b for $impl" >&2; return 1; }
  done
  iperf=$(awk '$1 == 5201 && $2 > m { m = $2 } END { print m + 0 }' "$samples")
  daemon=$(awk '$1 == 51821 && $2 > m { m = $2 } END { print m + 0 }' "$samples")
  awk -v i="$impl" -v r="$2" -v k="$kpps" -v d="$dur" -v ip="$iperf" -v dm="$daemon" 'BEGIN {
    printf "%-10s round %d: read by iperf3 %6.1f kpps, dropped at its socket %6.1f kpps, at the daemon socket %5.1f kpps; reached the receiver %6.1f kpps\n",
      i, r, k, ip / d / 1000, dm / d / 1000, k + ip / d / 1000 }'
  [[ -s "$samples.s1" && -s "$samples.s2" ]] && share "$samples.s1" "$samples.s2" 5
  return 0
}

for ((round = 1; round <= rounds; round++)); do
  for impl in "$@"; do run "$impl" "$round"; done
done

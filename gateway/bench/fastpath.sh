#!/usr/bin/env bash
# The fast path beyond throughput (the rig, ../shared/bench/tunnel-rig.sh, measures that): for
# each variant, two qgw sites in namespaces this script creates, joined by a 1500-byte veth,
#   1. ping RTT through the idle tunnel (400 pings, 10 ms apart): p50, p99, max;
#   2. a saturating iperf3 TCP stream a -> b for -t seconds and, during it, ping RTT (p50, p99,
#      max) — offloads and batching must not queue small packets behind bulk;
#   3. during the same stream: Gbit/s, TCP retransmits, CPU seconds of both qgw processes per GB
#      moved, hybrid epochs installed, and every packet the gateways themselves dropped (node drop
#      counters and UDP send drops, by reason) — with a 10 s rotation, "no packet lost at a
#      rotation under full load" means those stay 0 while epochs advance.
# Variants: hybrid (QKD required via qkd-kme-sim, rekey_after_seconds 10) with offloads on and
# off, plain WireGuard with offloads on, and, with -O, an older qgw binary (hybrid, its defaults).
#
#   sudo gateway/bench/fastpath.sh [-t SECS] [-n ROUNDS] [-O OLD_QGW] [-o DIR] [-B]
#   sudo gateway/bench/fastpath.sh cleanup      # remove what a killed run left behind
#
# Traffic stays inside the namespaces this script creates; every process it starts is bounded in
# time and ended by PID on exit (also on failure or Ctrl-C).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$here/lib.sh"

NS_A=qgwfp-a NS_B=qgwfp-b
UL_A=10.212.0.1 UL_B=10.212.0.2 TN_A=10.201.0.1 TN_B=10.201.0.2
PORT=51820 MTU=1420 REKEY=10
DUR=20 ROUNDS=1 OLD="" OUT="" BUILD=1
BENCH_NAME=fastpath BENCH_NS=("$NS_A" "$NS_B") QGW_IF=qgwfp

cleanup_command "$@"
while getopts "t:n:O:o:B" o; do
  case $o in
    t) DUR=$OPTARG ;;
    n) ROUNDS=$OPTARG ;;
    O) OLD=$(realpath "$OPTARG") ;;
    o) OUT=$OPTARG ;;
    B) BUILD=0 ;;
    *) sed -n '2,18p' "$0"; exit 2 ;;
  esac
done
[[ $(id -u) == 0 ]] || die "run as root (namespaces)"
need ip iperf3 ping jq awk
OUT=${OUT:-$(mktemp -d /tmp/qgw-fastpath.XXXXXX)}
mkdir -p "$OUT"
WD=$(mktemp -d)
arm_cleanup
[[ $BUILD == 1 ]] && build_release packet_cost

make_namespaces
veth $NS_A fpa $UL_A $NS_B fpb $UL_B
make_keys
kme_config "$UL_A"
kme_start "$OUT/kme.log" $((ROUNDS * 5 * (DUR + 60)))

percentiles() { # ping output file -> "p50 p99 max" in ms
  sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' "$1" | sort -n \
    | awk '{ v[NR] = $1 } END { if (NR == 0) { print "- - -"; exit }
        i = int(NR * 0.99); if (i < 1) i = 1
        printf "%.3f %.3f %.3f", v[int((NR + 1) * 0.5)], v[i], v[NR] }'
}
cpu_ticks() { # PID -> utime + stime in clock ticks
  awk '{ print $14 + $15 }' "/proc/$1/stat" 2> /dev/null || echo 0
}
gateway_drops() { # SITE -> every packet the gateway dropped: node drops + UDP send drops
  ip netns exec "$(ns_of "$1")" "${QGW:-$BIN/qgw}" status "$QGW_IF-$1" --json 2> /dev/null \
    | jq -r '[(.drops // {} | to_entries[] | select(.key != "no_route") | .value),
              (.offloads.udp_send_dropped // 0)] | add // 0'
}
epoch() { # SITE -> the hybrid epoch (0 for plain WireGuard)
  ip netns exec "$(ns_of "$1")" "${QGW:-$BIN/qgw}" status "$QGW_IF-$1" --json 2> /dev/null \
    | jq -r '.peers[0].epoch // 0'
}

run_variant() { # tag binary offload(true|false|"") hybrid(1|0)
  local tag=$1 life=$((DUR + 60)) pa pb wa wb
  QGW=$2 QGW_OFFLOAD=$3
  log "$tag: $QGW offload=${QGW_OFFLOAD:-default} hybrid=$4"
  for s in a b; do
    local ep=$UL_B
    [[ $s == b ]] && ep=$UL_A
    if [[ $4 == 1 ]]; then qgw_config $s $ep "$OUT/$tag.audit-$s.log" $REKEY; else qgw_plain_config $s $ep; fi
  done
  qgw_up a "$OUT/$tag.qgw-a.log" $life
  wa=$last pa=$(child_of "$last")
  qgw_up b "$OUT/$tag.qgw-b.log" $life
  wb=$last pb=$(child_of "$last")
  tunnel_up 20 || die "$tag: no tunnel"
  sleep 1
  ip netns exec $NS_A ping -c 400 -i 0.01 $TN_B > "$OUT/$tag.ping-idle" 2>&1 || true
  local idle drops0 e0 c0 load
  idle=$(percentiles "$OUT/$tag.ping-idle")
  drops0=$(($(gateway_drops a) + $(gateway_drops b)))
  e0=$(epoch a)
  c0=$(($(cpu_ticks "$pa") + $(cpu_ticks "$pb")))
  start $NS_B "$OUT/$tag.iperf-server.log" timeout -k 5 $((DUR + 30)) iperf3 -s -1
  local srv=$last _
  for _ in $(seq 50); do
    [[ -n "$(ip netns exec $NS_B ss -Hltn 'sport = :5201')" ]] && break
    sleep 0.1
  done
  start $NS_A "$OUT/$tag.iperf.json" timeout -k 5 $((DUR + 20)) iperf3 -c $TN_B -t "$DUR" -J
  local cli=$last
  sleep 2
  ip netns exec $NS_A ping -c $(((DUR - 4) * 50)) -i 0.02 $TN_B > "$OUT/$tag.ping-load" 2>&1 || true
  wait "$cli" || true
  stop_pid "$srv"
  local c1 gb mbps retr cpu_per_gb epochs drops
  c1=$(($(cpu_ticks "$pa") + $(cpu_ticks "$pb")))
  load=$(percentiles "$OUT/$tag.ping-load")
  read -r mbps retr gb < <(jq -r '.end | "\(.sum_received.bits_per_second / 1e6 | round) \(.sum_sent.retransmits // 0) \(.sum_received.bytes / 1e9)"' "$OUT/$tag.iperf.json" 2> /dev/null || echo "0 0 0")
  cpu_per_gb=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v gb="$gb" 'BEGIN { if (gb > 0) printf "%.2f", t / hz / gb; else print "-" }')
  epochs=$(($(epoch a) - e0))
  drops=$(($(gateway_drops a) + $(gateway_drops b) - drops0))
  read -r i50 i99 imax <<< "$idle"
  read -r l50 l99 lmax <<< "$load"
  echo "RESULT variant=$tag gbps=$(awk -v m="$mbps" 'BEGIN { printf "%.2f", m / 1000 }') retr=$retr cpu_s_per_gb=$cpu_per_gb epochs=$epochs gateway_drops=$drops idle_p50_ms=$i50 idle_p99_ms=$i99 idle_max_ms=$imax load_p50_ms=$l50 load_p99_ms=$l99 load_max_ms=$lmax" \
    | tee -a "$OUT/results.txt"
  stop_pid "$pa"
  stop_pid "$pb"
  stop_pid "$wa"
  stop_pid "$wb"
}

for ((round = 1; round <= ROUNDS; round++)); do
  run_variant "r$round-hybrid-offload" "$BIN/qgw" true 1
  run_variant "r$round-hybrid-no-offload" "$BIN/qgw" false 1
  run_variant "r$round-plain-offload" "$BIN/qgw" true 0
  [[ -n "$OLD" ]] && run_variant "r$round-hybrid-old" "$OLD" "" 1
done
log "results in $OUT/results.txt"

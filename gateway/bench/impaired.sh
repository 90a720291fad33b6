#!/usr/bin/env bash
# TCP through qgw and through wireguard-go over an impaired underlay, in one run (issue 11,
# property 11). The development kernel has no sch_netem (the META line says netem=absent or
# present; checked each run), so the impairment is a UDP relay
# (gateway/examples/impair_relay) in a middle namespace between the two sites' WireGuard ports:
#
#   qgwimp-a 10.210.1.1 ── 10.210.1.2 [qgwimp-m: impair_relay] 10.210.2.1 ── 10.210.2.2 qgwimp-b
#   tunnel 10.201.0.1/24                                                  tunnel 10.201.0.2/24
#   KME link (not impaired): 10.210.9.1 ──────────────────────────────────── 10.210.9.2
#
# For every profile (clean; 2 % loss + 20 ms delay; 1 % loss + 25 % reordering) and round:
#   1. wireguard-go at both sites, iperf3 TCP a -> b for -t seconds;
#   2. qgw at both sites (hybrid: on, qkd.policy: required, rekey_after_seconds: 10, a master and
#      b slave, each site's KME from qkd-kme-sim over ETSI 014 + mutual TLS), the same iperf3,
#      then numbered UDP probe streams both ways (probe.py, 100/s each) across several rotations;
#      every lost probe is matched against the relay's own drop log, and the rest is split into
#      "within 1 s of an epoch install at either site" and "elsewhere" (epoch times from the
#      audit logs, which are verified at the end of the phase).
# Each phase gets a fresh relay with the same seed. Prints one RESULT line per phase and the
# tables (bench_report.py impaired); everything stays in the results directory.
#
#   sudo gateway/bench/impaired.sh [-t SECS] [-n ROUNDS] [-p PROFILES] [-P SECS] [-C CC] [-o DIR] [-B]
#   sudo gateway/bench/impaired.sh cleanup      # remove what a killed run left behind
#
#   -t  iperf3 seconds per phase (20)        -n  rounds (1)
#   -p  comma list of clean,loss2-delay20,loss1-reorder25 (all)
#   -P  probe seconds per qgw phase (35)     -o  results directory (default: new /tmp/qgw-impaired.*)
#   -C  congestion control of the iperf3 stream (cubic, Linux's default and loss-sensitive; the
#       development VM's own default is bbr, which shrugs off random loss)
#   -B  skip the release build
# Traffic stays inside the namespaces this script creates; every process it starts is bounded in
# time and ended by PID on exit (also on failure or Ctrl-C).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$here/lib.sh" # repo, BIN; log/die, start/stop_pid, cleanup, keys, KME, qgw configs, wireguard-go

NS_A=qgwimp-a NS_M=qgwimp-m NS_B=qgwimp-b
UL_A=10.210.1.1 RL_A=10.210.1.2 RL_B=10.210.2.1 UL_B=10.210.2.2
KL_A=10.210.9.1 KL_B=10.210.9.2
TN_A=10.201.0.1 TN_B=10.201.0.2
PORT=51820 REKEY=10 MTU=1420
PROBE_RATE=100 PROBE_SIZE=200
# WireGuard data message: 16-byte header + payload (IPv4 20 + UDP 8 + probe) padded to 16 + tag.
PROBE_WIRE=$((16 + (28 + PROBE_SIZE + 15) / 16 * 16 + 16))

DUR=20 ROUNDS=1 PROBE_SECS=35 BUILD=1 OUT="" CC=cubic
PROFILES="clean,loss2-delay20,loss1-reorder25"
BENCH_NAME=impaired BENCH_NS=("$NS_A" "$NS_M" "$NS_B") QGW_IF=qgwimp
BENCH_STALE=(/var/run/wireguard/wgimp-a.sock /var/run/wireguard/wgimp-b.sock)

profile_args() { # name -> impair_relay options
  case "$1" in
    clean) echo "--loss-pct 0" ;;
    loss2-delay20) echo "--loss-pct 2 --delay-ms 20" ;;
    loss1-reorder25) echo "--loss-pct 1 --reorder-pct 25 --reorder-ms 15" ;;
    *) die "unknown profile $1 (clean, loss2-delay20, loss1-reorder25)" ;;
  esac
}

# ------------------------------------------------------------------ set-up
setup_namespaces() {
  make_namespaces
  veth $NS_A impa $UL_A $NS_M impma $RL_A
  veth $NS_M impmb $RL_B $NS_B impb $UL_B
  veth $NS_A impka $KL_A $NS_B impkb $KL_B
  # The middle namespace only relays UDP: no forwarding between its two links.
  ip netns exec $NS_M sysctl -qw net.ipv4.ip_forward=0
}

# ------------------------------------------------------------------ one phase
RELAY_PID=""
start_relay() { # tag profile seed
  local args
  read -r -a args <<< "$(profile_args "$2")"
  start $NS_M "$OUT/$1.relay.log" "$BIN/examples/impair_relay" \
    --a-listen $RL_A:$PORT --a-peer $UL_A:$PORT --b-listen $RL_B:$PORT --b-peer $UL_B:$PORT \
    --seed "$3" --max-seconds $((DUR + PROBE_SECS + 120)) --stats "$OUT/$1.relay.stats" \
    --drops "$OUT/$1.relay.drops" "${args[@]}"
  RELAY_PID=$last
  sleep 0.3
  kill -0 "$RELAY_PID" || die "relay did not start: $(cat "$OUT/$1.relay.log")"
}
relay_stat() { # tag key -> value (sum over both directions when key has no direction)
  awk -F= -v k="$2" '$1 == "a2b_" k || $1 == "b2a_" k { s += $2 } END { print s + 0 }' "$OUT/$1.relay.stats"
}

rcvbuf_errors() { # NS -> the namespace's UDP RcvbufErrors (datagrams a full socket buffer dropped)
  # shellcheck disable=SC2016 # awk's own $
  ip netns exec "$1" awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 } else print $c["RcvbufErrors"] }' /proc/net/snmp
}
COUNTERS0=""
counters_start() { COUNTERS0="$(rcvbuf_errors $NS_M) $(rcvbuf_errors $NS_A) $(rcvbuf_errors $NS_B)"; }
counters_end() { # -> " rcvbuf_m=.. rcvbuf_a=.. rcvbuf_b=..": kernel drops during the phase
  local m0 a0 b0
  read -r m0 a0 b0 <<< "$COUNTERS0"
  echo "rcvbuf_m=$(($(rcvbuf_errors $NS_M) - m0)) rcvbuf_a=$(($(rcvbuf_errors $NS_A) - a0)) rcvbuf_b=$(($(rcvbuf_errors $NS_B) - b0))"
}
rtt_ms() { # tag -> average ping RTT through the tunnel, ms (20 pings; the output in tag.ping)
  ip netns exec $NS_A ping -c 20 -i 0.1 -W 2 $TN_B > "$OUT/$1.ping" 2>&1 || true
  awk -F/ '/^rtt|^round-trip/ {print $5}' "$OUT/$1.ping"
}

IPERF_RESULT=""
iperf() { # tag -> IPERF_RESULT="status=ok|fail mbps=X retr=Y"
  start $NS_B "$OUT/$1.iperf-server.log" timeout -k 5 $((DUR + 40)) iperf3 -s -1 -p 5201
  local srv=$last _
  for _ in $(seq 50); do
    [[ -n "$(ip netns exec $NS_B ss -Hltn 'sport = :5201')" ]] && break
    sleep 0.1
  done
  local rc=0
  ip netns exec $NS_A timeout -k 5 $((DUR + 30)) iperf3 -c $TN_B -p 5201 -t "$DUR" -C "$CC" \
    --connect-timeout 10000 -J > "$OUT/$1.iperf.json" 2> "$OUT/$1.iperf.err" || rc=$?
  stop_pid "$srv"
  if [[ $rc -ne 0 ]] || ! jq -e '.end.sum_received' "$OUT/$1.iperf.json" > /dev/null 2>&1; then
    IPERF_RESULT="status=fail mbps=0 retr=0"
    return
  fi
  IPERF_RESULT=$(jq -r '.end | "status=ok mbps=\((.sum_received.bits_per_second / 1e4 | round) / 100) retr=\(.sum_sent.retransmits // 0)"' \
    "$OUT/$1.iperf.json")
}

run_wireguard_go() { # tag profile seed round
  local tag=$1
  log "$tag: wireguard-go, $2"
  start_relay "$tag" "$2" "$3"
  local s
  wg_go_up a wgimp-a $RL_A error $((DUR + 90)) "$OUT/$tag.wg-a.log"
  wg_go_up b wgimp-b $RL_B error $((DUR + 90)) "$OUT/$tag.wg-b.log"
  local wg_pids=("${PIDS[@]: -2}")
  tunnel_up 30 || die "$tag: no wireguard-go tunnel in 30 s"
  local rtt; rtt=$(rtt_ms "$tag")
  counters_start
  iperf "$tag"
  local kern; kern=$(counters_end)
  for s in "${wg_pids[@]}"; do stop_pid "$s"; done
  sleep 0.5
  stop_pid "$RELAY_PID"
  echo "RESULT profile=$2 round=$4 impl=wireguard-go $IPERF_RESULT rtt_ms=${rtt:-na} $kern relay_received=$(relay_stat "$tag" received) relay_lost=$(relay_stat "$tag" lost) relay_held=$(relay_stat "$tag" held) relay_queue_full=$(relay_stat "$tag" queue_full)" | tee -a "$OUT/results.txt"
}

probe_phase() { # tag
  local tag=$1
  start $NS_B "$OUT/$tag.recv-a2b.out" python3 "$here/probe.py" recv --bind $TN_B:6001 \
    --log "$OUT/$tag.recv-a2b" --max-seconds $((PROBE_SECS + 15)) --idle 4
  local r1=$last
  start $NS_A "$OUT/$tag.recv-b2a.out" python3 "$here/probe.py" recv --bind $TN_A:6002 \
    --log "$OUT/$tag.recv-b2a" --max-seconds $((PROBE_SECS + 15)) --idle 4
  local r2=$last
  sleep 0.5
  start $NS_A "$OUT/$tag.send-a2b.out" python3 "$here/probe.py" send --bind $TN_A --to $TN_B:6001 \
    --rate $PROBE_RATE --seconds "$PROBE_SECS" --size $PROBE_SIZE --log "$OUT/$tag.sent-a2b"
  local s1=$last
  start $NS_B "$OUT/$tag.send-b2a.out" python3 "$here/probe.py" send --bind $TN_B --to $TN_A:6002 \
    --rate $PROBE_RATE --seconds "$PROBE_SECS" --size $PROBE_SIZE --log "$OUT/$tag.sent-b2a"
  local s2=$last
  local p
  for p in $s1 $s2 $r1 $r2; do wait "$p" || die "$tag: a probe process failed (see $OUT/$tag.*.out)"; done
}

run_qgw() { # tag profile seed round
  local tag=$1
  log "$tag: qgw (hybrid, qkd required, rekey ${REKEY}s), $2"
  start_relay "$tag" "$2" "$3"
  rm -f "$OUT/$tag".audit-*.jsonl*
  qgw_config a $RL_A "$OUT/$tag.audit-a.jsonl" $REKEY
  qgw_config b $RL_B "$OUT/$tag.audit-b.jsonl" $REKEY
  local s life=$((DUR + PROBE_SECS + 120))
  qgw_up a "$OUT/$tag.qgw-a.log" $life
  local qa=$last
  qgw_up b "$OUT/$tag.qgw-b.log" $life
  local qb=$last
  local t0=$SECONDS
  tunnel_up 90 || die "$tag: no qgw tunnel in 90 s; see $OUT/$tag.qgw-a.log"
  local up_s=$((SECONDS - t0)) rtt t1 t2
  rtt=$(rtt_ms "$tag")
  counters_start
  t1=$(date +%s.%N)
  iperf "$tag"
  t2=$(date +%s.%N)
  local kern; kern=$(counters_end)
  probe_phase "$tag"
  sleep 1 # the relay's drop log and stats are flushed every 250 ms
  for s in a b; do
    ip netns exec "$(ns_of "$s")" "$BIN/qgw" status "qgwimp-$s" --json > "$OUT/$tag.status-$s.json" 2>&1 || true
  done
  stop_pid "$qa"
  stop_pid "$qb"
  stop_pid "$RELAY_PID"
  local verify=ok
  for s in a b; do
    "$BIN/qgw" audit verify --key "$WD/$s.mldsa.pub" "$OUT/$tag.audit-$s.jsonl"* > "$OUT/$tag.verify-$s.log" 2>&1 || verify=FAILED
  done
  local ea eb ga gb
  ea=$(grep -c '"event":"epoch_installed"' "$OUT/$tag.audit-a.jsonl") || true
  eb=$(grep -c '"event":"epoch_installed"' "$OUT/$tag.audit-b.jsonl") || true
  ga=$(python3 "$here/bench_report.py" max-gap "$OUT/$tag.audit-a.jsonl")
  gb=$(python3 "$here/bench_report.py" max-gap "$OUT/$tag.audit-b.jsonl")
  local ia ib
  ia=$(python3 "$here/bench_report.py" epochs-between "$t1" "$t2" "$OUT/$tag.audit-a.jsonl")
  ib=$(python3 "$here/bench_report.py" epochs-between "$t1" "$t2" "$OUT/$tag.audit-b.jsonl")
  local d attr=""
  for d in a2b b2a; do
    attr+=" $(python3 "$here/probe.py" attribute --sent "$OUT/$tag.sent-$d" --recv "$OUT/$tag.recv-$d" \
      --dir $d --wire-len $PROBE_WIRE --drops "$OUT/$tag.relay.drops" \
      --audit "$OUT/$tag.audit-a.jsonl" --audit "$OUT/$tag.audit-b.jsonl" | sed "s/\([a-z_]*\)=/${d}_\1=/g")"
  done
  echo "RESULT profile=$2 round=$4 impl=qgw $IPERF_RESULT rtt_ms=${rtt:-na} $kern up_s=$up_s epochs_a=$ea epochs_b=$eb iperf_epochs_a=$ia iperf_epochs_b=$ib max_gap_a=$ga max_gap_b=$gb audit=$verify relay_received=$(relay_stat "$tag" received) relay_lost=$(relay_stat "$tag" lost) relay_held=$(relay_stat "$tag" held) relay_queue_full=$(relay_stat "$tag" queue_full)$attr" | tee -a "$OUT/results.txt"
}

# ------------------------------------------------------------------ main
cleanup_command "$@"
while getopts ":t:n:p:P:o:C:Bh" opt; do
  case "$opt" in
    t) DUR=$OPTARG ;; n) ROUNDS=$OPTARG ;; p) PROFILES=$OPTARG ;; P) PROBE_SECS=$OPTARG ;; C) CC=$OPTARG ;;
    o) OUT=$OPTARG ;; B) BUILD=0 ;; h) sed -n '2,32p' "$0"; exit 0 ;;
    *) die "bad option; see -h" ;;
  esac
done
[[ "$DUR" =~ ^[0-9]+$ && $DUR -ge 2 && $DUR -le 300 ]] || die "-t must be 2..300"
[[ "$ROUNDS" =~ ^[0-9]+$ && $ROUNDS -ge 1 && $ROUNDS -le 20 ]] || die "-n must be 1..20"
grep -qw -- "$CC" /proc/sys/net/ipv4/tcp_available_congestion_control || die "-C: $CC is not available"
[[ "$PROBE_SECS" =~ ^[0-9]+$ && $PROBE_SECS -ge 5 && $PROBE_SECS -le 600 ]] || die "-P must be 5..600"
for p in ${PROFILES//,/ }; do profile_args "$p" > /dev/null; done
[[ $EUID -eq 0 ]] || die "run as root (network namespaces, TUN)"
need ip iperf3 jq wg python3 ping ss timeout
find_wireguard_go
n_prof=$(tr ',' '\n' <<< "$PROFILES" | grep -c .)
MAX_LIFE=$((ROUNDS * n_prof * (2 * DUR + PROBE_SECS + 200) + 300))

[[ -n "$OUT" ]] || OUT="$(mktemp -d /tmp/qgw-impaired.XXXXXX)"
mkdir -p "$OUT"
WD="$(mktemp -d /tmp/qgw-impaired-keys.XXXXXX)"
arm_cleanup
[[ $BUILD == 1 ]] && build_release impair_relay
for b in qgw qkd-kme-sim examples/impair_relay; do [[ -x "$BIN/$b" ]] || die "missing $BIN/$b (drop -B)"; done
: > "$OUT/results.txt"
# Is sch_netem really missing? (The relay is used either way: reproducible everywhere.)
netem=absent
setup_namespaces
ip netns exec $NS_M tc qdisc add dev impma root netem delay 1ms 2> /dev/null && netem=present
ip netns exec $NS_M tc qdisc del dev impma root 2> /dev/null || true
echo "META date=$(date -u +%FT%TZ) kernel=$(uname -r) cores=$(nproc) netem=$netem qgw=$(git -C "$repo" rev-parse --short HEAD) wireguard_go=$("$WGGO" --version | awk 'NR==1{print $2}') dur=$DUR rounds=$ROUNDS probe_s=$PROBE_SECS probe_rate=$PROBE_RATE probe_wire=$PROBE_WIRE rekey=$REKEY tcp_cc=$CC loadavg=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$OUT/results.txt"
make_keys
kme_config $KL_A
kme_start "$OUT/kme.log" "$MAX_LIFE"
seed=0
for ((round = 1; round <= ROUNDS; round++)); do
  for profile in ${PROFILES//,/ }; do
    seed=$((seed + 1))
    run_wireguard_go "r$round-$profile-wg" "$profile" $seed $round
    run_qgw "r$round-$profile-qgw" "$profile" $seed $round
  done
done
python3 "$here/bench_report.py" impaired "$OUT/results.txt" | tee "$OUT/table.md"
log "results: $OUT"

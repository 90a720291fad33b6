#!/usr/bin/env bash
# A bounded soak of a hybrid qgw pair (issue 11, property 12), run from the bench scripts, not CI:
# two sites in namespaces (underlay 10.220.0.1 <-> 10.220.0.2, tunnel 10.201.0.1 <-> 10.201.0.2),
# hybrid: on, qkd.policy: required, rekey_after_seconds: 5 (the shortest allowed), each site's KME
# from qkd-kme-sim over ETSI 014 + mutual TLS, and for MINUTES minutes:
#   * mixed traffic: iperf3 TCP at a bounded rate (-b 20M, 60 s segments, alternating direction),
#     a ping every 0.2 s and a small numbered UDP stream (20/s), the last two carrying a marker;
#   * the KME simulator stopped at 25 % of the run and started again 10 s later (5 s in runs under
#     5 minutes), which loses every key it held; at 65 % one site's qgw killed with SIGKILL and
#     started again (site B, the hybrid slave; SOAK_RESTART=a: site A, the master);
#   * every SAMPLE seconds (10; 2 in runs under 5 minutes) each qgw's VmRSS and Threads
#     (/proc/PID/status) and open fds (/proc/PID/fd) into samples.csv;
#   * tcpdump on the underlay: the marker must never appear, nor a packet to or from a tunnel
#     address; the same search on site A's tunnel interface must find it (the marker is there);
#   * at the end `qgw audit verify --key` on each site's audit log.
# Verdict: PASS only if RSS, fds and threads are flat (bench_report.py soak: after a warm-up,
# RSS's last-quarter mean at most 10 % above its first-quarter mean, fds' last-quarter maximum at
# most 2 above the first quarter's, threads' not above; a restarted qgw judged per life), no
# plaintext on the underlay, both audit logs verify, both sites install epochs again after the
# KME restart (before the peer restart) and after the peer restart, and no ping or UDP probe is
# lost outside 30 s after each restart.
#
#   sudo gateway/bench/soak.sh [MINUTES]      (default 10; `soak.sh 1` is a smoke test)
#   sudo gateway/bench/soak.sh cleanup        (remove what a killed run left behind)
# SOAK_RESTART=a|b picks the site whose qgw is killed (default b, the slave; roles are pinned:
# a master, b slave). SOAK_OUT=DIR keeps the results there (default: a new /tmp/qgw-soak.*); SOAK_NO_BUILD=1 skips
# the release build. Traffic stays inside the namespaces this script creates; everything it starts
# is bounded in time and ended by PID on exit (also on failure or Ctrl-C).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$here/lib.sh" # repo, BIN; log/die, start/stop_pid/child_of, cleanup, keys, KME, qgw configs

NS_A=qgwsoak-a NS_B=qgwsoak-b
UL_A=10.220.0.1 UL_B=10.220.0.2 TN_A=10.201.0.1 TN_B=10.201.0.2
PORT=51820 REKEY=5 MTU=1420 IPERF_RATE=20M
MARKER="QGWSOAKMARK!" # 12 bytes: ping -p repeats it, the UDP stream fills its payload with it
RECOVERY=30           # seconds after a restart in which lost packets are expected
BENCH_NAME=soak BENCH_NS=("$NS_A" "$NS_B") QGW_IF=qgwsoak OUT=""

# ------------------------------------------------------------------ processes and cleanup
cleanup_hook() { # run first by cleanup(), the EXIT trap
  # The iperf3 loop is this shell's own child: end it only while it still is.
  if [[ -n "$LOOP_PID" ]] && [[ "$(ps -o ppid= -p "$LOOP_PID" 2> /dev/null | tr -d ' ')" == "$$" ]]; then
    kill "$LOOP_PID" 2> /dev/null
  fi
}

# ------------------------------------------------------------------ set-up
setup() {
  pair_setup soaka soakb
  qgw_config a $UL_B "$OUT/audit-a.jsonl" $REKEY
  qgw_config b $UL_A "$OUT/audit-b.jsonl" $REKEY
}

KME_PID="" LOOP_PID=""
declare -A QGW=() WRAP=() # site -> qgw PID, PID of its timeout wrapper
start_kme() { kme_start "$OUT/kme-$1.log" "$LIFE"; } # life-number
start_qgw() { # site life-number
  qgw_up "$1" "$OUT/qgw-$1-$2.log" "$LIFE"
  WRAP[$1]=$last
  QGW[$1]=$(child_of "$last") || die "qgw at site $1 did not start"
}
sample() { # one CSV row per running qgw
  local now site pid
  now=$(date +%s.%N)
  for site in a b; do
    pid=${QGW[$site]}
    [[ -r /proc/$pid/status ]] || continue
    local rss thr fds
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    thr=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")
    fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2> /dev/null | wc -l)
    echo "$now,$(awk -v a="$now" -v b="$T0" 'BEGIN{printf "%.1f", a-b}'),$site,$pid,$rss,$fds,$thr" >> "$OUT/samples.csv"
  done
}
capture() { # NS IFACE NAME: tcpdump of IFACE into a FIFO that grep searches for the marker
  mkfifo "$WD/$3.fifo"
  start "$1" "$OUT/$3.grep" grep -a -c -F "$MARKER" "$WD/$3.fifo"
  CAPS+=("$last")
  start "$1" "$OUT/$3.tcpdump.log" timeout -k 5 "$LIFE" tcpdump -i "$2" -n -s 0 -U -w "$WD/$3.fifo"
  DUMPS+=("$last")
}
count_capture() { # NS IFACE NAME FILTER: tcpdump counting the packets that match FILTER
  start "$1" "$OUT/$3.tcpdump.log" timeout -k 5 "$LIFE" tcpdump -i "$2" -n -w /dev/null "$4"
  DUMPS+=("$last")
}

# ------------------------------------------------------------------ traffic
iperf_loop() { # seconds: TCP at a bounded rate in segments, alternating direction
  local end=$((SECONDS + $1)) i=0 seg rev
  while ((SECONDS + 5 < end)); do
    seg=$((end - SECONDS < SEG ? end - SECONDS : SEG))
    rev=""
    ((i % 2)) && rev=-R
    i=$((i + 1))
    if ip netns exec $NS_A timeout -k 5 $((seg + 30)) iperf3 -c $TN_B -p 5201 -t "$seg" -b $IPERF_RATE $rev \
      --connect-timeout 10000 -J > "$OUT/iperf-$i.json" 2> /dev/null; then
      echo "segment $i ok $(jq -r '.end.sum_received.bits_per_second / 1e6 | floor' "$OUT/iperf-$i.json") Mbit/s $rev"
    else
      echo "segment $i FAILED $rev"
      sleep 2
    fi
  done
}

start_traffic() {
  local secs=$((DURATION - 10))
  start $NS_B "$OUT/iperf-server.log" timeout -k 5 "$LIFE" iperf3 -s -p 5201
  start $NS_B "$OUT/udp-recv.out" python3 "$here/probe.py" recv --bind 0.0.0.0:6001 \
    --log "$OUT/udp.recv" --max-seconds $((secs + 20)) --idle 10
  sleep 0.5
  start $NS_A "$OUT/udp-send.out" python3 "$here/probe.py" send --bind $TN_A --to $TN_B:6001 \
    --rate 20 --seconds "$secs" --size 100 --marker "$MARKER" --log "$OUT/udp.sent"
  local hex
  hex=$(printf '%s' "$MARKER" | od -An -tx1 | tr -d ' \n')
  start $NS_A "$OUT/ping.log" ping -D -O -i 0.2 -c $((secs * 5)) -W 1 -p "$hex" $TN_B
  TRAFFIC=("${PIDS[@]: -3}")
  iperf_loop "$secs" > "$OUT/iperf-segments.log" 2>&1 &
  LOOP_PID=$! # a subshell of this script (not in a namespace): ended in cleanup()
}

# ------------------------------------------------------------------ main
cleanup_command "$@"
MINUTES=${1:-10}
RESTART=${SOAK_RESTART:-b}
[[ $RESTART == a || $RESTART == b ]] || die "SOAK_RESTART must be a or b"
[[ "$MINUTES" =~ ^[0-9]+$ && $MINUTES -ge 1 && $MINUTES -le 120 ]] || die "MINUTES must be 1..120"
[[ $EUID -eq 0 ]] || die "run as root (network namespaces, TUN)"
ensure_tcpdump
need ip iperf3 jq python3 ping tcpdump timeout od
DURATION=$((MINUTES * 60))
SAMPLE=10 SEG=60 KME_DOWN=10
((DURATION < 300)) && SAMPLE=2 SEG=$((DURATION / 3)) KME_DOWN=5
WARMUP=$((DURATION / 10 > 60 ? 60 : DURATION / 10))
LIFE=$((DURATION + 180))
OUT="${SOAK_OUT:-$(mktemp -d /tmp/qgw-soak.XXXXXX)}"
mkdir -p "$OUT"
rm -f "$OUT"/audit-?.jsonl*
WD="$(mktemp -d /tmp/qgw-soak-keys.XXXXXX)"
arm_cleanup
# shellcheck disable=SC2119 # no examples to build
[[ "${SOAK_NO_BUILD:-0}" != 1 ]] && build_release
setup
declare -a CAPS=() DUMPS=() TRAFFIC=()
echo "t,elapsed_s,site,pid,rss_kb,fds,threads" > "$OUT/samples.csv"
: > "$OUT/events.txt"
start_kme 1
T0=$(date +%s.%N)
start_qgw a 1
start_qgw b 1
tunnel_up 60 || die "no tunnel in 60 s; see $OUT/qgw-a-1.log"
log "tunnel up; soaking for $MINUTES min (samples every ${SAMPLE}s into $OUT/samples.csv)"
capture $NS_A soaka underlay
capture $NS_A qgwsoak-a tunnel
count_capture $NS_A soaka inner "net 10.201.0.0/24"
sleep 1
start_traffic
kme_at=$((DURATION * 25 / 100)) peer_at=$((DURATION * 65 / 100))
kme_state=up peer_state=up next_sample=0
t0=$SECONDS
while ((SECONDS - t0 < DURATION)); do
  el=$((SECONDS - t0))
  if ((el >= next_sample)); then
    sample
    next_sample=$((next_sample + SAMPLE))
  fi
  if [[ $kme_state == up ]] && ((el >= kme_at)); then
    log "KME restart: stopping the KME simulator for ${KME_DOWN}s"
    echo "kme_stop $(date +%s.%N)" >> "$OUT/events.txt"
    stop_pid "$KME_PID"
    kme_state=down
  elif [[ $kme_state == down ]] && ((el >= kme_at + KME_DOWN)); then
    start_kme 2
    echo "kme_start $(date +%s.%N)" >> "$OUT/events.txt"
    kme_state=restarted
    log "KME simulator started again"
  fi
  if [[ $peer_state == up ]] && ((el >= peer_at)); then
    log "peer restart: kill -9 site $RESTART's qgw (pid ${QGW[$RESTART]}), then start it again"
    echo "peer_kill $(date +%s.%N)" >> "$OUT/events.txt"
    kill -KILL "${QGW[$RESTART]}"
    wait "${WRAP[$RESTART]}" 2> /dev/null || true
    start_qgw "$RESTART" 2
    echo "peer_start $(date +%s.%N)" >> "$OUT/events.txt"
    peer_state=restarted
  fi
  sleep 1
done
log "soak time over; waiting for the traffic to end"
for p in "${TRAFFIC[@]}" "$LOOP_PID"; do wait "$p" 2> /dev/null || true; done
sample
sleep 1
for p in "${DUMPS[@]}"; do stop_pid "$p"; done
for p in "${CAPS[@]}"; do wait "$p" 2> /dev/null || true; done
stop_pid "${WRAP[a]}"
stop_pid "${WRAP[b]}"
stop_pid "$KME_PID"

# ------------------------------------------------------------------ verdict
fail=()
python3 "$here/bench_report.py" soak "$OUT/samples.csv" "$WARMUP" | tee "$OUT/resources.md"
grep -q '^FLAT=yes' "$OUT/resources.md" || fail+=("resources not flat")
under=$(cat "$OUT/underlay.grep") tun=$(cat "$OUT/tunnel.grep")
captured=$(grep -o '^[0-9]* packets captured' "$OUT/underlay.tcpdump.log" | awk '{print $1}')
kdrop=$(grep -o '^[0-9]* packets dropped by kernel' "$OUT/underlay.tcpdump.log" | awk '{print $1}')
inner=$(grep -o '^[0-9]* packets captured' "$OUT/inner.tcpdump.log" | awk '{print $1}')
echo "underlay capture: ${captured:-?} packets (${kdrop:-?} dropped by the kernel), marker in ${under:-?} of them, ${inner:-?} to or from a tunnel address; tunnel interface: marker in ${tun:-?} (positive control)"
[[ "$under" == 0 ]] || fail+=("marker seen on the underlay")
[[ "$inner" == 0 ]] || fail+=("packets to or from tunnel addresses on the underlay")
[[ "${tun:-0}" -gt 0 ]] || fail+=("positive control failed: marker not seen on the tunnel interface")
[[ "${kdrop:-1}" == 0 ]] || fail+=("the underlay capture dropped packets")
for s in a b; do
  if "$BIN/qgw" audit verify --key "$OUT/$s.mldsa.pub" "$OUT/audit-$s.jsonl"* > "$OUT/audit-verify-$s.log" 2>&1; then
    echo "audit site $s: $(grep -m1 '^total' "$OUT/audit-verify-$s.log"); $(grep -m1 'OK:' "$OUT/audit-verify-$s.log")"
  else
    echo "audit site $s: FAILED: $(grep -m1 FAILED "$OUT/audit-verify-$s.log")"
    fail+=("audit log of site $s does not verify")
  fi
done
ev() { awk -v e="$1" '$1 == e {print $2}' "$OUT/events.txt"; }
for s in a b; do
  total=$(grep -c '"event":"epoch_installed"' "$OUT"/audit-$s.jsonl* | awk -F: '{s += $NF} END {print s}')
  gap=$(python3 "$here/bench_report.py" max-gap "$OUT"/audit-$s.jsonl*)
  after_kme=$(python3 "$here/bench_report.py" epochs-between "$(ev kme_start)" "$(ev peer_kill)" "$OUT"/audit-$s.jsonl*)
  first_kme=$(python3 "$here/bench_report.py" first-after "$(ev kme_start)" "$OUT"/audit-$s.jsonl*)
  after_peer=$(python3 "$here/bench_report.py" epochs-between "$(ev peer_start)" 1e12 "$OUT"/audit-$s.jsonl*)
  first_peer=$(python3 "$here/bench_report.py" first-after "$(ev peer_start)" "$OUT"/audit-$s.jsonl*)
  echo "epochs site $s: $total installed (one every ${REKEY}s expected: about $((DURATION / REKEY))), longest gap ${gap}s; between the KME's return and the peer restart $after_kme (first after ${first_kme}s), after the peer restart $after_peer (first after ${first_peer}s)"
  [[ $after_kme -ge 1 ]] || fail+=("site $s installed no epoch between the KME's return and the peer restart")
  [[ $after_peer -ge 1 ]] || fail+=("site $s installed no epoch after the peer restart")
done
python3 "$here/bench_report.py" ping-logs "$OUT/ping.log" "$OUT/ping.sent" "$OUT/ping.recv"
windows="$(ev kme_stop) $(ev kme_start) $(ev peer_kill) $(ev peer_start)"
for stream in ping udp; do
  # shellcheck disable=SC2086 # the windows are separate arguments
  line=$(python3 "$here/bench_report.py" lost-outside "$OUT/$stream.sent" "$OUT/$stream.recv" "$RECOVERY" $windows)
  echo "$stream: $line"
  [[ "$line" == *" lost_outside=0 "* ]] || fail+=("$stream lost packets outside the restart windows")
done
echo "iperf3: $(grep -c ' ok ' "$OUT/iperf-segments.log" || true) segments ok, $(grep -c FAILED "$OUT/iperf-segments.log" || true) failed ($OUT/iperf-segments.log)"
if [[ ${#fail[@]} -eq 0 ]]; then
  echo "VERDICT: PASS ($MINUTES min soak; results in $OUT)"
else
  echo "VERDICT: FAIL: $(IFS=';'; echo "${fail[*]}") (results in $OUT)"
  exit 1
fi

#!/usr/bin/env bash
# Clinical traffic classes on a shaped WAN: telemonitoring delay and video jitter, idle and while
# a DICOM bulk transfer saturates the link, through qgw with classes on, qgw with classes off, qgw
# with the kernel's HTB on its TUN device and wireguard-go, over the same 200 Mbit/s underlay. The
# scenario and its probes are the demo's (scripts/demo/clinical.sh, clinical.py,
# clinical_report.py): one harness, two users.
#
#   qgwcls-a 10.213.0.1 ──[tbf 200mbit burst 64kb latency 100ms on clsa]── 10.213.0.2 qgwcls-b
#   tunnel 10.201.0.1/24                                                tunnel 10.201.0.2/24
#
# For every round, and in it every variant (a fresh pair of daemons each):
#   idle     telemonitoring (MQTT every 20 ms, TCP 1883) and video (RTP-like UDP 4.08 Mbit/s to
#            port 20000) for -t seconds: one-way delay p50/p99/max, jitter p99, loss;
#   load     the same while storescu streams a CT study to storescp (TCP 11112) in a loop;
#   imaging  (classes off only) imaging alone: the capacity "remaining" is measured against.
# Variants: qgw-on (`egress_rate: 190mbit` on both sites' peer), qgw-off (no egress_rate: today's
# data path), kernel (qgw with classes off, and once its device exists, the kernel's answer on site
# A's TUN device: an HTB root at the same 190 Mbit/s, the four classes in qgw's order and shares,
# u32 filters on the built-in ports, pfifo leaves of 1000 packets; clinical.sh's
# clin_kernel_classes, whose doc says what it cannot do here: no AQM, no flow fairness inside a
# class, and it counts inner bytes and sees qgw's TSO super-packets, as qgw's TUN offloads stay on;
# its tc class counters go into the results file), wggo (wireguard-go), and underlay: no tunnel,
# the probes straight over the shaped veth, the rig's own floor (Python probes, a broker, a shared
# VM). 190 Mbit/s is 95 % of the 200 Mbit/s WAN: the scheduler counts the outer datagram while
# tbf counts the Ethernet frame (14 bytes more a packet) and drains its bucket in bursts, so a rate
# a little under the WAN's keeps tbf's FIFO empty and the queue inside qgw, where the classes are
# still visible; at 100 % the queue would form in tbf again. The kernel's HTB gets the same 190
# Mbit/s but of inner bytes: full 1420-byte packets are 1494-byte frames on the WAN, so it lets
# through about 199.9 Mbit/s of frames, and tbf's FIFO may hold part of the queue.
# qgw runs plain WireGuard unless -H (hybrid: X25519 + ML-KEM + QKD from qkd-kme-sim, required,
# a master and b slave, as the demo). -c CC sets net.ipv4.tcp_congestion_control in both
# namespaces (per network namespace) for the run; without it, the machine's (this VM's is bbr,
# Debian's cubic); the META line records it. A namespace other than the host's may only choose an
# algorithm in net.ipv4.tcp_allowed_congestion_control (EPERM otherwise; this VM allows reno and
# bbr), so for the run CC is added to that host-wide list, which is restored on exit.
#
# Prints the markdown table (medians over rounds) and the issue's targets as text, and writes
# them, with META and the raw result lines, to -r (default gateway/bench/results/DATE-classes.txt).
#
#   sudo gateway/bench/classes.sh [-t SECS] [-n ROUNDS] [-v VARIANTS] [-c CC] [-H] [-o DIR] [-r FILE] [-B]
#   sudo gateway/bench/classes.sh cleanup      # remove what a killed run left behind
#
#   -t  seconds each phase measures (20)     -n  rounds (1)
#   -v  comma list of qgw-on,qgw-off,kernel,wggo,underlay (all)   -H  qgw hybrid with the KME simulator
#   -c  TCP congestion control in both sites (the machine's)   -B  skip the release build
#   -o  logs directory (default: a new /tmp/qgw-classes.*)
# Traffic stays inside the namespaces this script creates; every process it starts is bounded in
# time and ended by PID on exit (also on failure or Ctrl-C).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$here/lib.sh" # repo, BIN; log/die, start/stop_pid, cleanup, keys, KME, qgw configs, wireguard-go
# shellcheck source=scripts/demo/clinical.sh
source "$repo/scripts/demo/clinical.sh" # clin_shape, clin_services, clin_run, clin_egress_rate

NS_A=qgwcls-a NS_B=qgwcls-b
UL_A=10.213.0.1 UL_B=10.213.0.2 TN_A=10.201.0.1 TN_B=10.201.0.2
PORT=51820 MTU=1420 REKEY=10 EGRESS_RATE=190mbit
DUR=20 ROUNDS=1 VARIANTS=qgw-on,qgw-off,kernel,wggo,underlay HYBRID=0 OUT="" RESULT="" BUILD=1 CC=""
ALL_VARIANTS=" qgw-on qgw-off kernel wggo underlay "
BENCH_NAME=classes BENCH_NS=("$NS_A" "$NS_B") QGW_IF=qgwcls
BENCH_STALE=(/var/run/wireguard/wgcls-a.sock /var/run/wireguard/wgcls-b.sock)

cleanup_command "$@"
args=()
for a in "$@"; do if [[ $a == --hybrid ]]; then args+=(-H); else args+=("$a"); fi; done
set -- "${args[@]+"${args[@]}"}"
while getopts "t:n:v:c:Ho:r:B" o; do
  case $o in
    t) DUR=$OPTARG ;;
    n) ROUNDS=$OPTARG ;;
    v) VARIANTS=$OPTARG ;;
    c) CC=$OPTARG ;;
    H) HYBRID=1 ;;
    o) OUT=$OPTARG ;;
    r) RESULT=$OPTARG ;;
    B) BUILD=0 ;;
    *) sed -n '2,/^set -euo/{/^set -euo/!p}' "$0"; exit 2 ;;
  esac
done
[[ $(id -u) == 0 ]] || die "run as root (namespaces, tc)"
need ip tc ping python3 mosquitto storescu storescp dump2dcm
IFS=, read -r -a variants <<< "$VARIANTS"
for v in "${variants[@]}"; do
  [[ $ALL_VARIANTS == *" $v "* ]] || die "unknown variant $v (one of:$ALL_VARIANTS)"
done
[[ ,$VARIANTS, == *,wggo,* ]] && { need wg; find_wireguard_go; }
if [[ -n $CC ]]; then
  avail=$(< /proc/sys/net/ipv4/tcp_available_congestion_control)
  [[ " $avail " == *" $CC "* ]] \
    || die "-c $CC: no such TCP congestion control in this kernel ($(uname -r)); available: $avail (a modular kernel may need modprobe tcp_$CC)"
fi
OUT=${OUT:-$(mktemp -d /tmp/qgw-classes.XXXXXX)}
RESULT=${RESULT:-$repo/gateway/bench/results/$(date -u +%F)-classes.txt}
mkdir -p "$OUT"
WD=$(mktemp -d)
info() { log "$*"; }
ALLOWED_CC=/proc/sys/net/ipv4/tcp_allowed_congestion_control ALLOWED_BEFORE=""
cleanup_hook() {
  clin_stop_all
  if [[ -n $ALLOWED_BEFORE ]]; then echo "$ALLOWED_BEFORE" > "$ALLOWED_CC"; fi
}
arm_cleanup
# shellcheck disable=SC2119 # no example needed
[[ $BUILD == 1 ]] && build_release

# shellcheck disable=SC2034 # read by clinical.sh
CLIN_A=$NS_A CLIN_B=$NS_B CLIN_WAN_IF=clsa CLIN_DST=$TN_B CLIN_OUT=$OUT CLIN_SECS=$DUR
make_namespaces
if [[ -n $CC ]]; then
  allowed=$(< "$ALLOWED_CC")
  if [[ " $allowed " != *" $CC "* ]]; then
    ALLOWED_BEFORE=$allowed
    echo "$allowed $CC" > "$ALLOWED_CC" || die "could not add $CC to $ALLOWED_CC"
    log "$CC added to $ALLOWED_CC for this run (was: $allowed)"
  fi
  for ns in "$NS_A" "$NS_B"; do
    ip netns exec "$ns" sysctl -qw net.ipv4.tcp_congestion_control="$CC" || die "could not set tcp_congestion_control=$CC in $ns"
    [[ $(ip netns exec "$ns" sysctl -n net.ipv4.tcp_congestion_control) == "$CC" ]] || die "tcp_congestion_control in $ns is not $CC"
  done
fi
veth $NS_A clsa $UL_A $NS_B clsb $UL_B
make_keys
clin_shape
if [[ $HYBRID == 1 ]]; then
  kme_config "$UL_A"
  kme_start "$OUT/kme.log" $((ROUNDS * 4 * (4 * DUR + 120)))
fi

tunnel_start() { # VARIANT: both sites' tunnel, up; TUN_PIDS
  local v=$1 s ep
  TUN_PIDS=() CLIN_DST=$TN_B
  if [[ $v == underlay ]]; then
    CLIN_DST=$UL_B # no tunnel: the probes straight over the shaped veth
    return 0
  elif [[ $v == wggo ]]; then
    wg_go_up a wgcls-a $UL_B error $((4 * DUR + 120)) "$OUT/$v.wggo-a.log"
    TUN_PIDS+=("$last")
    wg_go_up b wgcls-b $UL_A error $((4 * DUR + 120)) "$OUT/$v.wggo-b.log"
    TUN_PIDS+=("$last")
  else
    for s in a b; do
      ep=$UL_B
      [[ $s == b ]] && ep=$UL_A
      if [[ $HYBRID == 1 ]]; then qgw_config $s $ep "$OUT/$v.audit-$s.log" $REKEY; else qgw_plain_config $s $ep; fi
      if [[ $v == qgw-on ]]; then
        clin_egress_rate "$WD/site-$s.yaml" $EGRESS_RATE
        "$BIN/qgw" check-config "$WD/site-$s.yaml" > "$OUT/check-config.log" 2>&1 \
          || die "this qgw does not accept egress_rate (classes not in this build; try -v qgw-off,wggo): $(tail -n 2 "$OUT/check-config.log")"
      fi
      qgw_up $s "$OUT/$v.qgw-$s.log" $((4 * DUR + 120))
      TUN_PIDS+=("$last")
    done
  fi
  tunnel_up 30 || die "$v: no tunnel"
  # The kernel's classes on site A's TUN device, once qgw (classes off) has created it.
  if [[ $v == kernel ]]; then clin_kernel_classes "$QGW_IF-a" $EGRESS_RATE; fi
}
status_json() { # VARIANT TAG: site A's qgw status (and the kernel's tc class counters), kept
  [[ $1 == wggo || $1 == underlay ]] && return 0
  if [[ $1 == kernel ]]; then
    ip netns exec $NS_A tc -s class show dev $QGW_IF-a > "$OUT/$1.$2.tc-a.txt" 2>&1 || true
  fi
  ip netns exec $NS_A "$BIN/qgw" status $QGW_IF-a --json > "$OUT/$1.$2.status-a.json" 2> /dev/null || true
}

clin_services
meta="META kernel=$(uname -r) tcp_cc=$(ip netns exec $NS_A sysctl -n net.ipv4.tcp_congestion_control)\
 tbf=\"${CLIN_TBF[*]}\" egress_rate=$EGRESS_RATE secs=$DUR rounds=$ROUNDS hybrid=$HYBRID\
 storescu_streams=$CLIN_STREAMS htb_pfifo_limit=$CLIN_HTB_LIMIT commit=$(git -C "$repo" rev-parse --short HEAD)"
log "$meta"
for ((round = 1; round <= ROUNDS; round++)); do
  for v in "${variants[@]}"; do
    log "round $round: $v"
    tunnel_start "$v"
    sleep 1
    clin_run "$v" idle "$round" > /dev/null
    clin_run "$v" load "$round" > /dev/null
    status_json "$v" "r$round"
    [[ $v == qgw-off ]] && clin_run "$v" imaging "$round" > /dev/null
    for p in "${TUN_PIDS[@]}"; do stop_pid "$p"; done
  done
done

{
  echo "# gateway/bench/classes.sh -t $DUR -n $ROUNDS -v $VARIANTS${CC:+ -c $CC}$([[ $HYBRID == 1 ]] && echo ' -H'), $(date -u '+%F %H:%M UTC')"
  echo "$meta"
  echo
  python3 "$repo/scripts/demo/clinical_report.py" table "$OUT/results.jsonl"
  for f in "$OUT"/qgw-on.r*.status-a.json; do
    [[ -f $f ]] || continue
    echo
    echo "Site A's classes after $(basename "$f" .status-a.json) (qgw status --json; queue p99 of the last window):"
    python3 "$repo/scripts/demo/clinical_report.py" classes "$f" | sed 's/^/    /'
  done
  for f in "$OUT"/kernel.r*.tc-a.txt; do
    [[ -f $f ]] || continue
    echo
    echo "Site A's HTB classes on its TUN device after $(basename "$f" .tc-a.txt) (tc -s class show; 1:10 telemonitoring,"
    echo "1:20 telemedicine, 1:30 imaging, 1:40 default; bytes and packets as the qdisc counts them: inner, TSO super-packets):"
    sed 's/^/    /' "$f"
  done
  echo
  echo "Raw results (one line per variant, phase and round):"
  sed 's/^/    /' "$OUT/results.jsonl"
} > "$OUT/table.txt"
mkdir -p "$(dirname "$RESULT")"
cp "$OUT/table.txt" "$RESULT"
cat "$OUT/table.txt"
log "table in $RESULT; logs in $OUT"

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
repo="$(cd "$here/../.." && pwd)"
BIN="$repo/target/release"

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

log() { printf '[impaired %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

profile_args() { # name -> impair_relay options
  case "$1" in
    clean) echo "--loss-pct 0" ;;
    loss2-delay20) echo "--loss-pct 2 --delay-ms 20" ;;
    loss1-reorder25) echo "--loss-pct 1 --reorder-pct 25 --reorder-ms 15" ;;
    *) die "unknown profile $1 (clean, loss2-delay20, loss1-reorder25)" ;;
  esac
}

# ------------------------------------------------------------------ processes and cleanup
WD="" NS_MADE=0
declare -a PIDS=()
start() { # NS LOG CMD...: run CMD in NS in the background, record its PID in $last
  local ns=$1 out=$2
  shift 2
  ip netns exec "$ns" "$@" < /dev/null > "$out" 2>&1 &
  last=$!
  PIDS+=("$last")
}
in_our_ns() { ip netns identify "$1" 2> /dev/null | grep -qxE "$NS_A|$NS_M|$NS_B"; }
stop_pid() { # PID: TERM, up to 5 s, then KILL; only PIDs this script started, and only while they
  local p=$1 _ # still run in one of its namespaces (so a recycled PID is never hit)
  if ! kill -0 "$p" 2> /dev/null || ! in_our_ns "$p"; then
    wait "$p" 2> /dev/null || true
    return 0
  fi
  kill -TERM "$p" 2> /dev/null || true
  for _ in $(seq 50); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2> /dev/null || true
  wait "$p" 2> /dev/null || true
}
our_ns() { ip netns list | awk '{print $1}' | grep -xE "$NS_A|$NS_M|$NS_B" || true; }
remove_namespaces() {
  local ns p
  for ns in $(our_ns); do
    # Whatever still runs in these namespaces was started by this script (or a killed run of it).
    for p in $(ip netns pids "$ns" 2> /dev/null); do stop_pid "$p"; done
    ip netns del "$ns" 2> /dev/null || true
  done
  rm -f /var/run/wireguard/wgimp-a.sock /var/run/wireguard/wgimp-b.sock
}
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  local p
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  [[ $NS_MADE == 1 ]] && remove_namespaces
  [[ -n "$WD" ]] && rm -rf "$WD" # keys and configs; results stay in $OUT
  [[ $rc -ne 0 ]] && log "failed (exit $rc); logs in $OUT"
  exit "$rc"
}

# ------------------------------------------------------------------ set-up
build() {
  log "cargo build --release: qgw, qkd-kme-sim (feature sim), example impair_relay"
  (cd "$repo" && nice -n 10 cargo build --release --locked -q -p gateway --bin qgw --example impair_relay \
    && nice -n 10 cargo build --release --locked -q -p qkd-link --features sim --bin qkd-kme-sim)
}

veth() { # NS1 IF1 ADDR1 NS2 IF2 ADDR2
  ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
  ip -n "$1" addr add "$3/24" dev "$2"
  ip -n "$4" addr add "$6/24" dev "$5"
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
}

setup_namespaces() {
  [[ -z "$(our_ns)" ]] || die "namespaces of an earlier run exist: $0 cleanup"
  NS_MADE=1
  local ns
  for ns in $NS_A $NS_M $NS_B; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
  veth $NS_A impa $UL_A $NS_M impma $RL_A
  veth $NS_M impmb $RL_B $NS_B impb $UL_B
  veth $NS_A impka $KL_A $NS_B impkb $KL_B
  # The middle namespace only relays UDP: no forwarding between its two links.
  ip netns exec $NS_M sysctl -qw net.ipv4.ip_forward=0
}

start_kme() {
  "$BIN/qkd-kme-sim" pki --out "$WD/pki" --san $KL_A > /dev/null
  cat > "$WD/kme.yaml" << EOF
pki_dir: pki
ca: ca.pem
admin:
  listen: 127.0.0.1:8440
limits: { key_size: 256, min_key_size: 64, max_key_size: 1024, max_key_per_request: 16, max_sae_id_count: 0 }
kmes:
  - { id: KME_A, listen: "127.0.0.1:8441", saes: [SAE_A], cert: kme_a.pem, key: kme_a.key }
  - { id: KME_B, listen: "$KL_A:8442", saes: [SAE_B], cert: kme_b.pem, key: kme_b.key }
links:
  - { kmes: [KME_A, KME_B], secret_key_rate_bps: 500000, max_key_count: 100000, initial_key_count: 2000 }
EOF
  start $NS_A "$OUT/kme.log" timeout -k 5 "$MAX_LIFE" "$BIN/qkd-kme-sim" serve --config "$WD/kme.yaml"
  local _
  for _ in $(seq 100); do grep -q '^ready' "$OUT/kme.log" && return 0; sleep 0.1; done
  die "KME simulator did not start: $(tail -n 3 "$OUT/kme.log")"
}

make_keys() {
  (
    umask 077
    local s
    for s in a b; do
      "$BIN/qgw" genkey > "$WD/$s.key"
      "$BIN/qgw" pubkey < "$WD/$s.key" > "$WD/$s.pub"
      "$BIN/qgw" genkey --mldsa > "$WD/$s.mldsa"
      "$BIN/qgw" pubkey --mldsa < "$WD/$s.mldsa" > "$WD/$s.mldsa.pub"
    done
  )
}

qgw_config() { # site peer tunnel-addr peer-tunnel endpoint kme audit-log role -> stdout
  local s=$1 p=$2
  cat << EOF
interface:
  name: qgwimp-$s
  address: $3/24
  listen_port: $PORT
  private_key_file: $WD/$s.key
  mldsa_private_key_file: $WD/$s.mldsa
  mtu: $MTU
  uapi: false
qkd:
  kme_url: https://$6
  sae_id: SAE_${s^^}
  ca_file: $WD/pki/ca.pem
  cert_file: $WD/pki/sae_$s.pem
  key_file: $WD/pki/sae_$s.key
peers:
  - name: site-$p
    public_key: "$(cat "$WD/$p.pub")"
    endpoint: $5
    allowed_ips: [$4/32]
    hybrid: on
    mldsa_public_key_file: $WD/$p.mldsa.pub
    qkd: { peer_sae_id: SAE_${p^^}, policy: required, role: $8 }
    rekey_after_seconds: $REKEY
audit:
  path: $7
  checkpoint_seconds: 5
EOF
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

tunnel_up() { # seconds: ping a -> b until it answers
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    ip netns exec $NS_A ping -c 1 -W 1 $TN_B > /dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
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
  local s ns peer ep addr d
  for s in a b; do
    if [[ $s == a ]]; then ns=$NS_A peer=b ep=$RL_A addr=$TN_A d=$TN_B; else ns=$NS_B peer=a ep=$RL_B addr=$TN_B d=$TN_A; fi
    start "$ns" "$OUT/$tag.wg-$s.log" env LOG_LEVEL=error timeout -k 5 $((DUR + 90)) "$WGGO" -f "wgimp-$s"
    local _
    for _ in $(seq 50); do ip netns exec "$ns" wg show "wgimp-$s" > /dev/null 2>&1 && break; sleep 0.1; done
    ip netns exec "$ns" wg set "wgimp-$s" private-key "$WD/$s.key" listen-port $PORT \
      peer "$(cat "$WD/$peer.pub")" allowed-ips "$d/32" endpoint "$ep:$PORT"
    ip -n "$ns" addr add "$addr/24" dev "wgimp-$s"
    ip -n "$ns" link set "wgimp-$s" mtu $MTU up
  done
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
  qgw_config a b $TN_A $TN_B $RL_A:$PORT 127.0.0.1:8441 "$OUT/$tag.audit-a.jsonl" master > "$WD/site-a.yaml"
  qgw_config b a $TN_B $TN_A $RL_B:$PORT $KL_A:8442 "$OUT/$tag.audit-b.jsonl" slave > "$WD/site-b.yaml"
  local s
  for s in a b; do "$BIN/qgw" check-config "$WD/site-$s.yaml" > /dev/null || die "check-config site $s"; done
  local life=$((DUR + PROBE_SECS + 120))
  start $NS_A "$OUT/$tag.qgw-a.log" timeout -k 5 $life "$BIN/qgw" up --config "$WD/site-a.yaml"
  local qa=$last
  start $NS_B "$OUT/$tag.qgw-b.log" timeout -k 5 $life "$BIN/qgw" up --config "$WD/site-b.yaml"
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
    local ns=$NS_A
    [[ $s == b ]] && ns=$NS_B
    ip netns exec $ns "$BIN/qgw" status "qgwimp-$s" --json > "$OUT/$tag.status-$s.json" 2>&1 || true
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
if [[ "${1:-}" == cleanup ]]; then
  [[ $EUID -eq 0 ]] || die "run as root"
  remove_namespaces
  exit 0
fi
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
for b in ip iperf3 jq wg python3 ping ss timeout; do command -v $b > /dev/null || die "missing $b"; done
WGGO="${RIG_WIREGUARD_GO_BIN:-$(command -v wireguard-go || true)}" # as ../shared/bench/tunnel-rig.sh
[[ -n "$WGGO" ]] || die "wireguard-go not found (apt-get install wireguard-go, or RIG_WIREGUARD_GO_BIN)"
n_prof=$(tr ',' '\n' <<< "$PROFILES" | grep -c .)
MAX_LIFE=$((ROUNDS * n_prof * (2 * DUR + PROBE_SECS + 200) + 300))

[[ -n "$OUT" ]] || OUT="$(mktemp -d /tmp/qgw-impaired.XXXXXX)"
mkdir -p "$OUT"
WD="$(mktemp -d /tmp/qgw-impaired-keys.XXXXXX)"
trap cleanup EXIT
trap 'exit 130' INT TERM
[[ $BUILD == 1 ]] && build
for b in qgw qkd-kme-sim examples/impair_relay; do [[ -x "$BIN/$b" ]] || die "missing $BIN/$b (drop -B)"; done
: > "$OUT/results.txt"
# Is sch_netem really missing? (The relay is used either way: reproducible everywhere.)
netem=absent
setup_namespaces
ip netns exec $NS_M tc qdisc add dev impma root netem delay 1ms 2> /dev/null && netem=present
ip netns exec $NS_M tc qdisc del dev impma root 2> /dev/null || true
echo "META date=$(date -u +%FT%TZ) kernel=$(uname -r) cores=$(nproc) netem=$netem qgw=$(git -C "$repo" rev-parse --short HEAD) wireguard_go=$("$WGGO" --version | awk 'NR==1{print $2}') dur=$DUR rounds=$ROUNDS probe_s=$PROBE_SECS probe_rate=$PROBE_RATE probe_wire=$PROBE_WIRE rekey=$REKEY tcp_cc=$CC loadavg=$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$OUT/results.txt"
make_keys
start_kme
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

#!/usr/bin/env bash
# qgw two-site hospital demo. Two hospital sites in network namespaces joined by an underlay link,
# each with its own KME from qkd-kme-sim (real ETSI GS QKD 014 over mutual TLS), qgw on both with
# the hybrid key agreement (X25519 + ML-KEM-768 + QKD, ML-DSA-65 signed, qkd.policy: required,
# a new epoch every 10 s), then hospital-shaped traffic through the tunnel with real tools:
#   * a DICOM store of a synthetic CT series (dcmtk storescu -> storescp), checked byte for byte,
#   * an ICU telemetry stream over MQTT (mosquitto) that spans key rotations, checked message by
#     message,
#   * a bulk transfer (iperf3),
# and a summary: what arrived intact, the epochs and their key sources, QKD keys used, throughput.
#
#   sudo ./demo.sh            run, show, tear down (also on Ctrl-C or failure)
#   sudo ./demo.sh --keep     leave the sites running to explore (prints how)
#   sudo ./demo.sh --down     tear a kept demo down
#
# Exit status 0 only if every outcome holds (DICOM byte-identical, no MQTT message lost, duplicated
# or reordered, iperf3 ran, epochs with QKD among their key sources), so CI can run it as it is
# (no TTY needed). QGW_DEMO_AUDIT=auto|on|off: write each site's signed audit log (auto: when this
# qgw's `check-config` accepts the `audit:` block).
#
# It only sends traffic inside the namespaces it creates, and only ends processes it started (by
# PID). Logs go to files in the state directory; on failure they are copied out before teardown.
set -euo pipefail
cd "$(dirname "$0")"
REPO=$PWD
HELPERS=$REPO/scripts/demo

STATE=/run/qgw-demo
NS_A=qgw-demo-a
NS_B=qgw-demo-b
ROTATION=10       # seconds between epochs (5..165)
DICOM_COUNT=5     # CT instances stored from site A to site B
MQTT_COUNT=600    # telemetry messages, published over MQTT_SECONDS (spans a rotation)
MQTT_SECONDS=13
IPERF_SECONDS=5
METRICS_PORT=9586 # each site's metrics, on 127.0.0.1 inside its namespace
AUDIT_MODE=${QGW_DEMO_AUDIT:-auto}
STEPS=8
keep=0
step_no=0
failures=()

if [ -t 1 ]; then BOLD=$'\033[1m' RED=$'\033[1;31m' OFF=$'\033[0m'; else BOLD='' RED='' OFF=''; fi
step() { step_no=$((step_no + 1)); printf '%s[%d/%d] %s%s\n' "$BOLD" "$step_no" "$STEPS" "$*" "$OFF"; }
info() { printf '      %s\n' "$*"; }
bad() { printf '      %sFAILED: %s%s\n' "$RED" "$*" "$OFF"; failures+=("$*"); }
die() { printf '%sdemo: %s%s\n' "$RED" "$*" "$OFF" >&2; exit 1; }
in_a() { ip netns exec "$NS_A" "$@"; }
in_b() { ip netns exec "$NS_B" "$@"; }

# Ends what the demo started: the PIDs it recorded, each only while it still runs inside one of the
# demo's namespaces (so a recycled PID is never hit), then whatever is left in those namespaces
# (every process there was started by the demo), then the namespaces and the state directory.
in_demo_ns() { case "$(ip netns identify "$1" 2>/dev/null)" in "$NS_A" | "$NS_B") return 0 ;; esac; return 1; }
teardown() {
  local pids=() pid _
  if [ -f "$STATE/pids" ]; then
    while read -r pid; do in_demo_ns "$pid" && pids+=("$pid"); done < "$STATE/pids"
  fi
  for ns in "$NS_A" "$NS_B"; do
    if ip netns list | grep -qw "$ns"; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do pids+=("$pid"); done
    fi
  done
  if [ ${#pids[@]} -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 30); do
      alive=()
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
      [ ${#alive[@]} -eq 0 ] && break
      sleep 0.1
    done
    for pid in "${pids[@]}"; do in_demo_ns "$pid" && kill -9 "$pid" 2>/dev/null; done
  fi
  ip netns del "$NS_A" 2>/dev/null || true
  ip netns del "$NS_B" 2>/dev/null || true
  rm -rf "$STATE"
}

case "${1:-}" in
  --down) [ "$(id -u)" = 0 ] || die "run as root"; teardown; echo "demo torn down"; exit 0 ;;
  --keep) keep=1 ;;
  "") ;;
  *) die "usage: $0 [--keep|--down]" ;;
esac
[ $# -le 1 ] || die "usage: $0 [--keep|--down]"
[ "$(id -u)" = 0 ] || die "run as root (network namespaces, TUN devices)"
[ -e "$STATE" ] && die "a demo is already running ($STATE); use $0 --down first"
if ip netns list | grep -qE "^($NS_A|$NS_B)( |$)"; then die "namespace $NS_A or $NS_B exists; use $0 --down first"; fi

cleanup_on_exit() {
  local status=$?
  trap - EXIT INT TERM HUP
  if [ "$keep" = 1 ] && [ "$status" = 0 ]; then return; fi
  if [ "$status" = 130 ]; then
    echo "interrupted: tearing down"
  elif [ "$status" != 0 ] && [ -d "$STATE" ]; then
    local saved
    saved=$(mktemp -d /tmp/qgw-demo-logs.XXXXXX)
    find "$STATE" -maxdepth 1 -type f \( -name '*.log' -o -name '*.out' -o -name '*.txt' -o -name '*.json' \
      -o -name '*.yaml' -o -name '*.jsonl' \) -exec cp {} "$saved" \; 2>/dev/null || true
    echo "demo failed (exit $status); logs copied to $saved"
  fi
  teardown
}
mkdir -m 700 "$STATE"
trap cleanup_on_exit EXIT
trap 'exit 130' INT TERM HUP
started() { echo "$1" >> "$STATE/pids"; }
# bg NS LOG CMD...: start CMD in namespace NS in the background, output to LOG, PID recorded.
bg() {
  local ns=$1 log=$2
  shift 2
  ip netns exec "$ns" "$@" < /dev/null > "$log" 2>&1 &
  started $!
  last_pid=$!
}
# listening NS PORT: true once something listens on TCP PORT in NS (up to 5 s).
listening() {
  local _
  for _ in $(seq 50); do
    [ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null)" ] && return 0
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------------------------------------
step "packages and build"
need=()
for pair in ip:iproute2 ping:iputils-ping iperf3:iperf3 curl:curl python3:python3 storescu:dcmtk \
            mosquitto:mosquitto mosquitto_pub:mosquitto-clients promtool:prometheus; do
  command -v "${pair%%:*}" > /dev/null || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  info "installing Debian packages: ${need[*]}"
  # The mosquitto and prometheus packages may enable their system services; the demo uses neither:
  # it runs its own broker inside site B's namespace, and only promtool from prometheus.
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"; } \
    > "$STATE/apt.log" 2>&1 || { tail -n 20 "$STATE/apt.log" >&2; die "apt-get install failed"; }
fi
command -v cargo > /dev/null || die "cargo not found (sudo resets PATH; try: sudo env PATH=\"\$PATH\" $0)"
info "cargo build --release: qgw, and qkd-kme-sim with qkd-link's sim feature (a first build takes a few minutes)"
# Two builds, so that qgw is built as deployed: without the simulator feature of qkd-link.
{ nice -n 10 cargo build --release --locked -q -p gateway --bin qgw \
    && nice -n 10 cargo build --release --locked -q -p qkd-link --features sim --bin qkd-kme-sim; } > "$STATE/build.log" 2>&1 \
  || { tail -n 30 "$STATE/build.log" >&2; die "build failed"; }
BIN=$REPO/target/release
t_start=$(date +%s.%N)

# ---------------------------------------------------------------------------------------------
step "two hospital sites: namespaces $NS_A / $NS_B, underlay 10.200.0.1 <-> 10.200.0.2"
ip netns add "$NS_A"
ip netns add "$NS_B"
ip link add qgwdemo-a netns "$NS_A" type veth peer name qgwdemo-b netns "$NS_B"
ip -n "$NS_A" addr add 10.200.0.1/24 dev qgwdemo-a
ip -n "$NS_B" addr add 10.200.0.2/24 dev qgwdemo-b
for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
ip -n "$NS_A" link set qgwdemo-a up
ip -n "$NS_B" link set qgwdemo-b up

# ---------------------------------------------------------------------------------------------
step "QKD: demo PKI and two linked KMEs (KME_A serves SAE_A, KME_B serves SAE_B; 500 kbit/s link)"
"$BIN/qkd-kme-sim" pki --out "$STATE/pki" --san 10.200.0.1 > /dev/null
cat > "$STATE/kme.yaml" << EOF
pki_dir: pki
ca: ca.pem
admin:
  listen: 127.0.0.1:8440
limits: { key_size: 256, min_key_size: 64, max_key_size: 1024, max_key_per_request: 16, max_sae_id_count: 0 }
kmes:
  - { id: KME_A, listen: "127.0.0.1:8441", saes: [SAE_A], cert: kme_a.pem, key: kme_a.key }
  - { id: KME_B, listen: "10.200.0.1:8442", saes: [SAE_B], cert: kme_b.pem, key: kme_b.key }
links:
  - { kmes: [KME_A, KME_B], secret_key_rate_bps: 500000, max_key_count: 100000, initial_key_count: 1000 }
EOF
ip netns exec "$NS_A" "$BIN/qkd-kme-sim" serve --config "$STATE/kme.yaml" < /dev/null > "$STATE/kme.out" 2> "$STATE/kme.log" &
started $!
for _ in $(seq 50); do grep -q '^ready' "$STATE/kme.out" 2> /dev/null && break; sleep 0.2; done
grep -q '^ready' "$STATE/kme.out" || die "KME simulator did not start: $(tail -n 5 "$STATE/kme.log")"
info "KME_A https://127.0.0.1:8441 (site A), KME_B https://10.200.0.1:8442 (reached by site B over the underlay)"

# ---------------------------------------------------------------------------------------------
step "gateways: keys, configs, qgw up at both sites (hybrid: on, qkd.policy: required, epoch every ${ROTATION}s)"
(
  umask 077
  for s in a b; do
    "$BIN/qgw" genkey > "$STATE/$s.key"
    "$BIN/qgw" pubkey < "$STATE/$s.key" > "$STATE/$s.pub"
    "$BIN/qgw" genkey --mldsa > "$STATE/$s.mldsa"
    "$BIN/qgw" pubkey --mldsa < "$STATE/$s.mldsa" > "$STATE/$s.mldsa.pub"
  done
)

site_config() { # out site peer-site underlay peer-underlay tunnel peer-tunnel kme [audit-log]
  local out=$1 s=$2 p=$3 S=${2^^} P=${3^^}
  cat > "$out" << EOF
interface:
  name: qgw-$s
  address: $6/24
  listen_port: 51820
  private_key_file: $STATE/$s.key
  mldsa_private_key_file: $STATE/$s.mldsa
  mtu: 1420
qkd:
  kme_url: https://$8
  sae_id: SAE_$S
  ca_file: $STATE/pki/ca.pem
  cert_file: $STATE/pki/sae_$s.pem
  key_file: $STATE/pki/sae_$s.key
peers:
  - name: site-$p
    public_key: "$(cat "$STATE/$p.pub")"
    endpoint: $5:51820
    allowed_ips: [$7/32]
    hybrid: on
    mldsa_public_key_file: $STATE/$p.mldsa.pub
    qkd: { peer_sae_id: SAE_$P, policy: required }
    rekey_after_seconds: $ROTATION
metrics:
  listen: 127.0.0.1:$METRICS_PORT
EOF
  if [ -n "${9:-}" ]; then
    # The audit trail: one hash-chained JSON record a line, with checkpoints signed by the
    # site's mldsa_private_key_file (docs/audit.md); $audit_extra: more keys of the block.
    printf 'audit:\n  path: %s\n%s' "$9" "$audit_extra" >> "$out"
  fi
}
# The audit log is newer than some qgw builds: probe whether this one accepts the block, first
# with a checkpoint every 5 s (so that even this short demo's logs carry signed checkpoints), then
# with the path alone.
audit=0 audit_extra=''
case "$AUDIT_MODE" in
  off) ;;
  on | auto)
    for audit_extra in $'  checkpoint_seconds: 5\n' ''; do
      site_config "$STATE/audit-probe.yaml" a b 10.200.0.1 10.200.0.2 10.201.0.1 10.201.0.2 127.0.0.1:8441 "$STATE/audit-probe.jsonl"
      if "$BIN/qgw" check-config "$STATE/audit-probe.yaml" > "$STATE/audit-probe.log" 2>&1; then audit=1; break; fi
    done
    rm -f "$STATE/audit-probe.yaml" "$STATE/audit-probe.jsonl"
    if [ "$audit" = 0 ] && [ "$AUDIT_MODE" = on ]; then
      die "QGW_DEMO_AUDIT=on but this qgw does not accept the audit block: $(tail -n 1 "$STATE/audit-probe.log")"
    fi
    ;;
  *) die "QGW_DEMO_AUDIT must be auto, on or off" ;;
esac
audit_a='' audit_b=''
if [ "$audit" = 1 ]; then audit_a=$STATE/site-a.audit.jsonl audit_b=$STATE/site-b.audit.jsonl; fi
site_config "$STATE/site-a.yaml" a b 10.200.0.1 10.200.0.2 10.201.0.1 10.201.0.2 127.0.0.1:8441 "$audit_a"
site_config "$STATE/site-b.yaml" b a 10.200.0.2 10.200.0.1 10.201.0.2 10.201.0.1 10.200.0.1:8442 "$audit_b"
for s in a b; do
  "$BIN/qgw" check-config "$STATE/site-$s.yaml" > "$STATE/check-config-$s.log" 2>&1 \
    || die "check-config site $s: $(cat "$STATE/check-config-$s.log")"
done
if [ "$audit" = 1 ]; then info "audit logs: $audit_a, $audit_b"; else info "audit log: not available in this qgw build (QGW_DEMO_AUDIT=$AUDIT_MODE)"; fi

t_up=$(date +%s.%N)
bg "$NS_A" "$STATE/qgw-a.log" "$BIN/qgw" up --config "$STATE/site-a.yaml"
bg "$NS_B" "$STATE/qgw-b.log" "$BIN/qgw" up --config "$STATE/site-b.yaml"
ok=0
for _ in $(seq 300); do # each try waits up to 0.2 s: bounded at about a minute
  if in_a ping -c 1 -W 0.2 10.201.0.2 > /dev/null 2>&1; then ok=1; break; fi
done
[ "$ok" = 1 ] || die "no tunnel after a minute; see $STATE/qgw-a.log: $(tail -n 3 "$STATE/qgw-a.log")"
t_first=$(date +%s.%N)
first_packet=$(awk -v a="$t_up" -v b="$t_first" 'BEGIN { printf "%.2f", b - a }')
info "tunnel up: first packet from site A (10.201.0.1) to site B (10.201.0.2) ${first_packet}s after qgw up"

# Site B's services, listening on its tunnel address only: a DICOM archive, an MQTT broker (the
# central monitoring station's), an iperf3 server.
mkdir -p "$STATE/dicom/sent" "$STATE/dicom/received"
# +B (bit-preserving) makes storescp write the data set exactly as it came off the network, after
# a File Meta group of its own; storescp has no bind option, so it listens on every address of
# site B (its tunnel address, and the underlay that qgw's peer alone uses).
bg "$NS_B" "$STATE/storescp.log" storescp +B +xe -aet SITE_B_PACS -od "$STATE/dicom/received" -ta 10 -ts 30 11112
# The broker's own minimal config: one listener on the tunnel address only. Anonymous and plain
# MQTT is fine for a demo inside the tunnel; production would add TLS and authentication (and an
# ACL per bedside device) on the broker as well.
cat > "$STATE/mosquitto.conf" << EOF
listener 1883 10.201.0.2
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
EOF
bg "$NS_B" "$STATE/mosquitto.log" mosquitto -c "$STATE/mosquitto.conf"
bg "$NS_B" "$STATE/iperf3-server.log" timeout 120 iperf3 -s -1 -B 10.201.0.2
listening "$NS_B" 11112 || die "storescp did not start: $(tail -n 3 "$STATE/storescp.log")"
listening "$NS_B" 1883 || die "mosquitto did not start: $(tail -n 3 "$STATE/mosquitto.log")"
listening "$NS_B" 5201 || die "iperf3 server did not start: $(tail -n 3 "$STATE/iperf3-server.log")"

# epoch NS IFACE: the hybrid epoch in force now ("?" if status cannot be read).
epoch() { ip netns exec "$1" "$BIN/qgw" status "$2" --json 2> /dev/null > "$STATE/status-now.json" \
  && python3 "$HELPERS/facts.py" status "$STATE/status-now.json" | cut -d' ' -f2 || echo '?'; }

# ---------------------------------------------------------------------------------------------
step "DICOM: storing $DICOM_COUNT synthetic CT instances (512x512, 16 bit) from site A to site B's archive"
python3 "$HELPERS/dicom.py" make "$STATE/dicom/sent" "$DICOM_COUNT" > "$STATE/dicom-make.log" 2>&1 \
  || die "could not make the test study: $(tail -n 3 "$STATE/dicom-make.log")"
dicom_bytes=$(du -cb "$STATE"/dicom/sent/*.dcm | tail -n 1 | cut -f1)
info "study for DEMO^PATIENT (synthetic): $DICOM_COUNT files, $dicom_bytes bytes; storescu -> storescp at 10.201.0.2:11112"
bg "$NS_A" "$STATE/storescu.log" timeout 120 storescu -aet SITE_A_CT -aec SITE_B_PACS -xe 10.201.0.2 11112 "$STATE"/dicom/sent/*.dcm
dicom_rc=0
wait "$last_pid" || dicom_rc=$?
if [ "$dicom_rc" != 0 ]; then
  bad "storescu exited $dicom_rc: $(tail -n 2 "$STATE/storescu.log")"
  dicom_result="storescu failed"
elif python3 "$HELPERS/dicom.py" compare "$STATE/dicom/sent" "$STATE/dicom/received" > "$STATE/dicom-compare.log" 2>&1; then
  dicom_result=$(tail -n 1 "$STATE/dicom-compare.log")
  info "$dicom_result"
else
  dicom_result=$(tail -n 1 "$STATE/dicom-compare.log")
  bad "DICOM: $dicom_result (details in $STATE/dicom-compare.log)"
fi

# ---------------------------------------------------------------------------------------------
step "MQTT: ICU telemetry, $MQTT_COUNT vital-sign messages (QoS 1) over ${MQTT_SECONDS}s, bed 7 at site A -> broker at site B"
topic=icu/bed-7/vitals
bg "$NS_B" "$STATE/mqtt-received.txt" timeout 90 mosquitto_sub -h 10.201.0.2 -i central-station -t "$topic" -q 1 -C "$MQTT_COUNT" -W 60
sub_pid=$last_pid
for _ in $(seq 50); do grep -q "central-station 1 $topic" "$STATE/mosquitto.log" && break; sleep 0.1; done
grep -q "central-station 1 $topic" "$STATE/mosquitto.log" || die "the MQTT subscriber did not subscribe: $(tail -n 3 "$STATE/mosquitto.log")"
epoch_before=$(epoch "$NS_A" qgw-a)
# The publisher is one client, one connection: the bedside monitor streaming its readings.
# shellcheck disable=SC2016 # the inner sh expands its own arguments
bg "$NS_A" "$STATE/mqtt-pub.log" timeout 90 sh -c 'python3 "$1" publish "$2" "$3" "$4" | mosquitto_pub -h 10.201.0.2 -i bed-7-monitor -t "$5" -q 1 -l' \
  sh "$HELPERS/telemetry.py" "$MQTT_COUNT" "$MQTT_SECONDS" "$STATE/mqtt-sent.txt" "$topic"
pub_rc=0 sub_rc=0
wait "$last_pid" || pub_rc=$?
wait "$sub_pid" || sub_rc=$?
epoch_after=$(epoch "$NS_A" qgw-a)
rotations_mqtt='?'
if [[ "$epoch_before$epoch_after" =~ ^[0-9]+$ ]]; then rotations_mqtt=$((epoch_after - epoch_before)); fi
if [ "$pub_rc" != 0 ]; then bad "mosquitto_pub exited $pub_rc: $(tail -n 2 "$STATE/mqtt-pub.log")"; fi
mqtt_result=$(python3 "$HELPERS/telemetry.py" check "$STATE/mqtt-sent.txt" "$STATE/mqtt-received.txt") && mqtt_ok=1 || mqtt_ok=0
if [ "$mqtt_ok" = 1 ] && [ "$sub_rc" = 0 ]; then
  info "$mqtt_result"
  info "the stream ran across $rotations_mqtt key rotation(s) (epoch $epoch_before -> $epoch_after at site A)"
else
  bad "MQTT: $mqtt_result (mosquitto_sub exit $sub_rc)"
fi

# ---------------------------------------------------------------------------------------------
step "bulk transfer: iperf3, one TCP stream for ${IPERF_SECONDS}s, site A -> site B"
bg "$NS_A" "$STATE/iperf3.json" timeout 60 iperf3 -c 10.201.0.2 -t "$IPERF_SECONDS" -J
iperf_rc=0
wait "$last_pid" || iperf_rc=$?
gbps=$(python3 "$HELPERS/facts.py" iperf "$STATE/iperf3.json")
if [ "$iperf_rc" = 0 ] && [ "$gbps" != n/a ]; then
  info "$gbps Gbit/s received at site B"
else
  bad "iperf3 exited $iperf_rc (see $STATE/iperf3.json)"
fi

# ---------------------------------------------------------------------------------------------
step "summary"
for s in a b; do
  ns=$NS_A; [ "$s" = b ] && ns=$NS_B
  ip netns exec "$ns" "$BIN/qgw" status "qgw-$s" --json > "$STATE/status-$s.json" 2> /dev/null || true
  ip netns exec "$ns" "$BIN/qgw" status "qgw-$s" > "$STATE/status-$s.txt" 2> /dev/null || true
  ip netns exec "$ns" curl -sf --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" > "$STATE/metrics-$s.txt" 2> /dev/null || true
done
in_a curl -sf --max-time 5 http://127.0.0.1:8440/admin/state > "$STATE/kme-state.json" 2> /dev/null || true
read -r role_a epoch_a sources_a _ < <(python3 "$HELPERS/facts.py" status "$STATE/status-a.json" 2> /dev/null || echo "? 0 none -") || true
read -r role_b epoch_b sources_b _ < <(python3 "$HELPERS/facts.py" status "$STATE/status-b.json" 2> /dev/null || echo "? 0 none -") || true
read -r n_a qkd_a last_a keys_a label_a < <(python3 "$HELPERS/facts.py" epochs "$STATE/qgw-a.log") || true
read -r n_b qkd_b _ _ label_b < <(python3 "$HELPERS/facts.py" epochs "$STATE/qgw-b.log") || true
fetched_a=$(python3 "$HELPERS/facts.py" metric "$STATE/metrics-a.txt" qgw_qkd_keys_fetched_total)
fetched_b=$(python3 "$HELPERS/facts.py" metric "$STATE/metrics-b.txt" qgw_qkd_keys_fetched_total)
read -r kme_issued kme_delivered < <(python3 "$HELPERS/facts.py" kme "$STATE/kme-state.json") || true

# Rotations: from the epochs the logs show installed (the status shows the one in force, which
# can lag the newest by the moment it takes WireGuard to confirm it).
rotations='?'
if [[ "${last_a:-}" =~ ^[0-9]+$ ]] && [ "$last_a" -ge 1 ]; then rotations=$((last_a - 1)); fi
case "+$sources_a+" in *+qkd+*) ;; *) bad "site A's current epoch has no QKD key (key sources: $sources_a)" ;; esac
case "+$sources_b+" in *+qkd+*) ;; *) bad "site B's current epoch has no QKD key (key sources: $sources_b)" ;; esac
if ! [ "${qkd_a:-0}" -ge 1 ] 2> /dev/null || ! [ "${qkd_b:-0}" -ge 1 ] 2> /dev/null; then
  bad "no epoch with QKD among its key sources in the logs (site A: ${qkd_a:-0}, site B: ${qkd_b:-0})"
fi
if [ "$rotations" = '?' ] || [ "$rotations" -lt 1 ]; then bad "no key rotation happened (last epoch at site A: ${last_a:-none})"; fi

audit_line="not available in this qgw build"
if [ "$audit" = 1 ]; then
  records_a=0 records_b=0
  [ -f "$audit_a" ] && records_a=$(wc -l < "$audit_a")
  [ -f "$audit_b" ] && records_b=$(wc -l < "$audit_b")
  verdict="qgw audit verify: FAILED, see $STATE/audit-verify.log"
  if "$BIN/qgw" audit verify --key "$STATE/a.mldsa.pub" "$audit_a" > "$STATE/audit-verify.log" 2>&1 \
    && "$BIN/qgw" audit verify --key "$STATE/b.mldsa.pub" "$audit_b" >> "$STATE/audit-verify.log" 2>&1; then
    verdict="signatures verified with qgw audit verify"
  fi
  audit_line="site A $records_a records, site B $records_b records; $verdict"
fi
t_end=$(date +%s.%N)
runtime=$(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.0f", b - a }')

cat << EOF
      DICOM     $dicom_result
      MQTT      ${mqtt_result}; across $rotations_mqtt key rotation(s)
      iperf3    $gbps Gbit/s (one TCP stream, ${IPERF_SECONDS}s)
      epochs    $rotations rotation(s), a new epoch every ${ROTATION}s; installed at
                site A ($role_a): ${n_a:-0}, key sources ${label_a:-none}
                site B ($role_b): ${n_b:-0}, key sources ${label_b:-none}
                in force now: epoch $epoch_a ($sources_a) at site A, $epoch_b ($sources_b) at site B
      QKD keys  ${keys_a:-0} consumed by epochs (one key per epoch, the same key at both sites)
                KME simulator: $kme_issued issued (enc_keys, incl. the master's prefetch buffer), $kme_delivered delivered (dec_keys)
                qgw_qkd_keys_fetched_total: site A $fetched_a, site B $fetched_b
      first packet ${first_packet}s after qgw up (first KME fetch, hybrid exchange, WireGuard handshake)
      audit     $audit_line
      metrics   http://127.0.0.1:$METRICS_PORT/metrics inside each site's namespace, e.g.
                ip netns exec $NS_A curl -s http://127.0.0.1:$METRICS_PORT/metrics
      runtime   ${runtime}s after the build
EOF

if [ ${#failures[@]} -gt 0 ]; then
  printf '%s%d outcome(s) failed:%s\n' "$RED" "${#failures[@]}" "$OFF"
  printf '  - %s\n' "${failures[@]}"
  exit 1
fi
echo "all outcomes hold: DICOM intact, telemetry complete, bulk transfer done, QKD epochs rotated"

if [ "$keep" = 1 ]; then
  cat << EOF

The sites are left running (configs, logs and received data in $STATE):
  site A   status   ip netns exec $NS_A $BIN/qgw status qgw-a   (--json for JSON)
           metrics  ip netns exec $NS_A curl -s http://127.0.0.1:$METRICS_PORT/metrics
           log      $STATE/qgw-a.log
           audit    ${audit_a:-(not available in this qgw build)}
  site B   status   ip netns exec $NS_B $BIN/qgw status qgw-b
           metrics  ip netns exec $NS_B curl -s http://127.0.0.1:$METRICS_PORT/metrics
           log      $STATE/qgw-b.log
           audit    ${audit_b:-(not available in this qgw build)}
  KME      ip netns exec $NS_A curl -s http://127.0.0.1:8440/admin/state
  DICOM    received files in $STATE/dicom/received (storescp, 10.201.0.2:11112)
  MQTT     broker 10.201.0.2:1883, e.g. ip netns exec $NS_B mosquitto_sub -h 10.201.0.2 -t 'icu/#' -v
  tear down: $0 --down
EOF
else
  echo "tearing down"
fi

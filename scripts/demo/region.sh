#!/usr/bin/env bash
# qgw regional demo (`./demo.sh --sites 4`): a data centre (the hub) and three hospitals, each in
# its own network namespace, on a Madrid-like QKD network in the simulator
# (configs/kme-sim-madrid-region.yaml: every hub-hospital key is relayed through two trusted ring
# nodes). qgw runs the hybrid key agreement (X25519 + ML-KEM-768 + QKD, qkd.policy: required, a new
# epoch every 10 s) on every hub-hospital link; hospital 3 and the data centre each have two KMEs,
# reached over two relay paths through disjoint trusted nodes, and when this qgw accepts several
# QKD sources per peer, their link mixes one key from each path into every epoch (require: all).
# Then, from each hospital to the data centre in turn, the two-site demo's traffic checks:
#   * a DICOM store of a synthetic CT series (dcmtk), byte for byte,
#   * ICU telemetry over MQTT (mosquitto) across a key rotation, message by message,
#   * a bulk transfer (iperf3),
# and a summary: the outcomes per hospital, per peer the epochs and their key sources, and the QKD
# key each link of the network consumed (the simulator's admin API).
#
#   sudo ./demo.sh --sites 4            run, show, tear down (also on Ctrl-C or failure)
#   sudo ./demo.sh --sites 4 --keep     leave the sites running to explore (prints how)
#   sudo ./demo.sh --sites 4 --down     tear a kept regional demo down (./demo.sh --down does too)
#
# Fewer messages per hospital than the two-site demo (3 DICOM instances, 200 MQTT messages over
# 11 s, 3 s of iperf3), so that the three hospitals' checks take about a minute. Exit status 0 only
# if every outcome holds at every hospital. Traffic stays inside the namespaces it creates; it only
# ends processes it started (lib.sh's teardown).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
HELPERS=$REPO/scripts/demo

STATE=/run/qgw-demo-region
NS_HUB=qgw-rgn-hub
SPOKES=(h1 h2 h3)
DEMO_NS=("$NS_HUB" qgw-rgn-h1 qgw-rgn-h2 qgw-rgn-h3)
LOGS_PREFIX=qgw-demo-region-logs
ROTATION=10       # seconds between epochs
DICOM_COUNT=3     # CT instances stored from each hospital to the data centre
MQTT_COUNT=200    # telemetry messages per hospital, over MQTT_SECONDS (spans a rotation)
MQTT_SECONDS=11
IPERF_SECONDS=3
METRICS_PORT=9586 # each site's metrics, on 127.0.0.1 inside its namespace
STEPS=8
keep=0
step_no=0
failures=()
# The traffic's services are at the hub (traffic.sh); each hospital's phase sets the sender.
DST_NS=$NS_HUB DST_IP=10.211.0.1 DST_NAME="the data centre"
SRC_NS=qgw-rgn-h1 SRC_IF=qgw-h1 SRC_NAME="hospital 1" OUT=$STATE TOPIC=icu/hospital-1/bed-7/vitals

# shellcheck source=scripts/demo/lib.sh
source "$HELPERS/lib.sh"           # step/info/bad/die, bg/started/listening, teardown, packages_and_build
# shellcheck source=scripts/demo/site.sh
source "$HELPERS/site.sh"          # make_keys
# shellcheck source=scripts/demo/traffic.sh
source "$HELPERS/traffic.sh"       # start_services, iperf_server, dicom_phase, mqtt_phase, iperf_phase
# shellcheck source=scripts/demo/region_site.sh
source "$HELPERS/region_site.sh"   # ns_of, make_underlay, start_qkd_network, write_region_configs
# shellcheck source=scripts/demo/region_summary.sh
source "$HELPERS/region_summary.sh" # record_spoke, region_summary, region_keep_guide

usage="usage: ./demo.sh --sites 4 [--keep|--down]"
case "${1:-}" in
  --down) [ "$(id -u)" = 0 ] || die "run as root"; teardown; echo "demo torn down"; exit 0 ;;
  --keep) keep=1 ;;
  "") ;;
  *) die "$usage" ;;
esac
[ $# -le 1 ] || die "$usage"
[ "$(id -u)" = 0 ] || die "run as root (network namespaces, TUN devices)"
[ -e "$STATE" ] && die "a regional demo is already running ($STATE); use ./demo.sh --sites 4 --down first"
for ns in "${DEMO_NS[@]}"; do
  if ip netns list | grep -qE "^$ns( |$)"; then die "namespace $ns exists; use ./demo.sh --sites 4 --down first"; fi
done

open_state # $STATE, and the traps that tear the demo down on exit (kept with --keep)

# ---------------------------------------------------------------------------------------------
step "packages and build"
packages_and_build # sets BIN
t_start=$(date +%s.%N)

# ---------------------------------------------------------------------------------------------
step "four sites: the data centre ($NS_HUB) and hospitals 1-3 (qgw-rgn-h1..h3), an underlay link from the hub to each"
make_underlay
info "hub 10.210.N.1 <-> hospital N 10.210.N.2; tunnel 10.211.0.0/24 (hub .1, hospital N .N+1)"

# ---------------------------------------------------------------------------------------------
step "QKD network: $REGION_TOPOLOGY in the simulator (6 KMEs, 4 trusted ring nodes, 10 links)"
start_qkd_network
info "hub - hospital 1: KME_DC_E - RN - RE - KME_H1;  hub - hospital 2: KME_DC_E - RN - RW - KME_H2"
info "hub - hospital 3: east KME_DC_E - RN - RE - KME_H3_E and west KME_DC_W - RS - RW - KME_H3_W"

# ---------------------------------------------------------------------------------------------
step "gateways: keys, configs, qgw up at the four sites (hybrid: on, qkd.policy: required, epoch every ${ROTATION}s)"
make_keys hub "${SPOKES[@]}"
write_region_configs
if [ "$two_sources" = 1 ]; then
  info "hospital 3 <-> data centre: two QKD sources (east and west paths), require: all"
else
  info "hospital 3 <-> data centre: ONE QKD source (east path): this qgw does not accept two sources per peer yet ($(tail -n 1 "$STATE/two-sources-probe.log"))"
fi
t_up=$(date +%s.%N)
for s in hub "${SPOKES[@]}"; do bg "$(ns_of "$s")" "$STATE/qgw-$s.log" "$BIN/qgw" up --config "$STATE/site-$s.yaml"; done
declare -A first_packet
for s in "${SPOKES[@]}"; do
  ok=0
  for _ in $(seq 300); do # each try waits up to 0.2 s: bounded at about a minute a hospital
    if ip netns exec "$(ns_of "$s")" ping -c 1 -W 0.2 10.211.0.1 > /dev/null 2>&1; then ok=1; break; fi
  done
  [ "$ok" = 1 ] || die "no tunnel from $s after a minute; see $STATE/qgw-$s.log: $(tail -n 3 "$STATE/qgw-$s.log")"
  first_packet[$s]=$(awk -v a="$t_up" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
done
info "tunnels up: hospital 1, 2, 3 reach the data centre ${first_packet[h1]}s, ${first_packet[h2]}s, ${first_packet[h3]}s after qgw up"
start_services

# ---------------------------------------------------------------------------------------------
for s in "${SPOKES[@]}"; do
  n=$(spoke_no "$s")
  SRC_NS=$(ns_of "$s") SRC_IF=qgw-$s SRC_NAME="hospital $n" OUT=$STATE/$s TOPIC=icu/hospital-$n/bed-7/vitals
  mkdir -p "$OUT/dicom/received"
  step "hospital $n -> data centre: DICOM ($DICOM_COUNT CT instances), MQTT ($MQTT_COUNT messages over ${MQTT_SECONDS}s), iperf3 (${IPERF_SECONDS}s)"
  [ "$n" = 1 ] || iperf_server # start_services started the first one (-1: one client each)
  dicom_phase
  # The data centre's archive is one storescp: this hospital's instances move to its directory.
  find "$STATE/dicom/received" -maxdepth 1 -type f -exec mv -t "$OUT/dicom/received" {} +
  mqtt_phase
  iperf_phase
  record_spoke "$s"
done

# ---------------------------------------------------------------------------------------------
step "summary"
region_summary

close_outcomes "all outcomes hold at the three hospitals: DICOM intact, telemetry complete, bulk transfer done, QKD epochs rotated" region_keep_guide

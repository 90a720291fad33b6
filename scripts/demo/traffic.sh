# shellcheck shell=bash
# demo.sh's hospital traffic through the tunnel (sourced by demo.sh, not run on its own): site B's
# services, then the three phases, each checked end to end with real tools:
#   dicom_phase  a synthetic CT series stored with dcmtk (storescu -> storescp), byte for byte,
#   mqtt_phase   ICU telemetry over MQTT (mosquitto) across a key rotation, message by message,
#   iperf_phase  a bulk transfer (iperf3).
# A failed outcome is recorded with bad (the demo goes on and exits 1 at the end); a service that
# does not start ends the demo with die.
#
# Uses from demo.sh: STATE, BIN, HELPERS, NS_A, NS_B, DICOM_COUNT, MQTT_COUNT, MQTT_SECONDS,
# IPERF_SECONDS; bg, last_pid, listening, info, bad, die from lib.sh.
# Sets for the summary: dicom_result, mqtt_result, rotations_mqtt, epoch_before, epoch_after, gbps.
# shellcheck disable=SC2154,SC2034 # the variables above are demo.sh's, or read by it

# Who talks to whom, and where a phase's files go. demo.sh leaves the defaults (site A -> site B,
# files in $STATE); scripts/demo/region.sh sets them before each spoke's phases (spoke -> hub,
# files in that spoke's directory). Services always store under $STATE (one archive, one broker).
SRC_NS=${SRC_NS:-$NS_A}            # the sending site's namespace
SRC_NAME=${SRC_NAME:-site A}
SRC_IF=${SRC_IF:-qgw-a}            # its qgw interface (for the epoch in force)
DST_NS=${DST_NS:-$NS_B}            # the services' site
DST_IP=${DST_IP:-10.201.0.2}       # their tunnel address
DST_NAME=${DST_NAME:-site B}
OUT=${OUT:-$STATE}                 # the phase's logs and sent data
TOPIC=${TOPIC:-icu/bed-7/vitals}

# start_services: site B's services, listening on its tunnel address only: a DICOM archive, an
# MQTT broker (the central monitoring station's), an iperf3 server.
start_services() {
  mkdir -p "$STATE/dicom/sent" "$STATE/dicom/received"
  # +B (bit-preserving) makes storescp write the data set exactly as it came off the network, after
  # a File Meta group of its own; storescp has no bind option, so it listens on every address of
  # site B (its tunnel address, and the underlay that qgw's peer alone uses).
  bg "$DST_NS" "$STATE/storescp.log" storescp +B +xe -aet SITE_B_PACS -od "$STATE/dicom/received" -ta 10 -ts 30 11112
  # The broker's own minimal config: one listener on the tunnel address only. Anonymous and plain
  # MQTT is fine for a demo inside the tunnel; production would add TLS and authentication (and an
  # ACL per bedside device) on the broker as well.
  cat > "$STATE/mosquitto.conf" << EOF
listener 1883 $DST_IP
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
EOF
  bg "$DST_NS" "$STATE/mosquitto.log" mosquitto -c "$STATE/mosquitto.conf"
  listening "$DST_NS" 11112 || die "storescp did not start: $(tail -n 3 "$STATE/storescp.log")"
  listening "$DST_NS" 1883 || die "mosquitto did not start: $(tail -n 3 "$STATE/mosquitto.log")"
  iperf_server
}

# iperf_server: an iperf3 server for one client run (-1), on the services' tunnel address.
iperf_server() {
  bg "$DST_NS" "$OUT/iperf3-server.log" timeout 120 iperf3 -s -1 -B "$DST_IP"
  listening "$DST_NS" 5201 || die "iperf3 server did not start: $(tail -n 3 "$OUT/iperf3-server.log")"
}

# epoch NS IFACE: the hybrid epoch in force now ("?" if status cannot be read).
epoch() { ip netns exec "$1" "$BIN/qgw" status "$2" --json 2> /dev/null > "$STATE/status-now.json" \
  && python3 "$HELPERS/facts.py" status "$STATE/status-now.json" | cut -d' ' -f2 || echo '?'; }

dicom_phase() {
  mkdir -p "$OUT/dicom/sent"
  python3 "$HELPERS/dicom.py" make "$OUT/dicom/sent" "$DICOM_COUNT" > "$OUT/dicom-make.log" 2>&1 \
    || die "could not make the test study: $(tail -n 3 "$OUT/dicom-make.log")"
  dicom_bytes=$(du -cb "$OUT"/dicom/sent/*.dcm | tail -n 1 | cut -f1)
  info "study for DEMO^PATIENT (synthetic): $DICOM_COUNT files, $dicom_bytes bytes; storescu -> storescp at $DST_IP:11112"
  bg "$SRC_NS" "$OUT/storescu.log" timeout 120 storescu -aet SITE_A_CT -aec SITE_B_PACS -xe "$DST_IP" 11112 "$OUT"/dicom/sent/*.dcm
  dicom_rc=0
  wait "$last_pid" || dicom_rc=$?
  if [ "$dicom_rc" != 0 ]; then
    bad "storescu exited $dicom_rc: $(tail -n 2 "$OUT/storescu.log")"
    dicom_result="storescu failed"
  elif python3 "$HELPERS/dicom.py" compare "$OUT/dicom/sent" "$STATE/dicom/received" > "$OUT/dicom-compare.log" 2>&1; then
    dicom_result=$(tail -n 1 "$OUT/dicom-compare.log")
    info "$dicom_result"
  else
    dicom_result=$(tail -n 1 "$OUT/dicom-compare.log")
    bad "DICOM: $dicom_result (details in $OUT/dicom-compare.log)"
  fi
}

mqtt_phase() {
  topic=$TOPIC
  bg "$DST_NS" "$OUT/mqtt-received.txt" timeout 90 mosquitto_sub -h "$DST_IP" -i central-station -t "$topic" -q 1 -C "$MQTT_COUNT" -W 60
  sub_pid=$last_pid
  for _ in $(seq 50); do grep -q "central-station 1 $topic" "$STATE/mosquitto.log" && break; sleep 0.1; done
  grep -q "central-station 1 $topic" "$STATE/mosquitto.log" || die "the MQTT subscriber did not subscribe: $(tail -n 3 "$STATE/mosquitto.log")"
  epoch_before=$(epoch "$SRC_NS" "$SRC_IF")
  # The publisher is one client, one connection: the bedside monitor streaming its readings.
  # shellcheck disable=SC2016 # the inner sh expands its own arguments
  bg "$SRC_NS" "$OUT/mqtt-pub.log" timeout 90 sh -c 'python3 "$1" publish "$2" "$3" "$4" | mosquitto_pub -h "$6" -i bed-7-monitor -t "$5" -q 1 -l' \
    sh "$HELPERS/telemetry.py" "$MQTT_COUNT" "$MQTT_SECONDS" "$OUT/mqtt-sent.txt" "$topic" "$DST_IP"
  pub_rc=0 sub_rc=0
  wait "$last_pid" || pub_rc=$?
  wait "$sub_pid" || sub_rc=$?
  epoch_after=$(epoch "$SRC_NS" "$SRC_IF")
  rotations_mqtt='?'
  if [[ "$epoch_before$epoch_after" =~ ^[0-9]+$ ]]; then rotations_mqtt=$((epoch_after - epoch_before)); fi
  if [ "$pub_rc" != 0 ]; then bad "mosquitto_pub exited $pub_rc: $(tail -n 2 "$OUT/mqtt-pub.log")"; fi
  mqtt_result=$(python3 "$HELPERS/telemetry.py" check "$OUT/mqtt-sent.txt" "$OUT/mqtt-received.txt") && mqtt_ok=1 || mqtt_ok=0
  if [ "$mqtt_ok" = 1 ] && [ "$sub_rc" = 0 ]; then
    info "$mqtt_result"
    info "the stream ran across $rotations_mqtt key rotation(s) (epoch $epoch_before -> $epoch_after at $SRC_NAME)"
  else
    bad "MQTT: $mqtt_result (mosquitto_sub exit $sub_rc)"
  fi
}

iperf_phase() {
  bg "$SRC_NS" "$OUT/iperf3.json" timeout 60 iperf3 -c "$DST_IP" -t "$IPERF_SECONDS" -J
  iperf_rc=0
  wait "$last_pid" || iperf_rc=$?
  gbps=$(python3 "$HELPERS/facts.py" iperf "$OUT/iperf3.json")
  if [ "$iperf_rc" = 0 ] && [ "$gbps" != n/a ]; then
    info "$gbps Gbit/s received at $DST_NAME"
  else
    bad "iperf3 exited $iperf_rc (see $OUT/iperf3.json)"
  fi
}

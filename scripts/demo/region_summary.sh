# shellcheck shell=bash
# region.sh's summary (sourced by scripts/demo/region.sh, not run on its own): each hospital's
# traffic outcomes, per peer the epochs and their key sources (`qgw status --json` and the epochs
# in the qgw logs, with the QKD key IDs of the two-path link's epochs), and the QKD key that each
# link of the network consumed (the simulator's GET /admin/state); records the outcomes that fail.
#
# Uses from region.sh: STATE, BIN, HELPERS, NS_HUB, SPOKES, ROTATION, IPERF_SECONDS, METRICS_PORT,
# t_start, first_packet, two_sources; the phases' results from traffic.sh; ns_of, spoke_no from
# region_site.sh; bad from lib.sh.
# shellcheck disable=SC2154 # the variables above are region.sh's

declare -A spoke_dicom spoke_mqtt spoke_gbps

# record_spoke SITE: keeps the hospital's traffic outcomes for the summary.
record_spoke() {
  spoke_dicom[$1]=$dicom_result
  spoke_mqtt[$1]="${mqtt_result}; across $rotations_mqtt key rotation(s)"
  spoke_gbps[$1]=$gbps
}

# collect_region_facts: every site's status (JSON and text) and metrics, the simulator's state.
collect_region_facts() {
  local s ns
  for s in hub "${SPOKES[@]}"; do
    ns=$(ns_of "$s")
    ip netns exec "$ns" "$BIN/qgw" status "qgw-$s" --json > "$STATE/status-$s.json" 2> /dev/null || true
    ip netns exec "$ns" "$BIN/qgw" status "qgw-$s" > "$STATE/status-$s.txt" 2> /dev/null || true
    ip netns exec "$ns" curl -sf --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" > "$STATE/metrics-$s.txt" 2> /dev/null || true
  done
  ip netns exec "$NS_HUB" curl -sf --max-time 5 http://127.0.0.1:8630/admin/state > "$STATE/kme-state.json" 2> /dev/null || true
}

# print_peers FILE WHERE [LABEL]: one line a peer of a status file (named LABEL if given),
# failing a peer whose epoch in force has no QKD key; check_epochs_in_log LOG PEER WHO: fails unless the log shows a rotation with QKD.
print_peers() {
  local name role epoch sources ids installed
  while read -r name role epoch sources ids installed; do
    printf '                %-14s %-6s epoch %-3s in force: %-18s installed: %s\n' "${3:-$name}" "$role" "$epoch" "$sources" "$installed"
    case "+$sources+" in *+qkd+*) ;; *) bad "$2, peer $name: the epoch in force has no QKD key (key sources: $sources)" ;; esac
  done < <(python3 "$HELPERS/facts.py" peers "$1" 2> /dev/null || echo "? ? 0 none - none")
}
check_epochs_in_log() {
  local count with_qkd last _
  read -r count with_qkd last _ < <(python3 "$HELPERS/facts.py" epochs "$1" "$2") || true
  if ! [ "${with_qkd:-0}" -ge 2 ] 2> /dev/null || ! [ "${last:-0}" -ge 2 ] 2> /dev/null; then
    bad "$3: no key rotation with QKD among the key sources (epochs installed: ${count:-0}, with QKD: ${with_qkd:-0})"
  fi
}

# print_links: key consumed per QKD link, from the simulator's admin API.
print_links() {
  local link keys relayed stored km kbps
  echo "      QKD links key consumed per link (simulator GET /admin/state, keys of 256 bits; relayed: keys"
  echo "                carried for a relay; stock: keys in the link's store now)"
  while read -r link keys relayed stored km kbps; do
    printf '                %-17s %3s km %5s kbit/s: consumed %4s, relayed %4s, stock %s\n' "$link" "$km" "$kbps" "$keys" "$relayed" "$stored"
  done < <(python3 "$HELPERS/facts.py" links "$STATE/kme-state.json" 2> /dev/null || echo "(simulator state not available) ? ? ? ? ?")
}

# check_two_paths: hospital 3's link. With two sources, every epoch the hub installed for it must
# carry two QKD key IDs, and the west path's links must have carried key; with one, say so.
check_two_paths() {
  local epoch sources ids two=0 all=0 west
  while read -r epoch sources ids; do
    all=$((all + 1))
    [[ "$ids" == *,* ]] && two=$((two + 1))
  done < <(python3 "$HELPERS/facts.py" epoch-keys "$STATE/qgw-hub.log" hospital-3)
  west=$(python3 "$HELPERS/facts.py" links "$STATE/kme-state.json" | awk '$1 == "KME_DC_W-KME_RS" { print $2 }')
  if [ "$two_sources" = 1 ]; then
    two_paths_line="two QKD sources (require: all): $two of $all epochs at the hub mixed two QKD keys; west path (KME_DC_W-KME_RS) consumed ${west:-?} keys"
    if [ "$all" -lt 1 ] || [ "$two" != "$all" ]; then bad "hospital 3: only $two of $all epochs carried a key from each of the two QKD sources"; fi
    [ "${west:-0}" -ge 1 ] 2> /dev/null || bad "hospital 3: the west QKD path consumed no key"
  else
    two_paths_line="ONE QKD source (east path): this qgw does not accept two sources per peer yet; the west path is idle (consumed ${west:-?} keys)"
  fi
}

region_summary() {
  local s n
  collect_region_facts
  for s in "${SPOKES[@]}"; do
    n=$(spoke_no "$s")
    cat << EOF
      hospital $n DICOM     ${spoke_dicom[$s]}
                 MQTT      ${spoke_mqtt[$s]}
                 iperf3    ${spoke_gbps[$s]} Gbit/s (one TCP stream, ${IPERF_SECONDS}s); first packet ${first_packet[$s]}s after qgw up
EOF
  done
  echo "      epochs    a new epoch every ${ROTATION}s; at the data centre (qgw status --json), per peer:"
  print_peers "$STATE/status-hub.json" "data centre"
  for s in "${SPOKES[@]}"; do
    check_epochs_in_log "$STATE/qgw-hub.log" "hospital-$(spoke_no "$s")" "data centre, peer hospital-$(spoke_no "$s")"
    check_epochs_in_log "$STATE/qgw-$s.log" data-centre "hospital $(spoke_no "$s")"
  done
  echo "                at each hospital, its peer data-centre:"
  for s in "${SPOKES[@]}"; do print_peers "$STATE/status-$s.json" "hospital $(spoke_no "$s")" "hospital $(spoke_no "$s")"; done
  check_two_paths
  echo "      two paths hospital 3: $two_paths_line"
  echo "                QKD sources per peer at the data centre (qgw status --json, qkd_sources):"
  python3 "$HELPERS/facts.py" sources "$STATE/status-hub.json" 2> /dev/null | sed 's/^/                  /;s/; /\n                    /g'
  echo "                hospital-3's last epochs at the data centre: epoch, key sources, QKD key IDs in source order:"
  python3 "$HELPERS/facts.py" epoch-keys "$STATE/qgw-hub.log" hospital-3 | tail -n 3 | sed 's/^/                  /;s/,/, /g'
  print_links
  read -r kme_issued kme_delivered < <(python3 "$HELPERS/facts.py" kme "$STATE/kme-state.json") || true
  cat << EOF
      KME       simulator: ${kme_issued:-?} keys issued (enc_keys, incl. the masters' prefetch), ${kme_delivered:-?} delivered (dec_keys)
      metrics   http://127.0.0.1:$METRICS_PORT/metrics inside each site's namespace
      runtime   $(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')s after the build
EOF
}

# region_keep_guide: for --keep, where the running sites' status, metrics and logs are.
region_keep_guide() {
  local s
  echo
  echo "The sites are left running (configs, logs and received data in $STATE):"
  for s in hub "${SPOKES[@]}"; do
    printf '  %-4s status   ip netns exec %s %s/qgw status qgw-%s   (--json for JSON)\n' "$s" "$(ns_of "$s")" "$BIN" "$s"
    printf '       metrics  ip netns exec %s curl -s http://127.0.0.1:%s/metrics; log %s/qgw-%s.log\n' "$(ns_of "$s")" "$METRICS_PORT" "$STATE" "$s"
  done
  cat << EOF
  KME   ip netns exec $NS_HUB curl -s http://127.0.0.1:8630/admin/state   (per-link consumed_bits, keys_relayed)
        cut a ring link (keys reroute the other way round the ring):
          ip netns exec $NS_HUB curl -s -X POST -d '{"down": true}' http://127.0.0.1:8630/admin/link/KME_RN/KME_RE
        cut hospital 3's west access fibre (require: all: once the hub's prefetched west keys are
        spent, about 5 epochs, that link installs no new epoch; the others rotate on):
          ip netns exec $NS_HUB curl -s -X POST -d '{"down": true}' http://127.0.0.1:8630/admin/link/KME_H3_W/KME_RW
  MQTT  broker 10.211.0.1:1883, e.g. ip netns exec $NS_HUB mosquitto_sub -h 10.211.0.1 -t 'icu/#' -v
  tear down: ./demo.sh --sites 4 --down   (or ./demo.sh --down)
EOF
}

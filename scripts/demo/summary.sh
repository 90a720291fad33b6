# shellcheck shell=bash
# demo.sh's summary (sourced by demo.sh, not run on its own): collects what the sites report
# (qgw status, /metrics, the KME simulator's admin state, the epochs in the qgw logs, the audit
# logs verified with `qgw audit verify`), records the epoch outcomes that fail, and prints the
# summary and, for --keep, how to reach the running sites.
#
# Uses from demo.sh: STATE, BIN, HELPERS, NS_A, NS_B, METRICS_PORT, ROTATION, IPERF_SECONDS,
# t_start, first_packet; audit, audit_a, audit_b from site.sh; the phases' results from
# traffic.sh; clinical_table, CLINICAL_SECONDS from clinical_demo.sh; in_a, bad from lib.sh.
# shellcheck disable=SC2154 # the variables above are demo.sh's

# collect_facts: the sites' status, metrics and logs, and the KME's state, as shell variables.
collect_facts() {
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
}

# check_epochs: bad for every epoch outcome that does not hold; sets rotations.
check_epochs() {
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
}

# verify_audit: sets audit_line, the audit logs' record counts and `qgw audit verify` verdict.
verify_audit() {
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
}

print_summary() {
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
  if [ -n "${clinical_table:-}" ]; then
    echo "      classes   under a DICOM transfer filling the 200 Mbit/s WAN (tbf), ${CLINICAL_SECONDS}s each:"
    printf '%s\n' "$clinical_table" | sed 's/^/                /'
  fi
}

# print_keep_guide: for --keep, where the running sites' status, metrics, logs and data are.
print_keep_guide() {
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
}

# shellcheck shell=bash
# demo.sh's "clinical classes" phase (sourced by demo.sh, not run on its own): the scenario of
# scripts/demo/clinical.sh on the demo's two sites. Site A's underlay end is shaped to a
# 200 Mbit/s WAN; telemonitoring (MQTT to the demo's broker), a 4 Mbit/s video stream and a DICOM
# bulk transfer that saturates the WAN run for CLINICAL_SECONDS with classes off (the gateways as
# the demo started them), then both gateways restart with `egress_rate: 190mbit` on their peer
# (classes on) and the same runs again. The summary prints both (clinical_table). When this qgw
# does not accept `egress_rate` (check-config), the "on" run is left out and said so.
#
# Uses from demo.sh: STATE, BIN, HELPERS, NS_A, NS_B, qgw_a_pid, qgw_b_pid (the running gateways);
# info, bad, die, in_a, bg, last_pid from lib.sh. Sets: clinical_table (lines for the summary),
# qgw_a_pid, qgw_b_pid (the restarted gateways).
# shellcheck disable=SC2154,SC2034 # the variables above are demo.sh's, or read by it

# shellcheck source=scripts/demo/clinical.sh
source "$HELPERS/clinical.sh"
CLINICAL_SECONDS=10
CLINICAL_RATE=190mbit # 95 % of the 200 Mbit/s WAN (why: gateway/bench/classes.sh)

clinical_phase() {
  CLIN_A=$NS_A CLIN_B=$NS_B CLIN_WAN_IF=qgwdemo-a CLIN_DST=10.201.0.2
  CLIN_OUT=$STATE/clinical CLIN_SECS=$CLINICAL_SECONDS
  # The demo's archive keeps DICOM's registered port 11112; the imaging load goes to a storescp
  # that stores nothing on DICOM's other port, 104 (also in the built-in imaging class).
  CLIN_DICOM_PORT=104
  mkdir -p "$CLIN_OUT"
  clin_shape
  clin_services
  info "WAN: tbf ${CLIN_TBF[*]} on site A's underlay; ${CLINICAL_SECONDS}s under imaging load ($CLIN_STREAMS storescu streams)"
  clin_run qgw-off load 1 > /dev/null
  clinical_status off
  info "classes off: $(python3 "$HELPERS/clinical_report.py" brief "$CLIN_OUT/results.jsonl" qgw-off)"
  if clinical_restart; then
    clin_run qgw-on load 1 > /dev/null
    clinical_status on
    info "classes on:  $(python3 "$HELPERS/clinical_report.py" brief "$CLIN_OUT/results.jsonl" qgw-on)"
  fi
  clin_unshape
  clin_stop_all
  clinical_table=$(python3 "$HELPERS/clinical_report.py" brief "$CLIN_OUT/results.jsonl")
  python3 "$HELPERS/clinical_report.py" delivered "$CLIN_OUT/results.jsonl" > "$CLIN_OUT/delivered.txt" \
    || bad "clinical classes: $(cat "$CLIN_OUT/delivered.txt")"
}

clinical_status() { # off|on: site A's status, kept for scripts/demo-check.sh
  in_a "$BIN/qgw" status qgw-a --json > "$CLIN_OUT/status-$1-a.json" 2> /dev/null || true
}

# clinical_restart: both gateways again with egress_rate on their peer; false (and why, in
# $CLIN_OUT/classes-unsupported) when this qgw does not take it.
clinical_restart() {
  local s pid _
  for s in a b; do
    cp "$STATE/site-$s.yaml" "$STATE/site-$s.classes.yaml"
    clin_egress_rate "$STATE/site-$s.classes.yaml" "$CLINICAL_RATE"
    if ! "$BIN/qgw" check-config "$STATE/site-$s.classes.yaml" > "$CLIN_OUT/check-config-$s.log" 2>&1; then
      tail -n 2 "$CLIN_OUT/check-config-$s.log" > "$CLIN_OUT/classes-unsupported"
      info "classes on: not run, this qgw does not accept egress_rate: $(tail -n 1 "$CLIN_OUT/check-config-$s.log")"
      return 1
    fi
  done
  for pid in "$qgw_a_pid" "$qgw_b_pid"; do kill "$pid" 2> /dev/null || true; done
  for pid in "$qgw_a_pid" "$qgw_b_pid"; do wait "$pid" 2> /dev/null || true; done
  # The site's configuration is now the one with classes (the one without is kept): a kept demo,
  # its guide and scripts/alerting-check.sh find each gateway by `--config $STATE/site-X.yaml`.
  for s in a b; do
    cp "$STATE/site-$s.yaml" "$STATE/site-$s.classes-off.yaml"
    mv "$STATE/site-$s.classes.yaml" "$STATE/site-$s.yaml"
  done
  local t0
  t0=$(date +%s.%N)
  bg "$NS_A" "$STATE/qgw-a.classes.log" "$BIN/qgw" up --config "$STATE/site-a.yaml"
  qgw_a_pid=$last_pid
  bg "$NS_B" "$STATE/qgw-b.classes.log" "$BIN/qgw" up --config "$STATE/site-b.yaml"
  qgw_b_pid=$last_pid
  for _ in $(seq 150); do # each try waits up to 0.2 s: bounded at about 30 s
    in_a ping -c 1 -W 0.2 10.201.0.2 > /dev/null 2>&1 && break
  done
  in_a ping -c 1 -W 1 10.201.0.2 > /dev/null 2>&1 \
    || die "no tunnel 30 s after the restart with egress_rate: $(tail -n 3 "$STATE/qgw-a.classes.log")"
  info "gateways restarted with egress_rate: $CLINICAL_RATE (classes on); tunnel back after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')s"
}

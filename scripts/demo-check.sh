#!/usr/bin/env bash
# CI check of the two-site demo (as root, after the build; no TTY needed):
#   1. ./demo.sh --keep must succeed: DICOM byte-identical, MQTT complete, iperf3 ran, QKD epochs;
#   2. while the sites run: /metrics of both sites passes `promtool check metrics` with no output at
#      all (promtool 2.42 prints lint problems and may still exit 0 for some), and shows a current
#      epoch whose key sources include qkd for every peer; /healthz and /readyz answer 200;
#   3. `qgw audit verify --key <site's ML-DSA public key>` passes on each site's live audit log and
#      fails, naming a line, on altered copies (a field edited, a record deleted, two swapped, one
#      repeated) and with the other site's key;
#   4. the clinical-classes phase, no timing: with classes on (kept running) site A's status lists
#      the four classes, telemonitoring, telemedicine and imaging classified packets and
#      telemonitoring dropped none; with classes off (saved) no classes; every probe delivered;
#   5. ./demo.sh --down, always (trap), and nothing of the demo is left.
# With --sites 4, the same for the regional demo (./demo.sh --sites 4 --keep: a data centre and
# three hospitals, every outcome at every hospital), its four sites' /metrics as in 2., and instead
# of 3. (that demo writes no audit log) the checks of scripts/demo/region_check.sh: every peer
# rotated with QKD, the key each QKD link consumed accounted path by path, hospital 3's two QKD
# sources, and `require: all` failing closed on that link alone when one of its paths is cut.
# Ends with "demo-check: N passed, N failed[, N skipped]"; exit status 1 if anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BIN=$REPO/target/release
HELPERS=$REPO/scripts/demo
STATE=/run/qgw-demo
NS_A=qgw-demo-a
NS_B=qgw-demo-b
METRICS_PORT=9586
# The demo's sites, their namespaces (ns_of SITE) and how many peers each has.
SITES=(a b) DEMO_ARGS=()
ns_of() { if [ "$1" = a ]; then echo "$NS_A"; else echo "$NS_B"; fi; }
peers_of() { echo 1; }
case "$*" in
  "") ;;
  "--sites 4")
    STATE=/run/qgw-demo-region SITES=(hub h1 h2 h3) DEMO_ARGS=(--sites 4)
    ns_of() { if [ "$1" = hub ]; then echo qgw-rgn-hub; else echo "qgw-rgn-$1"; fi; }
    peers_of() { if [ "$1" = hub ]; then echo 3; else echo 1; fi; }
    ;;
  *) echo "usage: $0 [--sites 4]" >&2; exit 2 ;;
esac

passed=0 failed=0 skipped=0
ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }
skip() {
  skipped=$((skipped + 1))
  printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
  printf '!!! SKIPPED: %s\n' "$*"
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n'
}
section() { printf '\n== %s\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "demo-check: run as root" >&2; exit 1; }
# Never tear down somebody's kept demo: refuse to start while one runs.
[ -e "$STATE" ] && { echo "demo-check: a demo is already running ($STATE); ./demo.sh --down first" >&2; exit 1; }

tmp=$(mktemp -d /tmp/qgw-demo-check.XXXXXX)
finish() {
  local status=$?
  trap - EXIT INT TERM HUP
  section "tear down"
  ./demo.sh "${DEMO_ARGS[@]}" --down > "$tmp/down.log" 2>&1 || true
  left=0
  for s in "${SITES[@]}"; do if ip netns list | grep -qE "^$(ns_of "$s")( |$)"; then left=1; fi; done
  if [ "$left" = 1 ] || [ -e "$STATE" ]; then
    fail "after ./demo.sh --down a demo namespace or $STATE is still there"
  else
    ok "./demo.sh --down left no namespace and no state directory"
  fi
  rm -rf "$tmp"
  printf '\ndemo-check: %d passed, %d failed' "$passed" "$failed"
  [ "$skipped" = 0 ] || printf ', %d skipped' "$skipped"
  printf '\n'
  if [ "$failed" != 0 ] || [ "$status" != 0 ]; then exit 1; fi
}
trap finish EXIT
trap 'exit 130' INT TERM HUP

# ---------------------------------------------------------------------------------------------
run="./demo.sh ${DEMO_ARGS[*]:+${DEMO_ARGS[*]} }--keep"
section "demo ($run)"
if ./demo.sh "${DEMO_ARGS[@]}" --keep < /dev/null; then
  ok "$run: every outcome held"
else
  fail "$run exited non-zero"
  exit 1
fi

# ---------------------------------------------------------------------------------------------
section "metrics"
command -v promtool > /dev/null || { fail "promtool not installed (Debian package prometheus)"; exit 1; }
for s in "${SITES[@]}"; do
  ns=$(ns_of "$s")
  url=http://127.0.0.1:$METRICS_PORT
  if ! ip netns exec "$ns" curl -sf --max-time 5 "$url/metrics" > "$tmp/metrics-$s.txt"; then
    fail "site $s: GET /metrics failed"
    continue
  fi
  rc=0
  promtool check metrics < "$tmp/metrics-$s.txt" > "$tmp/promtool-$s.txt" 2>&1 || rc=$?
  if [ "$rc" = 0 ] && [ ! -s "$tmp/promtool-$s.txt" ]; then
    ok "site $s: promtool check metrics: clean ($(grep -c '^# TYPE' "$tmp/metrics-$s.txt") families)"
  else
    fail "site $s: promtool check metrics exit $rc:"
    sed 's/^/        /' "$tmp/promtool-$s.txt"
  fi
  with_qkd=$(grep -cE '^qgw_peer_epoch_sources\{[^}]*source="[^"]*qkd[^"]*"[^}]*\} 1$' "$tmp/metrics-$s.txt" || true)
  if [ "$with_qkd" -ge "$(peers_of "$s")" ]; then
    ok "site $s: qgw_peer_epoch_sources shows a current epoch with qkd for $with_qkd peer(s)"
  else
    fail "site $s: qgw_peer_epoch_sources has a qkd source at 1 for $with_qkd peer(s), not $(peers_of "$s")"
  fi
  fetched=$(python3 "$HELPERS/facts.py" metric "$tmp/metrics-$s.txt" qgw_qkd_keys_fetched_total)
  if [ "$fetched" = n/a ]; then
    echo "note  site $s: no qgw_qkd_keys_fetched_total in this build"
  else
    ok "site $s: qgw_qkd_keys_fetched_total $fetched"
  fi
  for path in healthz readyz; do
    code=$(ip netns exec "$ns" curl -s --max-time 5 -o "$tmp/$path-$s.txt" -w '%{http_code}' "$url/$path" || true)
    case "$code" in
      200)
        if grep -q '^# TYPE' "$tmp/$path-$s.txt"; then
          ok "site $s: /$path 200, but it is the metrics page: no dedicated /$path in this qgw build"
        else
          ok "site $s: /$path 200: $(head -c 80 "$tmp/$path-$s.txt" | head -n 1)"
        fi
        ;;
      404) skip "site $s: /$path is not served by this qgw build (404)" ;;
      *) fail "site $s: /$path answered ${code:-nothing}: $(head -c 200 "$tmp/$path-$s.txt" 2> /dev/null)" ;;
    esac
  done
done

# ---------------------------------------------------------------------------------------------
if [ "${#SITES[@]}" = 4 ]; then
  section "QKD network and peers (the regional demo writes no audit log: the two-site run checks it)"
  # shellcheck source=scripts/demo/region_check.sh
  source "$HELPERS/region_check.sh"
  exit 0
fi
section "clinical classes (no timing asserted: the demo's summary prints the delays)"
# The demo ran its probes with classes off, then restarted the gateways with egress_rate (on) and
# kept them so: site A's live status must list the four classes, the probes' traffic classified
# into the first three, nothing dropped from telemonitoring; the status saved while classes were
# off has no classes; every probe delivered something in both runs.
clin=$STATE/clinical
status_on=$tmp/status-on-a.json
if [ -f "$clin/classes-unsupported" ]; then
  skip "classes on was not run: this qgw does not accept egress_rate ($(tail -n 1 "$clin/classes-unsupported"))"
  status_on=-
else
  ip netns exec "$NS_A" "$BIN/qgw" status qgw-a --json > "$status_on" 2> /dev/null || true
fi
while read -r verdict text; do
  if [ "$verdict" = ok ]; then ok "$text"; else fail "$text"; fi
done < <(python3 "$HELPERS/clinical_report.py" check "$clin/status-off-a.json" "$status_on" "$clin/results.jsonl" || true)

section "audit log"
# demo.sh adds the audit block only when this qgw's check-config accepts it.
if ! grep -q '^audit:' "$STATE/site-a.yaml"; then
  skip "audit not available: this qgw build does not accept the audit block (qgw audit verify not checked)"
  exit 0
fi
# verify FILE KEY: runs qgw audit verify; output in $tmp/verify.out, exit status in $vrc.
verify() { vrc=0; "$BIN/qgw" audit verify --key "$2" "$1" > "$tmp/verify.out" 2>&1 || vrc=$?; }
names_line() { grep -qE '(:[0-9]+:|[Ll]ine [0-9]+)' "$tmp/verify.out"; }
for s in a b; do
  other=b; [ "$s" = b ] && other=a
  log=$STATE/site-$s.audit.jsonl key=$STATE/$s.mldsa.pub
  verify "$log" "$key"
  if [ "$vrc" = 0 ]; then
    ok "site $s: qgw audit verify on the live log: $(head -n 1 "$tmp/verify.out")"
    if grep -qi 'nothing is signed' "$tmp/verify.out"; then
      fail "site $s: the audit log has no signed checkpoint: $(grep -i 'nothing is signed' "$tmp/verify.out" | head -n 1)"
    fi
  else
    fail "site $s: qgw audit verify on the live log exited $vrc: $(head -n 3 "$tmp/verify.out")"
    continue
  fi
  # A snapshot of the complete lines (the log is still being written), verified as it is first.
  records=$(python3 "$HELPERS/tamper.py" snapshot "$log" "$tmp/site-$s.jsonl")
  verify "$tmp/site-$s.jsonl" "$key"
  if [ "$vrc" != 0 ]; then
    fail "site $s: the unaltered snapshot ($records records) does not verify: $(head -n 2 "$tmp/verify.out")"
    continue
  fi
  for mode in edit delete swap duplicate; do
    if ! what=$(python3 "$HELPERS/tamper.py" "$mode" "$tmp/site-$s.jsonl" "$tmp/site-$s.$mode.jsonl" 2>&1); then
      fail "site $s: could not make the '$mode' copy: $what"
      continue
    fi
    verify "$tmp/site-$s.$mode.jsonl" "$key"
    if [ "$vrc" != 0 ] && names_line; then
      ok "site $s: $mode at $what detected: $(head -n 1 "$tmp/verify.out")"
    elif [ "$vrc" = 0 ]; then
      fail "site $s: $mode at $what NOT detected: $(head -n 1 "$tmp/verify.out")"
    else
      fail "site $s: $mode at $what: exit $vrc, but no line named: $(head -n 2 "$tmp/verify.out")"
    fi
  done
  verify "$tmp/site-$s.jsonl" "$STATE/$other.mldsa.pub"
  if [ "$vrc" != 0 ]; then
    ok "site $s: rejected with site $other's key: $(head -n 1 "$tmp/verify.out")"
  else
    fail "site $s: verified with site $other's key"
  fi
done

#!/usr/bin/env bash
# Live alerting against the two-site demo (as root; CI runs it from scripts/test.sh): a real
# Prometheus (Debian prometheus) per site scrapes that site's qgw with the shipped alert rules, a
# real Alertmanager (Debian prometheus-alertmanager) with the shipped configs/alertmanager/
# routes to a local webhook receiver (scripts/alerting/alerts.py) that records what it gets, and:
#   (a) all healthy: no qgw alert pending or firing, nothing at the webhook;
#   (b) the KME simulator (one process serving both sites' KMEs) killed by its PID: QgwQkdKmeUnreachable
#       and, since both sites run `qkd.policy: required`, QgwPeerFailClosed fire at the webhook for
#       both sites; the KME restarted: both resolve;
#   (c) site B's qgw SIGKILLed by its PID: QgwGatewayDown fires; qgw restarted: it resolves.
# Each with the time from the fault (or the repair) to the webhook notification.
#
# What is scaled down, so that the check takes about two minutes instead of a quarter of an hour:
#   * the rules are a COPY of configs/prometheus/qgw-alerts.yml (or $QGW_ALERT_RULES) with every
#     `for:` divided by FOR_SCALE; scripts/alerting/derive.py checks that nothing else differs and
#     promtool checks the copy. The times reported include the scaled `for:`; in production add
#     the difference to the real `for:` (printed next to each time);
#   * scrape and rule evaluation every 1 s (configs/prometheus/prometheus.yml: 15 s / 30 s);
#   * Alertmanager's group_wait and group_interval 1 s (shipped: 10 s / 1 m);
#   * the demo's sessions expire REJECT_AFTER s after their epoch (interface.danger_reject_after_seconds,
#     QGW_DEMO_REJECT_AFTER) instead of 180 s, so the `required` peers fail closed within seconds.
# Topology: one Prometheus inside each site's namespace (127.0.0.1:9090) scrapes its gateway's
# metrics.listen (127.0.0.1:9586, as in the shipped configs); Alertmanager listens on site A's
# underlay address 10.200.0.1:9093 so both reach it; the webhook is on 127.0.0.1:9095 in site A.
# A real deployment scrapes over the management network instead (docs/operations.md).
#
# Ends with "alerting-check: N passed, N failed"; exit status 1 if anything failed or did not fire /
# resolve within BOUND s (a hang guard, not a target). Only PIDs this script (or the demo) started
# are ended; traffic stays inside the demo's namespaces and their loopbacks.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BIN=$REPO/target/release
HELPERS=$REPO/scripts/alerting
STATE=/run/qgw-demo
NS_A=qgw-demo-a
NS_B=qgw-demo-b
RULES=${QGW_ALERT_RULES:-$REPO/configs/prometheus/qgw-alerts.yml}
FOR_SCALE=30           # rules' for: divided by this
REJECT_AFTER=20        # s: the demo's danger_reject_after_seconds
BOUND=90               # s: hang guard for each alert to fire or resolve
PROM_ADDR=127.0.0.1:9090
AM_ADDR=10.200.0.1:9093
HOOK_ADDR=127.0.0.1:9095

passed=0 failed=0
ok() { passed=$((passed + 1)); printf 'PASS  %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }
section() { printf '\n== %s\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

[ "$(id -u)" = 0 ] || { echo "alerting-check: run as root (network namespaces)" >&2; exit 1; }
[ -e "$STATE" ] && { echo "alerting-check: a demo is already running ($STATE); ./demo.sh --down first" >&2; exit 1; }
[ -f "$RULES" ] || { echo "alerting-check: no rules file $RULES" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
section "packages"
# Their services are kept from starting: this check runs its own (scripts/lib/debian.sh).
# shellcheck source=scripts/lib/debian.sh
. "$REPO/scripts/lib/debian.sh"
mapfile -t need < <(missing_debian_packages prometheus:prometheus promtool:prometheus \
  prometheus-alertmanager:prometheus-alertmanager amtool:prometheus-alertmanager curl:curl \
  python3:python3)
python3 -c 'import yaml' 2> /dev/null || need+=(python3-yaml)
install_debian_packages alerting-check /tmp/qgw-alerting-apt.log "${need[@]}"
echo "$(prometheus --version 2>&1 | head -n 1); $(prometheus-alertmanager --version 2>&1 | head -n 1)"

tmp=$(mktemp -d /tmp/qgw-alerting-check.XXXXXX)
chmod 755 "$tmp" # prometheus and alertmanager run as root here, but keep the files readable
mine=()          # PIDs this script started
# in_demo_ns PID: true while PID runs inside one of the demo's namespaces.
in_demo_ns() { case "$(ip netns identify "$1" 2> /dev/null)" in "$NS_A" | "$NS_B") return 0 ;; esac; return 1; }
finish() {
  local status=$? pid _
  trap - EXIT INT TERM HUP
  section "tear down"
  for pid in "${mine[@]}"; do in_demo_ns "$pid" && kill "$pid" 2> /dev/null; done
  for _ in $(seq 30); do
    local alive=0
    for pid in "${mine[@]}"; do kill -0 "$pid" 2> /dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${mine[@]}"; do in_demo_ns "$pid" && kill -9 "$pid" 2> /dev/null; done
  if [ "$failed" != 0 ] || [ "$status" != 0 ]; then
    local saved
    saved=$(mktemp -d /tmp/qgw-alerting-logs.XXXXXX)
    cp "$tmp"/*.log "$tmp"/*.jsonl "$tmp"/*.yml "$saved"/ 2> /dev/null || true
    [ -d "$STATE" ] && cp "$STATE"/*.log "$STATE"/*.yaml "$saved"/ 2> /dev/null
    echo "logs (this check's and the demo's) copied to $saved"
  fi
  ./demo.sh --down > "$tmp/down.log" 2>&1 || true
  rm -rf "$tmp"
  printf '\nalerting-check: %d passed, %d failed\n' "$passed" "$failed"
  if [ "$failed" != 0 ] || [ "$status" != 0 ]; then exit 1; fi
}
trap finish EXIT
trap 'exit 130' INT TERM HUP

# spawn NS LOG CMD...: start CMD in namespace NS, output to LOG; its PID is recorded in mine
# (and in the demo's pid list, so that ./demo.sh --down ends it too). Sets spawned.
spawn() {
  local ns=$1 log=$2
  shift 2
  ip netns exec "$ns" "$@" < /dev/null > "$log" 2>&1 &
  spawned=$!
  mine+=("$spawned")
  echo "$spawned" >> "$STATE/pids"
}
# ready NS URL WHAT: waits (up to 15 s) until URL answers 200 inside NS.
ready() {
  local _
  for _ in $(seq 75); do
    ip netns exec "$1" curl -sf --max-time 1 -o /dev/null "$2" && return 0
    sleep 0.2
  done
  fail "$3 did not answer $2 within 15 s"
  exit 1
}
ns_of() { if [ "$1" = site-a ]; then echo "$NS_A"; else echo "$NS_B"; fi; }
prom_alerts() { ip netns exec "$(ns_of "$1")" curl -sf --max-time 2 "http://$PROM_ADDR/api/v1/alerts"; }
# demo_pid PATTERN: the PID the demo recorded whose command line matches PATTERN (still running,
# inside a demo namespace).
demo_pid() {
  local pid
  while read -r pid; do
    in_demo_ns "$pid" || continue
    tr '\0' ' ' < "/proc/$pid/cmdline" 2> /dev/null | grep -qE "$1" && { echo "$pid"; return 0; }
  done < "$STATE/pids"
  return 1
}

# ---------------------------------------------------------------------------------------------
section "configurations (derived from the shipped ones; nothing but timings differs)"
real_for() { awk -v a="$1" '$1 == a { print $2 }' "$tmp/for.txt"; }
test_for() { awk -v a="$1" '$1 == a { print $3 }' "$tmp/for.txt"; }
if python3 "$HELPERS/derive.py" rules "$RULES" "$tmp/qgw-alerts.yml" "$FOR_SCALE" > "$tmp/for.txt" 2> "$tmp/derive.log"; then
  ok "rules copy: only for: differs from $(basename "$RULES") (expressions, labels, annotations identical), for: / $FOR_SCALE: $(awk '{ printf "%s%s %s->%s", sep, $1, $2, $3; sep = ", " }' "$tmp/for.txt")"
else
  fail "rules copy: $(cat "$tmp/derive.log")"
  exit 1
fi
if promtool check rules "$tmp/qgw-alerts.yml" > "$tmp/promtool.log" 2>&1; then
  ok "promtool check rules on the copy: $(grep -o '[0-9]* rules found' "$tmp/promtool.log")"
else
  fail "promtool check rules on the copy: $(cat "$tmp/promtool.log")"
fi
for s in site-a site-b; do
  python3 "$HELPERS/derive.py" prometheus configs/prometheus/prometheus.yml "$tmp/prometheus-$s.yml" "$s" \
    "$tmp/qgw-alerts.yml" "$AM_ADDR" 127.0.0.1:9586 1s
  if promtool check config "$tmp/prometheus-$s.yml" > "$tmp/promtool-$s.log" 2>&1; then
    ok "$s: Prometheus config derived from configs/prometheus/prometheus.yml (scrape + evaluation 1 s), promtool check config"
  else
    fail "$s: promtool check config: $(cat "$tmp/promtool-$s.log")"
  fi
done
am_example=configs/alertmanager/alertmanager.yml
if amtool check-config "$am_example" > "$tmp/amtool.log" 2>&1; then
  ok "amtool check-config $am_example"
else
  fail "amtool check-config $am_example: $(cat "$tmp/amtool.log")"
fi
if what=$(python3 "$HELPERS/derive.py" alertmanager "$am_example" "$tmp/alertmanager.yml" \
  "http://$HOOK_ADDR/qgw-alerts" 1s 1m 2>&1) && amtool check-config "$tmp/alertmanager.yml" > "$tmp/amtool.log" 2>&1; then
  ok "Alertmanager config for the test: $what; amtool check-config"
else
  fail "Alertmanager config for the test: $what $(cat "$tmp/amtool.log" 2> /dev/null)"
  exit 1
fi
[ "$failed" = 0 ] || exit 1

# ---------------------------------------------------------------------------------------------
section "demo (QGW_DEMO_REJECT_AFTER=$REJECT_AFTER ./demo.sh --keep; log in $tmp/demo.log)"
if QGW_DEMO_REJECT_AFTER=$REJECT_AFTER ./demo.sh --keep < /dev/null > "$tmp/demo.log" 2>&1; then
  ok "demo.sh --keep: $(grep -m1 '^all outcomes hold' "$tmp/demo.log")"
else
  tail -n 30 "$tmp/demo.log"
  fail "demo.sh --keep exited non-zero"
  exit 1
fi

# ---------------------------------------------------------------------------------------------
section "monitoring: webhook receiver, Alertmanager, one Prometheus per site"
hook_log=$tmp/webhook.jsonl
spawn "$NS_A" "$tmp/webhook.log" python3 "$HELPERS/alerts.py" serve "${HOOK_ADDR%:*}" "${HOOK_ADDR#*:}" "$hook_log"
spawn "$NS_A" "$tmp/alertmanager.log" prometheus-alertmanager --config.file="$tmp/alertmanager.yml" \
  --storage.path="$tmp/alertmanager-data" --web.listen-address="$AM_ADDR" --cluster.listen-address=
for s in site-a site-b; do
  spawn "$(ns_of "$s")" "$tmp/prometheus-$s.log" prometheus --config.file="$tmp/prometheus-$s.yml" \
    --storage.tsdb.path="$tmp/tsdb-$s" --web.listen-address="$PROM_ADDR"
done
ready "$NS_A" "http://$HOOK_ADDR/" "the webhook receiver"
ready "$NS_A" "http://$AM_ADDR/-/ready" "Alertmanager"
for s in site-a site-b; do ready "$(ns_of "$s")" "http://$PROM_ADDR/-/ready" "Prometheus ($s)"; done
for s in site-a site-b; do
  up=''
  for _ in $(seq 50); do
    up=$(ip netns exec "$(ns_of "$s")" curl -sf --max-time 1 "http://$PROM_ADDR/api/v1/query?query=up%7Bjob%3D%22qgw%22%7D" \
      | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2> /dev/null || true)
    [ "$up" = 1 ] && break
    sleep 0.2
  done
  if [ "$up" = 1 ]; then ok "$s: Prometheus scrapes qgw (up{job=\"qgw\"} 1)"; else fail "$s: Prometheus does not scrape qgw (up: ${up:-none})"; fi
done
[ "$failed" = 0 ] || exit 1

# ---------------------------------------------------------------------------------------------
section "(a) all healthy"
sleep 8 # eight evaluations: every rule has its samples, every scaled for: up to 6 s has passed
for s in site-a site-b; do
  active=$(prom_alerts "$s" | python3 "$HELPERS/alerts.py" active "$s" || echo "(Prometheus API failed)")
  if [ -z "$active" ]; then ok "$s: no qgw alert pending or firing"; else fail "$s: alerts while healthy: $(echo "$active" | tr '\n' ';')"; fi
done
got=$(python3 "$HELPERS/alerts.py" count "$hook_log")
if [ "${got%% *}" = 0 ]; then ok "the webhook received nothing"; else fail "the webhook received notifications while healthy: $got"; fi

# expect ALERT SITE STATUS T0 WHAT: waits (BOUND s from T0) for the webhook to receive ALERT for SITE
# in STATUS; PASS with the times (and Prometheus's activeAt for firing alerts), else FAIL and
# remembers ALERT/SITE in never_fired, so that its resolution is not waited for.
never_fired=' '

expect() {
  local alert=$1 site=$2 status=$3 t0=$4 what=$5 at='' deadline active_at='' extra
  if [ "$status" = resolved ] && [[ "$never_fired" == *" $alert/$site "* ]]; then
    fail "$alert ($site) resolved: not checked, it never fired"
    return
  fi
  deadline=$(awk -v t="$t0" -v b="$BOUND" 'BEGIN { printf "%d", t + b }')
  while [ "$(date +%s)" -le "$deadline" ]; do
    at=$(python3 "$HELPERS/alerts.py" received "$hook_log" "$alert" "$status" "$site" "$t0") && break
    at=''
    sleep 0.5
  done
  if [ -z "$at" ]; then
    fail "$alert ($site) not $status at the webhook within ${BOUND} s of $what"
    [ "$status" = firing ] && never_fired+="$alert/$site "
    return
  fi
  extra="for: $(real_for "$alert"), here $(test_for "$alert")"
  if [ "$status" = firing ]; then
    active_at=$(prom_alerts "$site" | python3 "$HELPERS/alerts.py" active "$site" "$alert" | awk '{ print $3 }' || true)
    [ -n "$active_at" ] && extra="condition seen by Prometheus after $(since "$t0" "$active_at") s; $extra"
  fi
  ok "$alert ($site) $status at the webhook $(since "$t0" "$at") s after $what ($extra)"
  printf '%s\t%s\t%s\t%s\t%s\n' "$alert" "$site" "$status" "$(since "$t0" "$at")" "$(real_for "$alert")/$(test_for "$alert")" >> "$tmp/times.tsv"
}

# ---------------------------------------------------------------------------------------------
section "(b) KME down: the simulator serving both sites' KMEs killed (SIGKILL, by PID)"
kme_pid=$(demo_pid 'qkd-kme-sim serve') || { fail "no running KME simulator among the demo's PIDs"; exit 1; }
t_kme=$(now)
kill -9 "$kme_pid"
echo "killed qkd-kme-sim (pid $kme_pid) at $(date -u -d "@${t_kme%.*}" +%T) UTC"
for s in site-a site-b; do expect QgwQkdKmeUnreachable "$s" firing "$t_kme" "the KME was killed"; done
for s in site-a site-b; do expect QgwPeerFailClosed "$s" firing "$t_kme" "the KME was killed"; done
t_kme_back=$(now)
spawn "$NS_A" "$STATE/kme-restarted.log" "$BIN/qkd-kme-sim" serve --config "$STATE/kme.yaml"
for _ in $(seq 50); do grep -q '^ready' "$STATE/kme-restarted.log" && break; sleep 0.2; done
grep -q '^ready' "$STATE/kme-restarted.log" || { fail "the KME simulator did not restart: $(tail -n 3 "$STATE/kme-restarted.log")"; exit 1; }
echo "KME simulator restarted (pid $spawned)"
for s in site-a site-b; do expect QgwQkdKmeUnreachable "$s" resolved "$t_kme_back" "the KME restarted"; done
for s in site-a site-b; do expect QgwPeerFailClosed "$s" resolved "$t_kme_back" "the KME restarted"; done

# ---------------------------------------------------------------------------------------------
section "(c) gateway down: site B's qgw killed (SIGKILL, by PID)"
qgw_pid=$(demo_pid "qgw up --config $STATE/site-b.yaml") || { fail "no running qgw of site B among the demo's PIDs"; exit 1; }
t_gw=$(now)
kill -9 "$qgw_pid"
echo "killed qgw of site B (pid $qgw_pid)"
expect QgwGatewayDown site-b firing "$t_gw" "qgw was killed"
t_gw_back=$(now)
spawn "$NS_B" "$STATE/qgw-b-restarted.log" "$BIN/qgw" up --config "$STATE/site-b.yaml"
echo "qgw of site B restarted (pid $spawned)"
expect QgwGatewayDown site-b resolved "$t_gw_back" "qgw restarted"

# ---------------------------------------------------------------------------------------------
section "times (fault or repair -> webhook notification)"
echo "Rules' for: divided by $FOR_SCALE, scrape + evaluation every 1 s, Alertmanager group_wait/group_interval 1 s,"
echo "sessions refused ${REJECT_AFTER} s after their epoch (spec: 180 s). A production deployment adds the real for:"
echo "minus the test's (and, for fail-closed, 180 s minus ${REJECT_AFTER} s) and its own intervals."
printf '%-24s %-7s %-9s %8s  %s\n' alert site status seconds "for: real/test"
[ -f "$tmp/times.tsv" ] && while IFS=$'\t' read -r a s st sec f; do printf '%-24s %-7s %-9s %8s  %s\n' "$a" "$s" "$st" "$sec" "$f"; done < "$tmp/times.tsv"

# shellcheck shell=bash
# scripts/demo-check.sh --sites 4's checks of the running regional demo (sourced, not run on its
# own), each an ok or a fail line:
#   * every peer, at the data centre and at each hospital, has rotated at least once (epoch >= 2)
#     and its epoch in force has a QKD key (`qgw status --json`);
#   * the QKD network's accounting on the simulator's GET /admin/state
#     (configs/kme-sim-madrid-region.yaml): every link spent exactly the keys of the paths through
#     it (the data centre's east duct = the three east access links; RN-RE = hospital 1 + hospital
#     3 east; RW-RN = hospital 2; the west duct = RS-RW = hospital 3 west), each link's consumed
#     bits are its relayed keys of 256 bits, and RE-RS, on no shortest path, spent nothing;
#   * hospital 3's link: with two QKD sources, every epoch at the data centre mixed two QKD keys, the
#     west path carried them, and `qgw status` at both ends lists both sources (east, west) with
#     their last answer delivered; then with the west path cut, `require: all` fails closed on that
#     link alone (fail_closed_on_one_path); with one source (a qgw without several sources per
#     peer), a note.
#
# Uses from demo-check.sh: STATE, BIN, HELPERS, tmp, ok, fail.
# shellcheck disable=SC2154 # the variables above are demo-check.sh's

# peers_rotated SITE NS: every peer of the site's status rotated, with QKD in force.
peers_rotated() {
  local name role epoch sources _ n=0
  ip netns exec "$2" "$BIN/qgw" status "qgw-$1" --json > "$tmp/status-$1.json" 2> "$tmp/status-$1.err" \
    || { fail "$1: qgw status --json failed: $(head -n 2 "$tmp/status-$1.err")"; return; }
  while read -r name role epoch sources _; do
    n=$((n + 1))
    if [ "$epoch" -ge 2 ] 2> /dev/null && [[ "+$sources+" == *+qkd+* ]]; then
      ok "$1: peer $name ($role) at epoch $epoch, key sources $sources"
    else
      fail "$1: peer $name ($role) at epoch $epoch, key sources $sources (want epoch >= 2 with qkd)"
    fi
  done < <(python3 "$HELPERS/facts.py" peers "$tmp/status-$1.json")
  [ "$n" -ge 1 ] || fail "$1: qgw status shows no peer"
}
peers_rotated hub qgw-rgn-hub
for s in h1 h2 h3; do peers_rotated "$s" "qgw-rgn-$s"; done

# The links' consumed keys, by name (facts.py links: "A-B CONSUMED RELAYED STOCK KM KBPS").
declare -A consumed
if curl_out=$(ip netns exec qgw-rgn-hub curl -sf --max-time 5 http://127.0.0.1:8630/admin/state); then
  printf '%s' "$curl_out" > "$tmp/kme-state.json"
  while read -r link keys relayed _; do
    consumed[$link]=$keys
    if [ "$keys" != "$relayed" ]; then fail "link $link: consumed $keys keys of 256 bits but relayed $relayed"; fi
  done < <(python3 "$HELPERS/facts.py" links "$tmp/kme-state.json")
else
  fail "the simulator's GET /admin/state failed"
fi
c() { echo "${consumed[$1]:--1}"; }
# same WHAT LEFT RIGHT: ok when the two sums of consumed keys agree.
same() {
  if [ "$2" = "$3" ] && [ "$2" -ge 0 ]; then ok "QKD accounting: $1 ($2 keys)"; else fail "QKD accounting: $1: $2 != $3"; fi
}
same "the data centre's east duct carried every east path's key (KME_DC_E-KME_RN = H1 + H2 + H3_E access)" \
  "$(c KME_DC_E-KME_RN)" $(($(c KME_H1-KME_RE) + $(c KME_H2-KME_RW) + $(c KME_H3_E-KME_RE)))
same "ring segment RN-RE = hospital 1 + hospital 3 east" "$(c KME_RN-KME_RE)" $(($(c KME_H1-KME_RE) + $(c KME_H3_E-KME_RE)))
same "ring segment RW-RN = hospital 2" "$(c KME_RW-KME_RN)" "$(c KME_H2-KME_RW)"
same "the west path: the data centre's west duct DC_W-RS = the H3_W access" "$(c KME_DC_W-KME_RS)" "$(c KME_H3_W-KME_RW)"
same "the west path: ring segment RS-RW = the H3_W access" "$(c KME_RS-KME_RW)" "$(c KME_H3_W-KME_RW)"
same "ring segment RE-RS, on no shortest path, spent nothing" "$(c KME_RE-KME_RS)" 0
for link in KME_H1-KME_RE KME_H2-KME_RW KME_H3_E-KME_RE; do
  if [ "$(c "$link")" -ge 1 ]; then ok "link $link consumed $(c "$link") keys"; else fail "link $link consumed no key"; fi
done

# epoch_of SITE PEER: the peer's epoch in force and its last source's last answer, "EPOCH LAST".
epoch_of() {
  ip netns exec "qgw-rgn-$1" "$BIN/qgw" status "qgw-$1" --json > "$tmp/now-$1.json" 2> /dev/null || { echo "? ?"; return; }
  local epoch last
  epoch=$(python3 "$HELPERS/facts.py" peers "$tmp/now-$1.json" | awk -v p="$2" '$1 == p { print $3 }')
  last=$(python3 "$HELPERS/facts.py" sources "$tmp/now-$1.json" | awk -v p="$2" '$1 == p' | sed -n 's/.*; west -> .*last \([a-z_]*\))$/\1/p')
  echo "${epoch:-?} ${last:-?}"
}

# fail_closed_on_one_path: `require: all` fails closed with one path down. Cuts hospital 3's west
# access fibre (KME_H3_W-KME_RW; no other path reaches KME_H3_W). The keys already relayed stay
# deliverable, so the hub's prefetched west keys carry a few more epochs (about 5 at a 10 s
# rotation); then the west source answers `unavailable`, hospital 3's link installs no new epoch
# while hospital 1's keeps rotating, and the epoch in force still carries traffic (qgw refuses it
# only 180 s after it was installed). Bounded: 120 s for the west source to fail, then one rotation.
fail_closed_on_one_path() {
  local e1 e1_after e3 e3_after last _ waited=0
  if ! ip netns exec qgw-rgn-hub curl -sf --max-time 5 -X POST -d '{"down": true}' \
    http://127.0.0.1:8630/admin/link/KME_H3_W/KME_RW > /dev/null; then
    fail "could not cut the link KME_H3_W-KME_RW on the simulator's admin API"
    return
  fi
  while read -r e3 last < <(epoch_of hub hospital-3) && [ "$last" != unavailable ] && [ "$waited" -lt 120 ]; do
    sleep 2
    waited=$((waited + 2))
  done
  if [ "$last" != unavailable ]; then
    fail "hospital 3: 120 s after its west access fibre was cut, the hub's west source still answers ${last}"
    return
  fi
  read -r e1 _ < <(epoch_of hub hospital-1)
  sleep 12 # more than one rotation
  read -r e1_after _ < <(epoch_of hub hospital-1)
  read -r e3_after last < <(epoch_of hub hospital-3)
  if [ "$e3_after" = "$e3" ] && [ "$e1_after" -gt "$e1" ] 2> /dev/null; then
    ok "require: all fails closed: ${waited}s after the west path was cut its source answered $last; hospital 3 stayed at epoch $e3 while hospital 1 went $e1 -> $e1_after"
  else
    fail "require: all with the west path cut: hospital 3 epoch $e3 -> $e3_after (want no change), hospital 1 $e1 -> $e1_after (want a rotation)"
  fi
  if ip netns exec qgw-rgn-h3 ping -c 1 -W 1 10.211.0.1 > /dev/null 2>&1; then
    ok "hospital 3 still reaches the data centre on the epoch in force (refused only 180 s after it was installed)"
  else
    fail "hospital 3 lost the tunnel as soon as its link failed closed"
  fi
}

# Hospital 3's two QKD paths.
if grep -q '^  kmes:' "$STATE/site-hub.yaml"; then
  all=0 two=0
  while read -r _ _ ids; do
    all=$((all + 1))
    [[ "$ids" == *,* ]] && two=$((two + 1))
  done < <(python3 "$HELPERS/facts.py" epoch-keys "$STATE/qgw-hub.log" hospital-3)
  if [ "$all" -ge 2 ] && [ "$two" = "$all" ]; then
    ok "hospital 3: all $all epochs at the data centre mixed two QKD keys (east and west sources)"
  else
    fail "hospital 3: $two of $all epochs at the data centre mixed two QKD keys"
  fi
  if [ "$(c KME_H3_W-KME_RW)" -ge 1 ]; then ok "hospital 3: the west path consumed $(c KME_H3_W-KME_RW) keys"; else fail "hospital 3: the west path consumed no key"; fi
  for site in hub h3; do
    line=$(python3 "$HELPERS/facts.py" sources "$tmp/status-$site.json" | grep -E '^(hospital-3|data-centre) ' || true)
    if [ "$(grep -o 'last delivered' <<< "$line" | wc -l)" = 2 ] && [[ "$line" == *"east -> "*"; west -> "* ]]; then
      ok "$site: qgw status shows the two QKD sources of the hospital 3 link, both last delivered: ${line#* }"
    else
      fail "$site: qgw status does not show two QKD sources (east, west) both last delivered: ${line:-no qkd_sources}"
    fi
  done
  fail_closed_on_one_path
else
  echo "note  hospital 3 runs on ONE QKD source: this qgw does not accept several sources per peer (the west path is idle)"
  same "the west path is idle with one source" "$(c KME_H3_W-KME_RW)" 0
fi

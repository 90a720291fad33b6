# shellcheck shell=bash
# region.sh's sites (sourced by scripts/demo/region.sh, not run on its own): the four namespaces and
# their underlay, the QKD network (configs/kme-sim-madrid-region.yaml in the simulator), and each
# site's qgw config (hybrid: on, qkd.policy: required, a new epoch every $ROTATION s).
#
# Layout: the data centre (the hub, namespace $NS_HUB) has one underlay link to each hospital N
# (10.210.N.1 at the hub, 10.210.N.2 at the hospital); the tunnel is 10.211.0.0/24 (hub .1,
# hospital N .N+1). The simulator runs in the hub's namespace: the data centre's KMEs on loopback,
# each hospital's KME on the hub end of that hospital's underlay link (as the two-site demo reaches
# KME_B), so every ETSI 014 call is real mutual TLS across namespaces.
#
# Uses from region.sh: STATE, BIN, REPO, NS_HUB, SPOKES, ROTATION, METRICS_PORT, two_sources;
# die and info from lib.sh. Sets: two_sources (when probe_two_sources runs).
# shellcheck disable=SC2154 # the variables above are region.sh's

REGION_TOPOLOGY=configs/kme-sim-madrid-region.yaml
# Each site's KMEs: SITE=NAME:KME_ID:SAE_ID:PORT ... (the first is the site's only KME with one source).
declare -A SITE_KMES=(
  [hub]="east:KME_DC_E:SAE_DC_E:8641 west:KME_DC_W:SAE_DC_W:8642"
  [h1]="east:KME_H1:SAE_H1:8651"
  [h2]="east:KME_H2:SAE_H2:8652"
  [h3]="east:KME_H3_E:SAE_H3_E:8653 west:KME_H3_W:SAE_H3_W:8654"
)

ns_of() { if [ "$1" = hub ]; then echo "$NS_HUB"; else echo "qgw-rgn-$1"; fi; }
spoke_no() { echo "${1#h}"; }

# make_underlay: the namespaces and one veth pair from the hub to each hospital.
make_underlay() {
  local s n
  ip netns add "$NS_HUB"
  ip -n "$NS_HUB" link set lo up
  for s in "${SPOKES[@]}"; do
    n=$(spoke_no "$s")
    ip netns add "$(ns_of "$s")"
    ip -n "$(ns_of "$s")" link set lo up
    ip link add "qgwrgn-$s" netns "$NS_HUB" type veth peer name "qgwrgn-$s-hub" netns "$(ns_of "$s")"
    ip -n "$NS_HUB" addr add "10.210.$n.1/24" dev "qgwrgn-$s"
    ip -n "$(ns_of "$s")" addr add "10.210.$n.2/24" dev "qgwrgn-$s-hub"
    ip -n "$NS_HUB" link set "qgwrgn-$s" up
    ip -n "$(ns_of "$s")" link set "qgwrgn-$s-hub" up
  done
}

# kme_addr SITE: where the site reaches its KMEs (loopback at the hub, the hub end of its link).
kme_addr() { if [ "$1" = hub ]; then echo 127.0.0.1; else echo "10.210.$(spoke_no "$1").1"; fi; }

# start_qkd_network: the PKI for every KME and SAE of the topology, the topology with each hospital
# KME's listener moved to the hub end of its underlay link, the simulator in the hub's namespace.
start_qkd_network() {
  local sans=() s entry map=''
  for s in "${SPOKES[@]}"; do
    sans+=(--san "$(kme_addr "$s")")
    for entry in ${SITE_KMES[$s]}; do map+="$(cut -d: -f2 <<< "$entry")=$(kme_addr "$s") "; done
  done
  "$BIN/qkd-kme-sim" pki --out "$STATE/pki" --from-config "$REPO/$REGION_TOPOLOGY" "${sans[@]}" > /dev/null
  awk -v map="$map" '
    BEGIN { n = split(map, m, " "); for (i = 1; i <= n; i++) { split(m[i], kv, "="); addr[kv[1]] = kv[2] } }
    /^pki_dir:/ { $0 = "pki_dir: pki" }
    /^  - id: / { id = $3 }
    /^    listen: 127\.0\.0\.1:/ && (id in addr) { sub(/127\.0\.0\.1/, addr[id]) }
    { print }' "$REPO/$REGION_TOPOLOGY" > "$STATE/kme.yaml"
  ip netns exec "$NS_HUB" "$BIN/qkd-kme-sim" serve --config "$STATE/kme.yaml" < /dev/null > "$STATE/kme.out" 2> "$STATE/kme.log" &
  started $!
  for _ in $(seq 50); do grep -q '^ready' "$STATE/kme.out" 2> /dev/null && break; sleep 0.2; done
  grep -q '^ready' "$STATE/kme.out" || die "KME simulator did not start: $(tail -n 5 "$STATE/kme.log")"
}

# kme_block SITE COUNT: the site's top-level qkd: block with its first COUNT KMEs (1: the
# single-KME form every qgw accepts; 2: `kmes:`, named, for two QKD sources).
kme_block() {
  local site=$1 count=$2 entry name sae port stem url i=0
  echo "qkd:"
  [ "$count" = 1 ] || echo "  kmes:"
  for entry in ${SITE_KMES[$site]}; do
    i=$((i + 1))
    [ "$i" -le "$count" ] || break
    IFS=: read -r name _ sae port <<< "$entry"
    stem=${sae,,}
    url="https://$(kme_addr "$site"):$port"
    if [ "$count" = 1 ]; then
      printf '  kme_url: %s\n  sae_id: %s\n  ca_file: %s\n  cert_file: %s\n  key_file: %s\n' \
        "$url" "$sae" "$STATE/pki/ca.pem" "$STATE/pki/$stem.pem" "$STATE/pki/$stem.key"
    else
      printf '    - { name: %s, kme_url: "%s", sae_id: %s, ca_file: %s, cert_file: %s, key_file: %s }\n' \
        "$name" "$url" "$sae" "$STATE/pki/ca.pem" "$STATE/pki/$stem.pem" "$STATE/pki/$stem.key"
    fi
  done
  return 0
}

# peer_qkd SITE PEER ROLE SOURCES KMES: a peer's qkd: line. SOURCES 1 or 2: how many QKD sources
# the link has; KMES: how many KMEs the site's block names (with 2, even a one-source peer names its
# KME in sources:). The peer's SAE at each source is the peer site's KME of the same position.
peer_qkd() {
  local site=$1 peer=$2 role=$3 sources=$4 kmes=$5 mine theirs i list=''
  read -ra mine <<< "${SITE_KMES[$site]}"
  read -ra theirs <<< "${SITE_KMES[$peer]}"
  if [ "$kmes" = 1 ]; then
    printf '    qkd: { peer_sae_id: %s, policy: required, role: %s }\n' "$(cut -d: -f3 <<< "${theirs[0]}")" "$role"
    return
  fi
  for ((i = 0; i < sources; i++)); do
    list+="${list:+, }{ kme: $(cut -d: -f1 <<< "${mine[$i]}"), peer_sae_id: $(cut -d: -f3 <<< "${theirs[$i]}") }"
  done
  local require=''
  [ "$sources" = 1 ] || require='require: all, '
  printf '    qkd: { policy: required, %srole: %s, sources: [%s] }\n' "$require" "$role" "$list"
}

# site_yaml SITE TWO: the site's qgw config on stdout; TWO=1 gives hospital 3's link two sources.
site_yaml() {
  local site=$1 two=$2 n addr kmes=1 peers=() p
  if [ "$site" = hub ]; then addr=10.211.0.1 peers=("${SPOKES[@]}"); else addr=10.211.0.$(($(spoke_no "$site") + 1)) peers=(hub); fi
  # Two KMEs where the site is an end of the two-path link.
  if [ "$two" = 1 ] && { [ "$site" = hub ] || [ "$site" = h3 ]; }; then kmes=2; fi
  cat << EOF
interface:
  name: qgw-$site
  address: $addr/24
  listen_port: 51820
  private_key_file: $STATE/$site.key
  mldsa_private_key_file: $STATE/$site.mldsa
  mtu: 1420
$(kme_block "$site" "$kmes")
peers:
EOF
  for p in "${peers[@]}"; do
    local sources=1 role=slave name=data-centre endpoint allowed
    if [ "$two" = 1 ] && { [ "$site$p" = hubh3 ] || [ "$site$p" = h3hub ]; }; then sources=2; fi
    if [ "$site" = hub ]; then
      n=$(spoke_no "$p") role=master name=hospital-$n endpoint=10.210.$n.2 allowed=10.211.0.$((n + 1))
    else
      n=$(spoke_no "$site") endpoint=10.210.$n.1 allowed=10.211.0.1
    fi
    cat << EOF
  - name: $name
    public_key: "$(cat "$STATE/$p.pub")"
    endpoint: $endpoint:51820
    allowed_ips: [$allowed/32]
    hybrid: on
    mldsa_public_key_file: $STATE/$p.mldsa.pub
$(peer_qkd "$site" "$p" "$role" "$sources" "$kmes")
    rekey_after_seconds: $ROTATION
EOF
  done
  printf 'metrics:\n  listen: 127.0.0.1:%s\n' "$METRICS_PORT"
}

# write_region_configs: $STATE/site-{hub,h1,h2,h3}.yaml, each accepted by `qgw check-config`.
# Hospital 3's link gets two QKD sources when this qgw accepts `qkd.kmes` / `sources:` (probed on
# the hub's config); otherwise one (east), and two_sources=0 says so in the summary.
write_region_configs() {
  local s
  two_sources=0
  site_yaml hub 1 > "$STATE/two-sources-probe.yaml"
  if "$BIN/qgw" check-config "$STATE/two-sources-probe.yaml" > "$STATE/two-sources-probe.log" 2>&1; then two_sources=1; fi
  rm -f "$STATE/two-sources-probe.yaml"
  for s in hub "${SPOKES[@]}"; do
    site_yaml "$s" "$two_sources" > "$STATE/site-$s.yaml"
    "$BIN/qgw" check-config "$STATE/site-$s.yaml" > "$STATE/check-config-$s.log" 2>&1 \
      || die "check-config $s: $(cat "$STATE/check-config-$s.log")"
  done
}

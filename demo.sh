#!/usr/bin/env bash
# qgw two-site demo: two hospital sites in network namespaces joined by an underlay link, each with
# its own KME from qkd-kme-sim (real ETSI GS QKD 014 over mutual TLS), qgw on both with the hybrid
# key agreement (X25519 + ML-KEM-768 + QKD, ML-DSA-65 signed, qkd.policy: required), then traffic
# through the tunnel, `qgw status`, and a summary of the epochs that rotated.
#
#   sudo ./demo.sh            run, show, tear down (also on Ctrl-C or failure)
#   sudo ./demo.sh --keep     leave the sites running to explore
#   sudo ./demo.sh --down     tear a kept demo down
#
# It only sends traffic inside the namespaces it creates, and only ends processes it started.
set -euo pipefail
cd "$(dirname "$0")"

STATE=/run/qgw-demo
NS_A=qgw-demo-a
NS_B=qgw-demo-b
ROTATION=10     # seconds between epochs (5..165)
keep=0

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

teardown() {
  if [ -f "$STATE/pids" ]; then
    while read -r pid; do kill "$pid" 2>/dev/null || true; done < "$STATE/pids"
    sleep 1
    while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done < "$STATE/pids"
  fi
  ip netns del "$NS_A" 2>/dev/null || true
  ip netns del "$NS_B" 2>/dev/null || true
  rm -rf "$STATE"
}

case "${1:-}" in
  --down) [ "$(id -u)" = 0 ] || die "run as root"; teardown; say "demo torn down"; exit 0 ;;
  --keep) keep=1 ;;
  "") ;;
  *) die "usage: $0 [--keep|--down]" ;;
esac
[ "$(id -u)" = 0 ] || die "run as root (network namespaces, TUN devices)"
[ -e "$STATE" ] && die "a demo is already running ($STATE); use $0 --down first"

need=()
for pair in ip:iproute2 ping:iputils-ping iperf3:iperf3; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

say "building qgw and qkd-kme-sim (release)"
cargo build --release --locked -q -p gateway -p qkd-link
BIN=$PWD/target/release

cleanup_on_exit() {
  status=$?
  if [ "$keep" = 1 ] && [ "$status" = 0 ]; then return; fi
  [ "$status" = 0 ] || say "failed (exit $status); logs were in $STATE"
  teardown
}
trap cleanup_on_exit EXIT
trap 'exit 130' INT TERM

mkdir -p -m 700 "$STATE"
started() { echo "$1" >> "$STATE/pids"; }

say "site A and site B: namespaces $NS_A / $NS_B, underlay 10.200.0.1 <-> 10.200.0.2"
ip netns add "$NS_A"
ip netns add "$NS_B"
ip link add qgwdemo-a netns "$NS_A" type veth peer name qgwdemo-b netns "$NS_B"
ip -n "$NS_A" addr add 10.200.0.1/24 dev qgwdemo-a
ip -n "$NS_B" addr add 10.200.0.2/24 dev qgwdemo-b
for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
ip -n "$NS_A" link set qgwdemo-a up
ip -n "$NS_B" link set qgwdemo-b up

say "QKD: demo PKI and two linked KMEs (KME_A for SAE_A, KME_B for SAE_B, 500 kbit/s link)"
"$BIN/qkd-kme-sim" pki --out "$STATE/pki" --san 10.200.0.1 >/dev/null
cat > "$STATE/kme.yaml" <<EOF
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
ip netns exec "$NS_A" "$BIN/qkd-kme-sim" serve --config "$STATE/kme.yaml" > "$STATE/kme.out" 2> "$STATE/kme.log" &
started $!
for _ in $(seq 50); do grep -q '^ready' "$STATE/kme.out" 2>/dev/null && break; sleep 0.2; done
grep -q '^ready' "$STATE/kme.out" || die "KME simulator did not start: $(cat "$STATE/kme.log")"

say "keys: X25519 (WireGuard) and ML-DSA-65 per site"
(
  umask 077
  for s in a b; do
    "$BIN/qgw" genkey > "$STATE/$s.key"
    "$BIN/qgw" pubkey < "$STATE/$s.key" > "$STATE/$s.pub"
    "$BIN/qgw" genkey --mldsa > "$STATE/$s.mldsa"
    "$BIN/qgw" pubkey --mldsa < "$STATE/$s.mldsa" > "$STATE/$s.mldsa.pub"
  done
)

site_config() { # site peer-site underlay peer-underlay tunnel peer-tunnel kme metrics
  local s=$1 p=$2 S=${1^^} P=${2^^}
  cat > "$STATE/site-$s.yaml" <<EOF
interface:
  name: qgw-$s
  address: $5/24
  listen_port: 51820
  private_key_file: $STATE/$s.key
  mldsa_private_key_file: $STATE/$s.mldsa
  mtu: 1420
qkd:
  kme_url: https://$7
  sae_id: SAE_$S
  ca_file: $STATE/pki/ca.pem
  cert_file: $STATE/pki/sae_$s.pem
  key_file: $STATE/pki/sae_$s.key
peers:
  - name: site-$p
    public_key: "$(cat "$STATE/$p.pub")"
    endpoint: $4:51820
    allowed_ips: [$6/32]
    hybrid: on
    mldsa_public_key_file: $STATE/$p.mldsa.pub
    qkd: { peer_sae_id: SAE_$P, policy: required }
    rekey_after_seconds: $ROTATION
metrics:
  listen: 127.0.0.1:$8
EOF
}
site_config a b 10.200.0.1 10.200.0.2 10.201.0.1 10.201.0.2 127.0.0.1:8441 9586
site_config b a 10.200.0.2 10.200.0.1 10.201.0.2 10.201.0.1 10.200.0.1:8442 9586

say "starting qgw at both sites (hybrid: on, qkd.policy: required, new epoch every ${ROTATION}s)"
for s in a b; do "$BIN/qgw" check-config "$STATE/site-$s.yaml"; done
t_up=$(date +%s.%N)
for s in a b; do
  ns=$NS_A; [ "$s" = b ] && ns=$NS_B
  ip netns exec "$ns" "$BIN/qgw" up --config "$STATE/site-$s.yaml" 2> "$STATE/qgw-$s.log" &
  started $!
done

say "waiting for the first hybrid epoch and the tunnel"
ok=0
for _ in $(seq 300); do
  if ip netns exec "$NS_A" ping -c 1 -W 0.2 10.201.0.2 >/dev/null 2>&1; then ok=1; break; fi
done
[ "$ok" = 1 ] || die "no tunnel; see $STATE/qgw-a.log"
t_first=$(date +%s.%N)
first_packet=$(awk -v a="$t_up" -v b="$t_first" 'BEGIN { printf "%.2f", b - a }')
echo "  first packet through the tunnel ${first_packet}s after starting both gateways"

say "ping through the tunnel (site A -> site B)"
ip netns exec "$NS_A" ping -c 3 -i 0.3 10.201.0.2

say "bulk transfer through the tunnel (iperf3, 5 s)"
ip netns exec "$NS_B" iperf3 -s -1 -B 10.201.0.2 >/dev/null 2>&1 &
started $!
sleep 0.5
ip netns exec "$NS_A" iperf3 -c 10.201.0.2 -t 5 -f m | tail -n 4

say "letting keys rotate for $((2 * ROTATION + 2)) s"
sleep $((2 * ROTATION + 2))

say "qgw status at site A"
ip netns exec "$NS_A" "$BIN/qgw" status qgw-a

say "summary"
epochs=$(grep -c 'hybrid epoch installed' "$STATE/qgw-a.log" || true)
with_qkd=$(grep 'hybrid epoch installed' "$STATE/qgw-a.log" | grep -c 'x25519+mlkem+qkd' || true)
echo "  time from qgw up to the first user packet: ${first_packet}s (first KME fetch, hybrid exchange, WireGuard handshake)"
echo "  epochs installed at site A: $epochs ($with_qkd with x25519+mlkem+qkd)"
echo "  QKD key IDs consumed (same at both sites):"
grep -o 'qkd_key_ids=\[[^]]*\]' "$STATE/qgw-a.log" | sed 's/^/    /'
if [ "$keep" = 1 ]; then
  cat <<EOF

The demo is left running (state, configs and logs in $STATE):
  ip netns exec $NS_A $BIN/qgw status qgw-a        # or --json
  ip netns exec $NS_B $BIN/qgw status qgw-b
  ip netns exec $NS_A curl -s http://127.0.0.1:9586/metrics   # site A metrics
  tail -f $STATE/qgw-a.log
  sudo $0 --down
EOF
fi

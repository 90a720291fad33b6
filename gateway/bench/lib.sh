# shellcheck shell=bash
# What soak.sh, impaired.sh and start-restart.sh share (sourced by them, not run on its own): two
# qgw sites a and b in network namespaces this script creates, with every process it starts
# recorded and ended by PID, and the same keys, KME simulator and qgw configuration.
#
#   log, die                     "[NAME HH:MM:SS] ..." on stderr; die exits 1
#   start NS LOG CMD...          CMD in NS in the background, its PID in $last (and in PIDS)
#   in_our_ns PID, our_ns        is PID in one of BENCH_NS; which of BENCH_NS exist
#   stop_pid [SIGNAL] PID        TERM (or SIGNAL), up to 5 s, then KILL: only a PID in BENCH_NS
#   child_of PID                 PID of `timeout` -> PID of the command it runs
#   remove_namespaces            end what runs in BENCH_NS, delete them, remove BENCH_STALE files
#   cleanup, arm_cleanup         the EXIT trap (calls cleanup_hook first when the script has one),
#                                and setting it (plus INT/TERM -> exit 130)
#   cleanup_command "$@"         for `SCRIPT cleanup`: remove_namespaces and exit
#   need CMD..., ensure_tcpdump  die unless each CMD exists; install tcpdump from Debian if missing
#   find_wireguard_go            WGGO as ../shared/bench/tunnel-rig.sh finds it
#   build_release [EXAMPLE...]   cargo build --release: qgw (and gateway's EXAMPLEs), qkd-kme-sim
#   make_namespaces, veth ...    create BENCH_NS (lo up); a veth pair between two of them
#   ns_of SITE                   NS_A or NS_B
#   make_keys                    $WD/{a,b}.{key,pub,mldsa,mldsa.pub}
#   pair_setup IF_A IF_B         NS_A UL_A (IF_A) -- (IF_B) UL_B NS_B, keys, the KME config on UL_A
#   kme_config HOST              the simulator's PKI and $WD/kme.yaml: KME_A on 127.0.0.1:8441 for
#                                SAE_A, KME_B on HOST:8442 for SAE_B (KME_HOST=HOST)
#   kme_start LOG LIFE           qkd-kme-sim serve in NS_A for at most LIFE s, ready; KME_PID
#   qgw_config SITE EP AUDIT [REKEY]  $WD/site-SITE.yaml (hybrid, QKD required, a master), checked
#   qgw_plain_config SITE EP     $WD/site-SITE.yaml: the same tunnel, plain WireGuard, checked
#                                (both add `offload: $QGW_OFFLOAD` and `threads: $QGW_THREADS`
#                                when those are set)
#   qgw_up SITE LOG LIFE         `qgw up` of SITE ($QGW, default $BIN/qgw) for at most LIFE s ($last)
#   wg_go_up SITE IFACE EP LOG_LEVEL LIFE LOG  wireguard-go -f IFACE in SITE's namespace ($last),
#                                configured with wg set (peer at EP, no keepalive) and ip
#   tunnel_up SECS               ping TN_B from NS_A until it answers
#
# Uses from the script: BENCH_NAME (log prefix), BENCH_NS (its namespaces), BENCH_STALE (files
# remove_namespaces deletes: sockets a SIGKILLed daemon leaves behind; may be empty), QGW_IF
# (qgw's interface is QGW_IF-SITE), NS_A, NS_B, UL_A, UL_B, TN_A, TN_B, PORT, MTU, OUT, and,
# once set, WD (keys and configs; removed on exit). Sets: repo, BIN, WD, NS_MADE, PIDS, last,
# KME_PID, KME_HOST, WGGO.
# shellcheck disable=SC2154,SC2034 # the variables above: read and set for the script

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$repo/target/release"
WD="" NS_MADE=0 KME_PID="" KME_HOST="" WGGO=""
declare -a PIDS=() BENCH_NS=() BENCH_STALE=()

log() { printf '[%s %(%H:%M:%S)T] %s\n' "$BENCH_NAME" -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------ processes and cleanup
start() { # NS LOG CMD...: CMD in NS in the background, its PID in $last
  local ns=$1 out=$2
  shift 2
  ip netns exec "$ns" "$@" < /dev/null > "$out" 2>&1 &
  last=$!
  PIDS+=("$last")
}
ns_pattern() { local IFS='|'; echo "${BENCH_NS[*]}"; }
in_our_ns() { ip netns identify "$1" 2> /dev/null | grep -qxE "$(ns_pattern)"; }
stop_pid() { # [SIGNAL] PID: TERM (or SIGNAL), up to 5 s, then KILL; only PIDs this script
  local sig=TERM _ # started, and only while they run in one of its namespaces
  [[ $# -eq 2 ]] && { sig=$1; shift; }
  local p=$1
  if ! kill -0 "$p" 2> /dev/null || ! in_our_ns "$p"; then
    wait "$p" 2> /dev/null || true
    return 0
  fi
  kill -"$sig" "$p" 2> /dev/null || true
  for _ in $(seq 50); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2> /dev/null || true
  wait "$p" 2> /dev/null || true
}
child_of() { # PID of `timeout` -> PID of the command it runs
  local c _
  for _ in $(seq 100); do
    c=$(awk '{print $1}' "/proc/$1/task/$1/children" 2> /dev/null || true)
    [[ -n "$c" ]] && { echo "$c"; return 0; }
    sleep 0.05
  done
  return 1
}
our_ns() { ip netns list | awk '{print $1}' | grep -xE "$(ns_pattern)" || true; }
remove_namespaces() {
  local ns p
  for ns in $(our_ns); do
    # Whatever still runs in these namespaces was started by this script (or a killed run of it).
    for p in $(ip netns pids "$ns" 2> /dev/null); do stop_pid "$p"; done
    ip netns del "$ns" 2> /dev/null || true
  done
  # Sockets a SIGKILLed daemon leaves behind (only this script's interface names).
  if ((${#BENCH_STALE[@]})); then rm -f "${BENCH_STALE[@]}"; fi
}
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  local p
  if declare -F cleanup_hook > /dev/null; then cleanup_hook; fi
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  [[ $NS_MADE == 1 ]] && remove_namespaces
  [[ -n "$WD" ]] && rm -rf "$WD" # keys, configs and the like; results stay in $OUT
  [[ $rc -ne 0 ]] && log "failed (exit $rc); logs in $OUT"
  exit "$rc"
}
arm_cleanup() {
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}
cleanup_command() { # the script's arguments: for `cleanup`, remove what a killed run left behind
  [[ "${1:-}" == cleanup ]] || return 0
  [[ $EUID -eq 0 ]] || die "run as root"
  remove_namespaces
  exit 0
}

# ------------------------------------------------------------------ tools and binaries
need() { # CMD...
  local b
  for b in "$@"; do command -v "$b" > /dev/null || die "missing $b"; done
}
ensure_tcpdump() {
  if ! command -v tcpdump > /dev/null; then
    log "installing tcpdump (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tcpdump > /dev/null
  fi
}
find_wireguard_go() { # -> WGGO, as ../shared/bench/tunnel-rig.sh finds it
  WGGO="${RIG_WIREGUARD_GO_BIN:-$(command -v wireguard-go || true)}"
  [[ -n "$WGGO" ]] || die "wireguard-go not found (apt-get install wireguard-go, or RIG_WIREGUARD_GO_BIN)"
}
build_release() { # [EXAMPLE...]: qgw (and these examples of gateway), qkd-kme-sim (feature sim)
  local e what="" ex=()
  for e in "$@"; do
    ex+=(--example "$e")
    what+=", example $e"
  done
  log "cargo build --release: qgw, qkd-kme-sim (feature sim)$what"
  (cd "$repo" && nice -n 10 cargo build --release --locked -q -p gateway --bin qgw "${ex[@]}" \
    && nice -n 10 cargo build --release --locked -q -p qkd-link --features sim --bin qkd-kme-sim)
}

# ------------------------------------------------------------------ namespaces, keys, KME
make_namespaces() { # BENCH_NS, each with lo up; none of them may exist yet
  [[ -z "$(our_ns)" ]] || die "namespaces of an earlier run exist: $0 cleanup"
  NS_MADE=1
  local ns
  for ns in "${BENCH_NS[@]}"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
}
veth() { # NS1 IF1 ADDR1 NS2 IF2 ADDR2: a veth pair, /24 addresses, up
  ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
  ip -n "$1" addr add "$3/24" dev "$2"
  ip -n "$4" addr add "$6/24" dev "$5"
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
}
ns_of() { if [[ $1 == a ]]; then echo "$NS_A"; else echo "$NS_B"; fi; }

make_keys() { # each site's WireGuard and ML-DSA key pair
  (
    umask 077
    local s
    for s in a b; do
      "$BIN/qgw" genkey > "$WD/$s.key"
      "$BIN/qgw" pubkey < "$WD/$s.key" > "$WD/$s.pub"
      "$BIN/qgw" genkey --mldsa > "$WD/$s.mldsa"
      "$BIN/qgw" pubkey --mldsa < "$WD/$s.mldsa" > "$WD/$s.mldsa.pub"
    done
  )
}

pair_setup() { # IF_A IF_B: two sites joined by a veth, keys, the KME (in NS_A) reached on UL_A
  make_namespaces
  veth "$NS_A" "$1" "$UL_A" "$NS_B" "$2" "$UL_B"
  make_keys
  cp "$WD/a.mldsa.pub" "$WD/b.mldsa.pub" "$OUT/" # public keys, for verifying the audit logs later
  kme_config "$UL_A"
}

kme_config() { # HOST: KME_A on 127.0.0.1:8441 (site a), KME_B on HOST:8442 (site b)
  KME_HOST=$1
  "$BIN/qkd-kme-sim" pki --out "$WD/pki" --san "$KME_HOST" > /dev/null
  cat > "$WD/kme.yaml" << EOF
pki_dir: pki
ca: ca.pem
admin:
  listen: 127.0.0.1:8440
limits: { key_size: 256, min_key_size: 64, max_key_size: 1024, max_key_per_request: 16, max_sae_id_count: 0 }
kmes:
  - { id: KME_A, listen: "127.0.0.1:8441", saes: [SAE_A], cert: kme_a.pem, key: kme_a.key }
  - { id: KME_B, listen: "$KME_HOST:8442", saes: [SAE_B], cert: kme_b.pem, key: kme_b.key }
links:
  - { kmes: [KME_A, KME_B], secret_key_rate_bps: 500000, max_key_count: 100000, initial_key_count: 2000 }
EOF
}

kme_start() { # LOG LIFE: the KME simulator in NS_A for at most LIFE s, until it is ready; KME_PID
  start "$NS_A" "$1" timeout -k 5 "$2" "$BIN/qkd-kme-sim" serve --config "$WD/kme.yaml"
  KME_PID=$last
  local _
  for _ in $(seq 100); do grep -q '^ready' "$1" && return 0; sleep 0.1; done
  die "KME simulator did not start: $(tail -n 3 "$1")"
}

# ------------------------------------------------------------------ the tunnels
qgw_config() { # SITE ENDPOINT-HOST AUDIT-LOG [REKEY] -> $WD/site-SITE.yaml, checked
  local s=$1 p=b tn=$TN_A ptn=$TN_B kme=127.0.0.1:8441 role=master rekey=""
  [[ $s == b ]] && p=a tn=$TN_B ptn=$TN_A kme=$KME_HOST:8442 role=slave
  [[ -n "${4:-}" ]] && rekey=$'\n'"    rekey_after_seconds: $4" # none: qgw's default
  cat > "$WD/site-$s.yaml" << EOF
$(interface_section "$s" "$tn")
  mldsa_private_key_file: $WD/$s.mldsa
qkd:
  kme_url: https://$kme
  sae_id: SAE_${s^^}
  ca_file: $WD/pki/ca.pem
  cert_file: $WD/pki/sae_$s.pem
  key_file: $WD/pki/sae_$s.key
peers:
  - name: site-$p
    public_key: "$(cat "$WD/$p.pub")"
    endpoint: $2:$PORT
    allowed_ips: [$ptn/32]
    hybrid: on
    mldsa_public_key_file: $WD/$p.mldsa.pub
    qkd: { peer_sae_id: SAE_${p^^}, policy: required, role: $role }$rekey
audit:
  path: $3
  checkpoint_seconds: 5
EOF
  "${QGW:-$BIN/qgw}" check-config "$WD/site-$s.yaml" > /dev/null || die "check-config site $s"
}

interface_section() { # SITE TUNNEL-ADDRESS: the interface: lines both configs share
  cat << EOF
interface:
  name: $QGW_IF-$1
  address: $2/24
  listen_port: $PORT
  private_key_file: $WD/$1.key
  mtu: $MTU
  uapi: false
EOF
  if [[ -n "${QGW_OFFLOAD:-}" ]]; then echo "  offload: $QGW_OFFLOAD"; fi
  if [[ -n "${QGW_THREADS:-}" ]]; then echo "  threads: $QGW_THREADS"; fi
}

qgw_plain_config() { # SITE ENDPOINT-HOST -> $WD/site-SITE.yaml: plain WireGuard, checked
  local s=$1 p=b tn=$TN_A ptn=$TN_B
  [[ $s == b ]] && p=a tn=$TN_B ptn=$TN_A
  cat > "$WD/site-$s.yaml" << EOF
$(interface_section "$s" "$tn")
peers:
  - name: site-$p
    public_key: "$(cat "$WD/$p.pub")"
    endpoint: $2:$PORT
    allowed_ips: [$ptn/32]
EOF
  "${QGW:-$BIN/qgw}" check-config "$WD/site-$s.yaml" > /dev/null || die "check-config site $s"
}

qgw_up() { # SITE LOG LIFE: `qgw up` of SITE for at most LIFE s; the timeout wrapper's PID in $last
  start "$(ns_of "$1")" "$2" timeout -k 5 "$3" "${QGW:-$BIN/qgw}" up --config "$WD/site-$1.yaml"
}

wg_go_up() { # SITE IFACE ENDPOINT-HOST LOG_LEVEL LIFE LOG: wireguard-go (the timeout wrapper's PID
  # in $last), then, once its device exists, key, port, the peer (no keepalive), address, MTU, up
  local s=$1 ifc=$2 ns p=b tn=$TN_A ptn=$TN_B _
  ns=$(ns_of "$s")
  [[ $s == b ]] && p=a tn=$TN_B ptn=$TN_A
  start "$ns" "$6" env LOG_LEVEL="$4" timeout -k 5 "$5" "$WGGO" -f "$ifc"
  for _ in $(seq 500); do ip netns exec "$ns" wg show "$ifc" > /dev/null 2>&1 && break; sleep 0.01; done
  ip netns exec "$ns" wg set "$ifc" private-key "$WD/$s.key" listen-port "$PORT" \
    peer "$(cat "$WD/$p.pub")" allowed-ips "$ptn/32" endpoint "$3:$PORT" \
    || die "wg set at site $s failed: $(tail -n 3 "$6")"
  ip -n "$ns" addr add "$tn/24" dev "$ifc"
  ip -n "$ns" link set "$ifc" mtu "$MTU" up
}

tunnel_up() { # seconds: ping a -> b until it answers
  local deadline=$((SECONDS + $1))
  while ((SECONDS < deadline)); do
    ip netns exec "$NS_A" ping -c 1 -W 1 "$TN_B" > /dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

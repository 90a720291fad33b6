#!/usr/bin/env bash
# Runs qgw in ../shared/bench/tunnel-rig.sh's `custom` mode with RIG_CUSTOM_UAPI=0: writes a qgw
# config from the variables the rig exports and runs `qgw up` in the foreground. The rig then adds
# the tunnel address and sets MTU and link up itself, so the config has `address: []`.
#
#   cargo build -p gateway --release
#   RIG_CUSTOM_CMD="$PWD/gateway/bench/rig-custom.sh {IF}" RIG_CUSTOM_UAPI=0 RIG_CUSTOM_NAME=qgw \
#     ../shared/bench/tunnel-rig.sh matrix -n 3 wireguard-go boringtun gotatun custom
#
# QGW_BIN overrides the binary (default: target/release/qgw of this checkout); QGW_OFFLOAD=false
# turns the TUN and UDP offloads off (interface.offload); QGW_THREADS=N sets interface.threads.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
qgw="${QGW_BIN:-$here/../../target/release/qgw}"
if [[ "${1:-}" == "--version" ]]; then
  echo "qgw-$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  exit 0
fi
ifc="${1:-$RIG_IFACE}"
cfg="$(dirname "$RIG_PRIVATE_KEY_FILE")/qgw-$ifc.yaml"
cat > "$cfg" <<YAML
interface:
  name: $ifc
  address: []
  listen_port: $RIG_LISTEN_PORT
  private_key_file: $RIG_PRIVATE_KEY_FILE
  mtu: $RIG_TUN_MTU
  uapi: false${QGW_OFFLOAD:+
  offload: $QGW_OFFLOAD}${QGW_THREADS:+
  threads: $QGW_THREADS}
peers:
  - name: peer
    public_key: "$RIG_PEER_PUBLIC_KEY"
    endpoint: $RIG_PEER_ENDPOINT
    allowed_ips: [$RIG_ALLOWED_IPS]
    preshared_key_file: $RIG_PSK_FILE
YAML
exec "$qgw" up --config "$cfg"

# shellcheck shell=bash
# Sourced by rig-compare.sh and udp-sockets.sh: RIG_RMEM_DEFAULT=BYTES sets the host's default
# socket receive buffer (net.core.rmem_default, 212992 on Debian) for the run and puts the old
# value back when the script exits. It is the buffer of every UDP socket that does not set its
# own: the rig's iperf3 server and the daemons (wireguard-go forces 7 MiB on its own sockets), so
# it applies to every implementation of a run alike. Why it matters for 200-byte UDP on the
# shared 2-vCPU rig: docs/gateway-decisions.md §9 ("The receiver's socket buffer").
#
#   rmem_apply     set it when RIG_RMEM_DEFAULT is given (bytes); print what was set, to stderr
#   rmem_restore   put the saved value back (idempotent; for the script's EXIT trap)
#   rmem_note      "rmem_default=BYTES": the value in force, for result files

RMEM_SAVED=""

rmem_apply() {
  [[ -n "${RIG_RMEM_DEFAULT:-}" ]] || return 0
  [[ "$RIG_RMEM_DEFAULT" =~ ^[0-9]+$ ]] || {
    echo "RIG_RMEM_DEFAULT=$RIG_RMEM_DEFAULT: a size in bytes expected" >&2
    exit 2
  }
  RMEM_SAVED="$(sysctl -n net.core.rmem_default)"
  sysctl -q -w net.core.rmem_default="$RIG_RMEM_DEFAULT"
  echo "net.core.rmem_default=$RIG_RMEM_DEFAULT for this run (was $RMEM_SAVED)" >&2
}

rmem_restore() {
  [[ -n "$RMEM_SAVED" ]] || return 0
  sysctl -q -w net.core.rmem_default="$RMEM_SAVED"
  RMEM_SAVED=""
}

rmem_note() { echo "rmem_default=$(sysctl -n net.core.rmem_default)"; }

#!/usr/bin/env bash
# Compares two qgw binaries on ../shared/bench/tunnel-rig.sh in one session: round by round, each
# binary runs the rig's test list as `custom` (through rig-custom.sh), optionally after
# wireguard-go as a reference, and the results go to one file the rig then tables.
#
#   gateway/bench/rig-compare.sh OLD_QGW NEW_QGW [ROUNDS] [-- RIG_OPTIONS...]
#   e.g. gateway/bench/rig-compare.sh /tmp/qgw-old target/release/qgw 5 -- -c split -T udp,udp-rev
#
# RIG_REFERENCE="wireguard-go boringtun gotatun" adds those implementations to every round;
# OLD_THREADS / NEW_THREADS set interface.threads of that side (e.g. the same binary twice, with 1
# and 2 threads; a binary older than the setting must not get one). Run as root. Results: the
# file named by RIG_COMPARE_OUT (default rig-compare.txt in the current directory).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rig="${RIG:-$here/../../../shared/bench/tunnel-rig.sh}"
[[ $# -ge 2 ]] || { sed -n '2,12p' "$0"; exit 2; }
old="$(realpath "$1")" new="$(realpath "$2")"
shift 2
rounds=3
if [[ $# -gt 0 && "$1" != "--" ]]; then rounds="$1"; shift; fi
[[ "${1:-}" == "--" ]] && shift
out="${RIG_COMPARE_OUT:-rig-compare.txt}"
: > "$out"
for ((round = 1; round <= rounds; round++)); do
  for reference in ${RIG_REFERENCE:-}; do
    "$rig" "$@" -o "$out" "$reference"
  done
  for pair in "qgw-old=$old=${OLD_THREADS:-}" "qgw-new=$new=${NEW_THREADS:-}"; do
    IFS== read -r name bin threads <<< "$pair"
    RIG_CUSTOM_CMD="$here/rig-custom.sh {IF}" RIG_CUSTOM_UAPI=0 RIG_CUSTOM_NAME="$name" \
      RIG_CUSTOM_VERSION="$name" QGW_BIN="$bin" QGW_THREADS="$threads" "$rig" "$@" -o "$out" custom
  done
done
"$rig" table "$out"

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
# and 2 threads; a binary older than the setting must not get one); RIG_RMEM_DEFAULT=BYTES runs
# with that default socket receive buffer (receive-buffer.sh). Run as root. Results: the file
# named by RIG_COMPARE_OUT (default rig-compare.txt in the current directory). A run of the rig
# that fails is dropped whole and tried once more (NOTE lines in the results say so); the script
# then exits 1 if one failed twice.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rig="${RIG:-$here/../../../shared/bench/tunnel-rig.sh}"
[[ $# -ge 2 ]] || { sed -n '2,16p' "$0"; exit 2; }
old="$(realpath "$1")" new="$(realpath "$2")"
shift 2
rounds=3
if [[ $# -gt 0 && "$1" != "--" ]]; then rounds="$1"; shift; fi
[[ "${1:-}" == "--" ]] && shift
out="${RIG_COMPARE_OUT:-rig-compare.txt}"
# shellcheck source=receive-buffer.sh source-path=SCRIPTDIR
source "$here/receive-buffer.sh"
part="$(mktemp /tmp/rig-compare.XXXXXX)" # one rig run's results, until it has completed
trap 'rmem_restore; rm -f "$part"' EXIT
trap 'exit 130' INT TERM
rmem_apply
echo "NOTE $(rmem_note) date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$out"
rig_options=("$@")
failed=0

run_rig() { # IMPL: one run of the rig's test list, kept only when it completed; one more try
  local attempt
  for attempt in 1 2; do
    : > "$part"
    if "$rig" "${rig_options[@]}" -o "$part" "$1"; then
      cat "$part" >> "$out"
      return 0
    fi # the rig has cleaned up after itself; its partial results are not kept
    echo "NOTE round $round: a failed run of ${RIG_CUSTOM_NAME:-$1} dropped (attempt $attempt)" | tee -a "$out" >&2
  done
  failed=1
}

for ((round = 1; round <= rounds; round++)); do
  for reference in ${RIG_REFERENCE:-}; do
    run_rig "$reference"
  done
  for pair in "qgw-old=$old=${OLD_THREADS:-}" "qgw-new=$new=${NEW_THREADS:-}"; do
    IFS== read -r name bin threads <<< "$pair"
    RIG_CUSTOM_CMD="$here/rig-custom.sh {IF}" RIG_CUSTOM_UAPI=0 RIG_CUSTOM_NAME="$name" \
      RIG_CUSTOM_VERSION="$name" QGW_BIN="$bin" QGW_THREADS="$threads" run_rig custom
  done
done
"$rig" table "$out"
exit "$failed"

#!/usr/bin/env bash
# Instructions per 1420-byte packet on the data path, counted by valgrind's callgrind (a count of
# executed instructions, repeatable whatever else the machine does; this VM has no PMU for
# `perf stat`). For each mode of gateway/examples/packet_cost.rs the example runs twice, with N1
# and N2 packets; (total(N2) − total(N1)) / (N2 − N1) cancels the set-up (keys, handshake).
#
#   gateway/bench/packet-cost.sh [N1 N2]      (default 1000 5000; needs valgrind)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$here/../.."
n1=${1:-1000} n2=${2:-5000}
command -v valgrind > /dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
(cd "$repo" && cargo build --release --locked -q -p gateway --example packet_cost)
bin="$repo/target/release/examples/packet_cost"
total() { # MODE N -> instructions executed
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '%-14s %s\n' mode "instructions per packet"
for mode in seal seal-open tso-seal seal-open-gro; do
  a=$(total "$mode" "$n1") b=$(total "$mode" "$n2")
  printf '%-14s %d\n' "$mode" $(((b - a) / (n2 - n1)))
done

#!/usr/bin/env bash
# Instructions per operation for every backend, counted by valgrind's callgrind.
# Unlike wall-clock time this does not depend on machine load. Each (backend, op) is run twice,
# with 0 and with N iterations; (total(N) - total(0)) / N removes start-up and key set-up.
#
# Usage: scripts/callgrind.sh [backend...]    (default: all)
# Env:   N_KEM (default 200), N_DSA (default 100), N_SIGN (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin pq-ops >&2
BIN=target/release/pq-ops
N_KEM=${N_KEM:-200}
N_DSA=${N_DSA:-100}
N_SIGN=${N_SIGN:-300}
BACKENDS=("$@")
if [ ${#BACKENDS[@]} -eq 0 ]; then
    BACKENDS=(libcrux-portable libcrux-avx2 libcrux-auto rustcrypto aws-lc-rs pqcrypto)
fi

count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$BIN" "$@" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

echo "# CPU features as seen under valgrind: $(valgrind -q "$BIN" info)" >&2
printf "alg\tbackend\top\tinstructions_per_op\n"
for b in "${BACKENDS[@]}"; do
    for op in keygen encaps decaps; do
        base=$(count kem "$b" "$op" 0)
        total=$(count kem "$b" "$op" "$N_KEM")
        printf "mlkem768\t%s\t%s\t%d\n" "$b" "$op" $(((total - base) / N_KEM))
    done
    for op in keygen sign verify; do
        n=$N_DSA
        [ "$op" = sign ] && n=$N_SIGN
        base=$(count dsa "$b" "$op" 0)
        total=$(count dsa "$b" "$op" "$n")
        printf "mldsa65\t%s\t%s\t%d\n" "$b" "$op" $(((total - base) / n))
    done
done

#!/usr/bin/env bash
# The whole qgw test suite on a fresh machine: installs what it needs, then runs every check CI runs.
# Usage: ./scripts/test.sh            (as root for the network-namespace tests once they exist)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
cargo --version
rustup component list --installed 2>/dev/null | grep -qE '^(clippy|rustfmt)' || rustup component add clippy rustfmt

step "packages"
# Debian packages the suite needs: python3 (combiner reference), iproute2/ping/iperf3 and
# wireguard-go + wireguard-tools (the namespace interop tests), curl (an independent ETSI 014 client),
# tcpdump (the test that no plaintext crosses the underlay).
need=()
for pair in python3:python3 ip:iproute2 ping:iputils-ping iperf3:iperf3 wg:wireguard-tools \
            wireguard-go:wireguard-go curl:curl tcpdump:tcpdump; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages: ${need[*]}; run as root or install them first" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "unit, property, known-answer and integration tests (network-namespace tests need root)"
cargo test --workspace --locked

step "keymix combiner vectors, recomputed by the independent Python reference"
python3 keymix/tests/vectors/combiner_reference.py

step "fuzz targets type-check (they also run as property tests above)"
CARGO_TARGET_DIR="$PWD/target" cargo check --manifest-path fuzz/Cargo.toml --locked --bins

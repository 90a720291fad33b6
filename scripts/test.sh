#!/usr/bin/env bash
# The whole qgw test suite on a fresh machine: installs what it needs, then runs every check CI runs.
# Usage: ./scripts/test.sh            (as root for the network-namespace tests once they exist)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
cargo --version
rustup component list --installed 2>/dev/null | grep -qE '^(clippy|rustfmt)' || rustup component add clippy rustfmt

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "unit, property, known-answer and integration tests"
cargo test --workspace --locked

step "benches compile"
cargo bench --workspace --locked --no-run

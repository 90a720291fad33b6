#!/usr/bin/env bash
# The whole qgw test suite on a fresh machine: installs what it needs, then runs every check CI runs.
# Usage: ./scripts/test.sh            (as root for the network-namespace tests once they exist)
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step's title starts with the suite's elapsed time, so a slow step shows in any CI log.
started=$SECONDS
step() { printf '\n== [%dm%02ds] %s\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*"; }
trap 'printf "\n== [%dm%02ds] suite ended (exit %d)\n" $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) $?' EXIT

step "toolchain"
cargo --version
rustup component list --installed 2>/dev/null | grep -qE '^(clippy|rustfmt)' || rustup component add clippy rustfmt

step "packages"
# Debian packages the suite needs: python3 (combiner reference), iproute2/ping/iperf3 and
# wireguard-go + wireguard-tools (the namespace interop tests), curl (an independent ETSI 014 client),
# tcpdump (the test that no plaintext crosses the underlay), promtool from prometheus (metrics and
# rules lint), dcmtk + mosquitto (the demo's DICOM store and MQTT telemetry), shellcheck,
# keepalived (VRRP between a site's active and standby gateway in the HA namespace test).
# shellcheck source=scripts/lib/debian.sh
. scripts/lib/debian.sh
mapfile -t need < <(missing_debian_packages python3:python3 ip:iproute2 ping:iputils-ping \
  iperf3:iperf3 wg:wireguard-tools wireguard-go:wireguard-go curl:curl tcpdump:tcpdump \
  promtool:prometheus storescu:dcmtk mosquitto:mosquitto mosquitto_pub:mosquitto-clients \
  shellcheck:shellcheck systemd-analyze:systemd keepalived:keepalived)
install_debian_packages test.sh "${TMPDIR:-/tmp}/qgw-test-apt.log" "${need[@]}"

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "unit, property, known-answer and integration tests (network-namespace tests need root; every qgw there seals and opens on two threads, QGW_TEST_THREADS=2; three tests at a time, RUST_TEST_THREADS=3: the namespace tests mostly wait on real timers)"
RUST_TEST_THREADS=3 QGW_TEST_THREADS=2 cargo test --workspace --locked -- --skip simulation_

step "the qgw pair, wireguard-go interop and hybrid namespace tests again with TUN and UDP offloads forced off and one crypto thread (QGW_TEST_OFFLOAD=off QGW_TEST_THREADS=1)"
# --workspace, like the first run: the same features for every dependency, so nothing is rebuilt
# (with -p gateway, tokio, hyper, qkd-link and gateway were compiled again, 69 s).
RUST_TEST_THREADS=3 QGW_TEST_OFFLOAD=off QGW_TEST_THREADS=1 cargo test --workspace --locked --test namespaces -- qgw_pair:: wireguard_go:: hybrid::

step "deterministic simulation of whole nodes: 2000 fixed schedules and 20 new ones (seeds printed; QGW_SIM_SEED=<seed> replays one)"
cargo test --workspace --test simulation --locked -- --nocapture

step "keymix combiner vectors, recomputed by the independent Python reference"
python3 keymix/tests/vectors/combiner_reference.py

step "fuzz smoke run: every target built with cargo-fuzz (installed if missing; a target that no longer compiles fails here) and run 10 s from its seeds, two at a time; a crash fails"
./scripts/fuzz-smoke.sh 10

step "deployment files: Prometheus config, alert rules and their tests, Grafana dashboard, systemd units, Dockerfile"
./scripts/check-deploy.sh

step "the two-hospital demo, non-interactive, with its outcomes, /metrics (promtool) and audit-log checks"
./scripts/demo-check.sh

step "the regional demo (./demo.sh --sites 4): a data centre and three hospitals in namespaces on a Madrid-like QKD network in the simulator (keys relayed through two trusted ring nodes; hospital 3 on two QKD paths through disjoint trusted nodes), fewer messages per hospital (3 DICOM, 200 MQTT, 3 s iperf3), every outcome at every hospital, /metrics (promtool), every peer rotated with QKD, the key each QKD link consumed accounted path by path, then hospital 3's west path cut: require: all fails closed on that link alone (about 2 min)"
./scripts/demo-check.sh --sites 4

step "live alerting: the demo again with a real Prometheus per site and Alertmanager (prometheus-alertmanager, installed if missing) routing to a webhook receiver; KME killed, then a gateway: QKD link down, peer fail-closed and gateway down fire and resolve, times printed (rules' for: scaled down 30x, checked to be the only difference)"
./scripts/alerting-check.sh

step "the Debian package: cargo deb (cargo-deb, installed if missing), dpkg-deb checks, apt install into a clean debootstrap'd Debian 12 root (cached under target/check-package/), the installed binaries, man pages, completions, units, example configs and user, reinstall, upgrade, remove and purge"
./scripts/check-package.sh

//! Every network-namespace test of the gateway, in one test binary: real `qgw` processes (and
//! wireguard-go, keepalived, the KME simulator, iperf3, tcpdump) in namespaces each test creates
//! and removes. The harness and its rules (root, prerequisites, `CI=true`, clean-up) are in
//! `netns/mod.rs`.
//!
//! One binary rather than one per file, so that the tests, which mostly wait on real timers
//! (rekeys every 5 s, a KME kept down, failovers), share the test runner's threads: the suite
//! runs them with `RUST_TEST_THREADS=3` (`scripts/test.sh`). Each lab's namespaces, interfaces
//! and scratch directory are named after the process and a counter, so tests never meet.
//!
//! | module | what it runs |
//! |---|---|
//! | [`qgw_pair`] | qgw ↔ qgw: pings, TCP, status, UAPI, rekey, roaming, restart, cookies |
//! | [`wireguard_go`] | qgw ↔ stock wireguard-go: the same, with and without a PSK |
//! | [`offload`] | the data path with TUN and UDP offloads on, off and mixed |
//! | [`hybrid`] | the hybrid key agreement with a KME per site: rotations, outages, attacks |
//! | [`sources`] | two QKD paths per link, `require: all` |
//! | [`ops`] | metrics (promtool), health, systemd notifications, the audit log |
//! | [`control`] | slow control clients cannot stall the packet path |
//! | [`ha`] | a site's active and standby gateway under keepalived |
//! | [`hub`] | a hub with 100 hybrid spokes |
//!
//! The suite's second pass runs `qgw_pair::`, `wireguard_go::` and `hybrid::` again with the
//! offloads forced off and one crypto thread.

#[path = "../netns/mod.rs"]
mod netns;

mod control;
mod ha;
mod hub;
mod hybrid;
mod offload;
mod ops;
mod qgw_pair;
mod sources;
mod wireguard_go;

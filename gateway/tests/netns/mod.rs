//! Shared harness of the network-namespace tests (and of the KME bridge test, which needs only
//! [`kme`]). One way to do each set-up step, each in its own file:
//!
//! | file | what it sets up |
//! |---|---|
//! | [`lab`] | two namespaces `a` and `b` joined by a veth pair (underlay 10.200.0.1 ↔ 10.200.0.2), processes started inside them, pings, and clean-up on drop |
//! | [`qgw`] | key files, qgw configuration files, `qgw up` and `qgw status` |
//! | [`pair`] | a running qgw ↔ qgw or qgw ↔ wireguard-go pair, with options |
//! | [`kme`] | the KME simulator for tests: its PKI, its configuration and a running instance |
//! | [`hub`] | a hub qgw, master of 100 hybrid spokes, each a qgw in its own namespace on a bridge, and the simulator serving the region topology |
//! | [`hub_measure`] | that hub's memory, CPU, restart, KME load and key consumption, printed (`QGW_HUB_MEASURE=1`) |
//! | [`hybrid`] | two hybrid qgw sites, each with its own KME from the simulator |
//! | [`ha`] | a site with an active and a standby gateway under keepalived (VRRP), a host behind them, facing a hybrid site b |
//! | [`ha_layout`] | that site pair's namespaces and bridges, qgw configurations and keepalived configurations |
//! | [`stream`] | a timed stream of numbered UDP datagrams that measures how long traffic stops |
//! | [`traffic`] | traffic made and observed by the test process itself (TCP transfer, handshake flood, captures) |
//! | [`control`] | control-plane clients run by the test process: well-behaved ones timed against a deadline, trickle clients, connection hoarders |
//!
//! Everything a [`lab::Lab`] creates (namespaces, processes it started, files) is removed on drop, also
//! when the test panics; only PIDs the lab started are ever signalled.
//!
//! `QGW_TEST_OFFLOAD=off` writes `offload: false` into every qgw configuration a test does not
//! set itself, and checks at every start that `qgw status` then lists no offload: the suite runs
//! the pair, interop and hybrid tests once more that way (the data path without TUN and UDP
//! offloads, docs/gateway-decisions.md §9). `QGW_TEST_THREADS=N` likewise writes `threads: N` and
//! checks that status reports N crypto threads: the suite's first run has 2 (the parallel
//! cipher, whatever the machine's default), its second run 1 with the offloads off (the data
//! path as it was before both).
//!
//! Prerequisites: root, iproute2, `ping`; `wg`/`wireguard-go`/`iperf3`/`tcpdump` where a test says
//! so. Under `CI=true` a missing prerequisite fails the test, and `QGW_SKIP_NETNS=1` is refused;
//! outside CI the test prints why and skips.
#![allow(dead_code, clippy::unwrap_used)]

pub mod control;
pub mod ha;
pub mod ha_layout;
pub mod hub;
pub mod hub_measure;
pub mod hybrid;
pub mod kme;
pub mod lab;
pub mod pair;
pub mod qgw;
pub mod stream;
pub mod traffic;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs a command on the host and asserts success.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A command's trimmed stdout.
pub fn stdout(args: &[&str]) -> String {
    String::from_utf8(run(args).stdout)
        .unwrap()
        .trim()
        .to_owned()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn on_path(tool: &str) -> bool {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|d| Path::new(&d).join(tool).exists())
}

/// The running test's name: libtest runs each test on a thread named after its path
/// (`hybrid::required_…`); `::` becomes `-`, so it can name a scratch directory.
pub fn test_name() -> String {
    let thread = std::thread::current();
    thread.name().unwrap_or("netns_test").replace("::", "-")
}

/// Whether the running test can run (root, iproute2, `ping` and `tools`). Under `CI=true` every
/// problem is a failure (never a silent skip); elsewhere the reason is printed and the test
/// returns early.
pub fn prerequisites(tools: &[&str]) -> bool {
    let test = test_name();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let skip = std::env::var_os("QGW_SKIP_NETNS").is_some_and(|v| v == "1");
    assert!(
        !(ci && skip),
        "{test}: QGW_SKIP_NETNS=1 is not honoured under CI=true: the namespace tests must run in CI"
    );
    if skip {
        eprintln!("{test}: skipped (QGW_SKIP_NETNS=1)");
        return false;
    }
    let mut problem = (!is_root()).then(|| "needs root (network namespaces, TUN)".to_owned());
    for tool in ["ip", "ping"].iter().chain(tools) {
        if problem.is_none() && !on_path(tool) {
            problem = Some(format!(
                "{tool} not found: apt-get install iproute2 iputils-ping wireguard-go wireguard-tools iperf3 tcpdump prometheus curl keepalived"
            ));
        }
    }
    match problem {
        None => true,
        Some(p) if ci => panic!("{test}: {p} (CI=true: namespace tests may not skip)"),
        Some(p) => {
            eprintln!("{test}: skipped: {p}");
            false
        }
    }
}

/// Waits up to `deadline` for `f`, else panics naming `what`.
pub fn wait_for(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {deadline:?} waiting for {what}");
}

//! A hub with 100 hybrid peers in network namespaces (docs/gateway-decisions.md §11): one hub
//! qgw, master of 100 spokes, each spoke a qgw in its own namespace with its own SAE of the
//! region topology (configs/kme-sim-region.yaml, relayed through trusted nodes, docs/qkd-network.md),
//! QKD `required`. Every spoke is reachable through the tunnel, every epoch has QKD among its
//! key sources at both ends, the hub's status and metrics list all 100 peers, and the
//! simulator's per-link counters conserve keys. See `netns/hub.rs` for the layout.
//!
//! `QGW_HUB_MEASURE=1` also measures and prints (asserts nothing about) the hub's memory per
//! peer, CPU per epoch, time to a fresh epoch at every peer after a `kill -9` and restart, KME
//! requests per second at the peak, QKD key per link per hour and the size and render time of
//! `qgw status` and `/metrics` (`netns/hub_measure.rs`):
//!
//! ```text
//! QGW_HUB_MEASURE=1 cargo test -p gateway --test namespaces -- hub:: --nocapture
//! ```
#![allow(clippy::unwrap_used)]

use crate::netns;

use std::collections::BTreeSet;
use std::time::Duration;

use netns::hub::{Hub, SPOKES, audit_path, has_qkd_epoch, peer_name, peers_with_qkd, start_hub};

const QGW_BIN: &str = env!("CARGO_BIN_EXE_qgw");
use netns::hub_measure::{measure, metrics};
use netns::qgw::status;
use netns::wait_for;

#[test]
fn a_hub_with_100_hybrid_spokes_reaches_every_spoke_with_qkd_keys() {
    let measuring = std::env::var("QGW_HUB_MEASURE").is_ok_and(|v| v == "1");
    // Measuring rotates every 10 s, so a one-minute window holds ~600 epochs.
    let Some(mut hub) = start_hub(measuring.then_some(10)) else {
        return;
    };
    wait_for(
        "a QKD epoch with every spoke",
        Duration::from_secs(60),
        || peers_with_qkd(&hub).len() == SPOKES,
    );
    every_spoke_answers_through_the_tunnel(&hub);
    every_spoke_has_a_qkd_epoch(&hub);
    status_and_metrics_list_every_peer(&hub);
    the_audit_log_verifies_and_names_every_peer(&hub);
    the_simulator_conserves_keys_on_every_link(&hub.sim.state());
    if measuring {
        measure(&mut hub);
    }
}

fn every_spoke_answers_through_the_tunnel(hub: &Hub) {
    let silent: Vec<&str> = (hub.spokes.iter())
        .filter(|s| {
            !hub.lab
                .ping_until(&hub.ns, &s.tunnel_ip, Duration::from_secs(10))
        })
        .map(|s| s.tunnel_ip.as_str())
        .collect();
    assert!(
        silent.is_empty(),
        "spokes not reachable through the tunnel: {silent:?}"
    );
}

fn every_spoke_has_a_qkd_epoch(hub: &Hub) {
    for s in &hub.spokes {
        let st = status(&hub.lab, &s.ns, &s.iface);
        let peer = &st["peers"][0];
        assert!(
            has_qkd_epoch(peer),
            "spoke {} ({}) has no QKD epoch: {peer}",
            s.iface,
            s.sae
        );
    }
}

fn status_and_metrics_list_every_peer(hub: &Hub) {
    let want: BTreeSet<String> = (1..=SPOKES).map(peer_name).collect();
    let st = status(&hub.lab, &hub.ns, &hub.iface);
    let peers = st["peers"].as_array().unwrap();
    let named: BTreeSet<String> = (peers.iter())
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(named, want, "`qgw status` lists every peer");
    for p in peers {
        assert!(has_qkd_epoch(p), "hub status: {p}");
        assert_eq!(p["hybrid"], "master", "{p}");
    }
    let text = metrics(hub, 9586);
    let with_qkd: BTreeSet<String> = (text.lines())
        .filter(|l| l.starts_with("qgw_peer_epoch_sources{") && l.contains("qkd"))
        .filter_map(|l| Some(l.split("peer=\"").nth(1)?.split('"').next()?.to_owned()))
        .collect();
    assert_eq!(with_qkd, want, "/metrics has every peer's epoch with QKD");
}

/// The hub's signed audit log passes `qgw audit verify` with the hub's ML-DSA key and records an
/// epoch with a QKD key ID for every one of the 100 peers.
fn the_audit_log_verifies_and_names_every_peer(hub: &Hub) {
    let (log, key) = (
        audit_path(&hub.lab.dir, 51820),
        hub.lab.dir.join("hub.mldsa.pub"),
    );
    let verify = std::process::Command::new(QGW_BIN)
        .args(["audit", "verify", "--key"])
        .args([&key, &log])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "qgw audit verify {}: {}",
        log.display(),
        String::from_utf8_lossy(&verify.stdout)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let with_qkd: BTreeSet<String> = (text.lines())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| {
            r["qkd_key_ids"]
                .as_array()
                .is_some_and(|ids| !ids.is_empty())
        })
        .filter_map(|r| r["peer"].as_str().map(str::to_owned))
        .collect();
    let want: BTreeSet<String> = (1..=SPOKES).map(peer_name).collect();
    assert_eq!(with_qkd, want, "an audited QKD epoch for every peer");
}

/// Every key between the hub (KME_DC) and a spoke is relayed: each link of its path spends it.
/// So on every link consumed bits = keys relayed × 256; the data centre's two links and the
/// spokes' links each carry every key once; the ring carries exactly the keys of the spokes on
/// the ring nodes not linked to the data centre (KME_RE, KME_RW: one ring hop each).
fn the_simulator_conserves_keys_on_every_link(state: &serde_json::Value) {
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    let issued = n(&state["stats"]["keys_issued"]);
    assert!(issued >= SPOKES as u64, "{issued} keys issued: {state}");
    assert_eq!(
        n(&state["stats"]["keys_relayed"]),
        issued,
        "every key relayed"
    );
    let (mut dc, mut spokes, mut ring, mut far_spokes) = (0, 0, 0, 0);
    for l in state["links"].as_array().unwrap() {
        let ends = [
            l["kmes"][0].as_str().unwrap(),
            l["kmes"][1].as_str().unwrap(),
        ];
        let keys = n(&l["keys_relayed"]);
        assert_eq!(n(&l["consumed_bits"]), keys * 256, "link {ends:?}: {l}");
        if ends.contains(&"KME_DC") {
            dc += keys;
        } else if ends.iter().any(|e| e.starts_with("KME_S")) {
            assert!(keys >= 10, "ten SAEs behind {ends:?}, {keys} keys");
            spokes += keys;
            if ends.contains(&"KME_RE") || ends.contains(&"KME_RW") {
                far_spokes += keys;
            }
        } else {
            ring += keys;
        }
    }
    assert_eq!(dc, issued, "the data centre's links carry every key once");
    assert_eq!(spokes, issued, "the spokes' links carry every key once");
    assert_eq!(ring, far_spokes, "one ring hop for each key to a far spoke");
}

//! The engine on a QKD network (`docs/qkd-network.md`): keys relayed through trusted nodes spend
//! every link on their path (conserved per link), wait for the relay latency, run at the weakest
//! link's rate, and reroute around a link or node outage. Simulated clock, seeded entropy.

#![allow(clippy::unwrap_used)]
use std::time::{Duration, Instant};

use super::tests::{error, keys, n_keys, sae};
use super::*;
use crate::api::msg;
use crate::api::parse::{parse_error_body, parse_status};
use crate::key::QkdKey;
use crate::sim::entropy::SeededEntropy;

/// Two hospitals' KMEs, H1 and H2, each serving one SAE; the tests add the network.
const HOSPITALS: &str = r#"
limits: { key_size: 256, max_key_per_request: 8 }
kmes:
  - { id: KME_H1, listen: "127.0.0.1:0", saes: [SAE_H1] }
  - { id: KME_H2, listen: "127.0.0.1:0", saes: [SAE_H2] }
"#;

/// H1 on R1, H2 on R3; the ring R1-R2-R3-R4-R1 offers two equal two-hop paths between them.
const RING: &str = r#"
trusted_nodes: [{ id: R1 }, { id: R2 }, { id: R3 }, { id: R4 }]
links:
  - { kmes: [KME_H1, R1], secret_key_rate_bps: 2560, max_key_count: 100, initial_key_count: 40, relay_latency_ms: 2 }
  - { kmes: [R1, R2], secret_key_rate_bps: 2560, max_key_count: 100, initial_key_count: 40, relay_latency_ms: 3, length_km: 20 }
  - { kmes: [R2, R3], secret_key_rate_bps: 2560, max_key_count: 100, initial_key_count: 40, relay_latency_ms: 3, length_km: 20 }
  - { kmes: [R3, R4], secret_key_rate_bps: 2560, max_key_count: 100, initial_key_count: 40, relay_latency_ms: 3, length_km: 20 }
  - { kmes: [R4, R1], secret_key_rate_bps: 2560, max_key_count: 100, initial_key_count: 40, relay_latency_ms: 3, length_km: 20 }
  - { kmes: [R3, KME_H2], secret_key_rate_bps: 2560, max_key_count: 100, initial_key_count: 40, relay_latency_ms: 2 }
"#;

const H1: usize = 0;
const H2: usize = 1;
const INITIAL_BITS: u64 = 40 * 256;

/// An engine for [`HOSPITALS`] plus `network` (trusted nodes and links).
fn engine(network: &str) -> (Engine, Instant) {
    let cfg = SimConfig::from_yaml(&format!("{HOSPITALS}{network}"), "test").unwrap();
    let t0 = Instant::now();
    (Engine::new(&cfg, t0, Box::new(SeededEntropy::new(3))), t0)
}

fn enc(e: &mut Engine, now: Instant, req: KeyRequest) -> Reply {
    let slave = sae("SAE_H2");
    let request = ApiRequest::EncKeys {
        slave,
        request: req,
    };
    e.handle(now, H1, &sae("SAE_H1"), request)
}

fn dec(e: &mut Engine, now: Instant, ids: Vec<KeyId>) -> Reply {
    e.handle(
        now,
        H2,
        &sae("SAE_H2"),
        ApiRequest::DecKeys {
            master: sae("SAE_H1"),
            ids,
        },
    )
}

fn relayed_by(e: &Engine, node: &str) -> u64 {
    e.kmes[e.kme_index(&sae(node)).unwrap()].relayed
}

fn set_link(e: &mut Engine, now: Instant, a: &str, b: &str, down: bool) {
    e.set_link(now, &sae(a), &sae(b), Some(down), None).unwrap();
}

#[test]
fn relayed_keys_spend_every_link_of_their_path_and_are_conserved() {
    let (mut e, t0) = engine(RING);
    let mut relayed_bits = 0u64;
    for (i, (number, size)) in [(1, 256), (3, 512), (8, 64), (2, 1024)]
        .into_iter()
        .enumerate()
    {
        let now = t0 + Duration::from_millis(100 * i as u64);
        let req = KeyRequest {
            number: Some(number),
            size: Some(size),
            ..KeyRequest::default()
        };
        let master = keys(&enc(&mut e, now, req), number as usize);
        relayed_bits += u64::from(number * size);
        let ids = master.iter().map(QkdKey::id).collect();
        let slave = keys(
            &dec(&mut e, now + Duration::from_millis(10), ids),
            number as usize,
        );
        for (m, s) in master.iter().zip(&slave) {
            assert_eq!(m.expose(), s.expose());
        }
    }
    // Path H1-R1-R2-R3-H2 (R2 before R4 by configuration order); R3-R4 and R4-R1 are untouched.
    let state = e.state(t0 + Duration::from_secs(1));
    for (i, l) in e.links.iter().enumerate() {
        let on_path = [0, 1, 2, 5].contains(&i);
        let expected = if on_path { relayed_bits } else { 0 };
        assert_eq!(
            l.link.consumed_bits(),
            expected,
            "link {i}: bits spent = bits relayed"
        );
        assert_eq!(l.keys_relayed, if on_path { 14 } else { 0 }, "link {i}");
        assert_eq!(
            INITIAL_BITS + l.link.produced_bits(),
            l.link.available_bits() + l.link.consumed_bits(),
            "link {i}: no bit created or lost"
        );
        assert_eq!(l.link.pending_bits(), 0, "fetched keys occupy no store");
        assert_eq!(state["links"][i]["consumed_bits"], expected);
    }
    assert_eq!((relayed_by(&e, "R1"), relayed_by(&e, "R2")), (14, 14));
    assert_eq!((relayed_by(&e, "R3"), relayed_by(&e, "R4")), (14, 0));
    assert_eq!(relayed_by(&e, "KME_H1"), 0);
    assert_eq!(e.stats().keys_relayed, 14);
    assert_eq!(state["kmes"][3]["relayed_keys"], 14);
    assert_eq!(state["kmes"][3]["trusted_node"], true);
}

#[test]
fn a_relayed_key_reaches_the_slave_after_the_summed_relay_latency() {
    // H1-R1 2 ms, R1-R2 3 ms, R2-R3 3 ms, R3-H2 2 ms: 10 ms in transit.
    let (mut e, t0) = engine(RING);
    let k = keys(&enc(&mut e, t0, n_keys(1)), 1);
    // Until fetched, the key occupies the store of the last link (at the slave's KME) only.
    let pending: Vec<u64> = e.links.iter().map(|l| l.link.pending_bits()).collect();
    assert_eq!(pending, [0, 0, 0, 0, 0, 256]);
    let r = dec(&mut e, t0 + Duration::from_millis(4), vec![k[0].id()]);
    assert_eq!(
        r.delay,
        Duration::from_millis(6),
        "held until the key arrives"
    );
    assert_eq!(keys(&r, 1)[0].expose(), k[0].expose());
    let k = keys(&enc(&mut e, t0, n_keys(1)), 1);
    assert_eq!(
        dec(&mut e, t0 + Duration::from_millis(10), vec![k[0].id()]).delay,
        Duration::ZERO
    );
    // Beyond MAX_TRANSIT_WAIT the slave is told to ask again, as for an unsynchronised KME.
    let slow = RING.replace("relay_latency_ms: 3", "relay_latency_ms: 3000");
    let (mut e, t0) = engine(&slow);
    let k = keys(&enc(&mut e, t0, n_keys(1)), 1);
    let r = dec(&mut e, t0, vec![k[0].id()]);
    assert_eq!(error(&r, 400), msg::KEYS_NOT_FOUND);
    assert!(parse_error_body(&r.body).details[0]["key_in_transit"].is_string());
    let r = dec(&mut e, t0 + Duration::from_secs(2), vec![k[0].id()]);
    assert_eq!(r.delay, Duration::from_millis(4004), "6004 ms in transit");
    keys(&r, 1);
}

#[test]
fn a_path_runs_at_its_weakest_link() {
    let chain = r#"
trusted_nodes: [{ id: R1 }, { id: R2 }]
links:
  - { kmes: [KME_H1, R1], secret_key_rate_bps: 25600, max_key_count: 1000 }
  - { kmes: [R1, R2], secret_key_rate_bps: 2560, max_key_count: 1000 }
  - { kmes: [R2, KME_H2], secret_key_rate_bps: 25600, max_key_count: 1000 }
"#;
    let (mut e, t0) = engine(chain);
    let mut delivered = 0u64;
    for step in 1..=100u64 {
        let now = t0 + Duration::from_millis(100 * step);
        for _ in 0..100 {
            if enc(&mut e, now, n_keys(1)).status != 200 {
                break;
            }
            delivered += 256;
        }
    }
    // 10 s at the weakest link's 2560 bit/s, to within one key.
    assert!(
        (2560 * 10 - 256..=2560 * 10).contains(&delivered),
        "{delivered}"
    );
    let status = e.handle(
        t0 + Duration::from_secs(10),
        H1,
        &sae("SAE_H1"),
        ApiRequest::Status {
            slave: sae("SAE_H2"),
        },
    );
    let s = parse_status(&status.body).unwrap();
    assert_eq!(
        (s.target_kme_id.as_str(), s.stored_key_count),
        ("KME_H2", 0)
    );
    assert_eq!(s.max_key_count, 1000);
}

#[test]
fn a_link_outage_reroutes_and_no_path_gives_503() {
    let (mut e, t0) = engine(RING);
    keys(&enc(&mut e, t0, n_keys(1)), 1);
    assert_eq!((relayed_by(&e, "R2"), relayed_by(&e, "R4")), (1, 0));
    set_link(&mut e, t0, "R2", "R1", true);
    keys(&enc(&mut e, t0, n_keys(1)), 1);
    assert_eq!(
        (relayed_by(&e, "R2"), relayed_by(&e, "R4")),
        (1, 1),
        "rerouted via R4"
    );
    // A trusted node down breaks its paths too.
    e.set_kme(&sae("R4"), Some(true), None).unwrap();
    let r = enc(&mut e, t0, n_keys(1));
    let m = error(&r, 503);
    assert!(m.starts_with("not enough key material"), "{m}");
    assert!(
        m.contains("KME_H1-R1-R2-R3-KME_H2") && m.contains("link is down: R1-R2"),
        "{m}"
    );
    e.set_kme(&sae("R4"), Some(false), None).unwrap();
    set_link(&mut e, t0, "R3", "R4", true);
    error(&enc(&mut e, t0, n_keys(1)), 503);
    // Repaired: the preferred path again; nothing was spent by the refused requests.
    set_link(&mut e, t0, "R1", "R2", false);
    keys(&enc(&mut e, t0, n_keys(1)), 1);
    assert_eq!((relayed_by(&e, "R2"), relayed_by(&e, "R4")), (2, 1));
    assert_eq!(e.links[0].link.consumed_bits(), 3 * 256);
}

#[test]
fn an_empty_link_is_routed_around_and_a_direct_link_is_preferred() {
    // H1-H2 directly linked with 2 keys, and a relay path H1-R1-H2.
    let yaml = r#"
trusted_nodes: [{ id: R1 }]
links:
  - { kmes: [KME_H1, KME_H2], secret_key_rate_bps: 0, max_key_count: 10, initial_key_count: 2, down: true }
  - { kmes: [KME_H1, R1], secret_key_rate_bps: 0, max_key_count: 10, initial_key_count: 3 }
  - { kmes: [R1, KME_H2], secret_key_rate_bps: 0, max_key_count: 10, initial_key_count: 10 }
"#;
    let (mut e, t0) = engine(yaml);
    keys(&enc(&mut e, t0, n_keys(2)), 2);
    assert_eq!(
        relayed_by(&e, "R1"),
        0,
        "the down direct link's stock is still shared"
    );
    keys(&enc(&mut e, t0, n_keys(3)), 3);
    assert_eq!(relayed_by(&e, "R1"), 3);
    let m = error(&enc(&mut e, t0, n_keys(1)), 503);
    assert_eq!(
        m,
        "not enough key material: 256 bits requested, 0 available; the QKD link is down"
    );
}

#[test]
fn the_shipped_topologies_relay_end_to_end() {
    let load = |name: &str| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../configs")
            .join(name);
        let cfg = SimConfig::load(&path).unwrap();
        let t0 = Instant::now();
        (Engine::new(&cfg, t0, Box::new(SeededEntropy::new(5))), t0)
    };
    let ask = |e: &mut Engine, now, kme: &str, master: &str, slave: &str| {
        let kme = e.kme_index(&sae(kme)).unwrap();
        let request = ApiRequest::EncKeys {
            slave: sae(slave),
            request: n_keys(1),
        };
        e.handle(now, kme, &sae(master), request)
    };
    // Madrid: H1 - R1 - R2 - H2, three segments, 15 ms of relay.
    let (mut e, t0) = load("kme-sim-madrid.yaml");
    let k = keys(&ask(&mut e, t0, "KME_A", "SAE_A", "SAE_B"), 1);
    assert_eq!((relayed_by(&e, "KME_R1"), relayed_by(&e, "KME_R2")), (1, 1));
    let b = e.kme_index(&sae("KME_B")).unwrap();
    let r = e.handle(
        t0,
        b,
        &sae("SAE_B"),
        ApiRequest::DecKeys {
            master: sae("SAE_A"),
            ids: vec![k[0].id()],
        },
    );
    assert!(r.delay >= Duration::from_millis(15), "{:?}", r.delay);
    // Region: a spoke on KME_RN's far side reaches the data centre via one trusted node; cutting
    // that ring node's link to the data centre reroutes around the ring.
    let (mut e, t0) = load("kme-sim-region.yaml");
    keys(&ask(&mut e, t0, "KME_S04", "SAE_S04_01", "SAE_DC"), 1);
    assert_eq!((relayed_by(&e, "KME_RN"), relayed_by(&e, "KME_RS")), (1, 0));
    set_link(&mut e, t0, "KME_DC", "KME_RN", true);
    keys(&ask(&mut e, t0, "KME_S04", "SAE_S04_02", "SAE_DC"), 1);
    assert_eq!((relayed_by(&e, "KME_RN"), relayed_by(&e, "KME_RS")), (2, 1));
    keys(&ask(&mut e, t0, "KME_DC", "SAE_DC", "SAE_S10_10"), 1);
    keys(&ask(&mut e, t0, "KME_S01", "SAE_S01_01", "SAE_S10_10"), 1);
}

#[test]
fn the_madrid_region_gives_hospital_3_two_paths_through_disjoint_trusted_nodes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs/kme-sim-madrid-region.yaml");
    let cfg = SimConfig::load(&path).unwrap();
    let t0 = Instant::now();
    let mut e = Engine::new(&cfg, t0, Box::new(SeededEntropy::new(7)));
    let ring = |e: &Engine| ["KME_RN", "KME_RE", "KME_RS", "KME_RW"].map(|n| relayed_by(e, n));
    let mut ask = |kme: &str, master: &str, slave: &str| {
        let kme = e.kme_index(&sae(kme)).unwrap();
        let request = ApiRequest::EncKeys {
            slave: sae(slave),
            request: n_keys(1),
        };
        keys(&e.handle(t0, kme, &sae(master), request), 1);
        ring(&e)
    };
    // East: RN and RE only; west: RS and RW only; every other hospital through two ring nodes.
    assert_eq!(ask("KME_DC_E", "SAE_DC_E", "SAE_H3_E"), [1, 1, 0, 0]);
    assert_eq!(ask("KME_DC_W", "SAE_DC_W", "SAE_H3_W"), [1, 1, 1, 1]);
    assert_eq!(ask("KME_DC_E", "SAE_DC_E", "SAE_H1"), [2, 2, 1, 1]);
    assert_eq!(ask("KME_DC_E", "SAE_DC_E", "SAE_H2"), [3, 2, 1, 2]);
}

//! The engine over time and under faults: key production at the secret key rate, an exhausted
//! store, link down and QBER alarms, entropy failure, latency and KME down, and what the admin
//! state may show. The harness is in `tests.rs`.

#![allow(clippy::unwrap_used)]
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::tests::{CFG, World, error, keys, n_keys, sae};
use super::*;
use crate::api::parse::{KeyExpectation, parse_key_container};
use crate::sim::entropy::FailingEntropy;

#[test]
fn empty_store_gives_503_all_or_nothing() {
    let mut w = World::new();
    keys(&w.enc(0.0, 0, "SAE_A", "SAE_B", n_keys(8)), 8);
    let r = w.enc(0.0, 0, "SAE_A", "SAE_B", n_keys(3));
    assert!(error(&r, 503).contains("512 available"));
    keys(&w.enc(0.0, 0, "SAE_A", "SAE_B", n_keys(2)), 2);
    error(&w.enc(0.0, 0, "SAE_A", "SAE_B", n_keys(1)), 503);
}

#[test]
fn key_is_produced_at_the_secret_key_rate() {
    let mut w = World::new();
    // 2560 bit/s = 10 keys of 256 bits per second, 10 keys at start, capacity 100.
    assert_eq!(w.stored(0.0), 10);
    assert_eq!(w.stored(0.5), 15);
    assert_eq!(w.stored(1.0), 20);
    keys(&w.enc(1.0, 0, "SAE_A", "SAE_B", n_keys(8)), 8);
    assert_eq!(w.stored(1.0), 12);
    assert_eq!(
        w.stored(100.0),
        92,
        "8 keys pending at the slave occupy the store"
    );
    assert_eq!(w.stored(1000.0), 92);
    // Deliverable bits over a window never exceed rate x time + what was stored.
    let mut w = World::new();
    let mut delivered = 0u64;
    for step in 1..=50 {
        let t = f64::from(step) * 0.1;
        while let Ok(k) = parse_key_container(
            &w.enc(t, 0, "SAE_A", "SAE_B", n_keys(1)).body,
            &KeyExpectation {
                number: 1,
                size_bits: Some(256),
                ids: None,
            },
        ) {
            delivered += k[0].len_bits() as u64;
        }
    }
    assert!(delivered <= 2560 * 5 + 2560, "{delivered}");
    assert!(delivered >= 2560 * 5, "{delivered}");
}

#[test]
fn link_down_stops_production_but_stored_keys_remain() {
    let mut w = World::new();
    let now = w.at(0.0);
    w.engine
        .set_link(now, &sae("KME_B"), &sae("KME_A"), Some(true), None)
        .unwrap();
    assert_eq!(w.stored(10.0), 10);
    keys(&w.enc(10.0, 0, "SAE_A", "SAE_B", n_keys(8)), 8);
    keys(&w.enc(10.0, 0, "SAE_A", "SAE_B", n_keys(2)), 2);
    assert!(error(&w.enc(10.0, 0, "SAE_A", "SAE_B", n_keys(1)), 503).contains("link is down"));
    let now = w.at(20.0);
    w.engine
        .set_link(now, &sae("KME_A"), &sae("KME_B"), Some(false), None)
        .unwrap();
    assert_eq!(w.stored(21.0), 10);
    // QBER above threshold has the same effect.
    let now = w.at(21.0);
    w.engine
        .set_link(now, &sae("KME_A"), &sae("KME_B"), None, Some(0.12))
        .unwrap();
    assert_eq!(w.stored(30.0), 10);
    assert!(
        w.engine
            .set_link(now, &sae("KME_A"), &sae("KME_C"), Some(true), None)
            .is_err()
    );
    assert!(
        w.engine
            .set_link(now, &sae("KME_A"), &sae("KME_B"), None, Some(0.9))
            .is_err()
    );
}

#[test]
fn entropy_failure_consumes_nothing() {
    let cfg = SimConfig::from_yaml(CFG, "test").unwrap();
    let t0 = Instant::now();
    let mut engine = Engine::new(&cfg, t0, Box::new(FailingEntropy));
    let r = engine.handle(
        t0,
        0,
        &sae("SAE_A"),
        ApiRequest::EncKeys {
            slave: sae("SAE_B"),
            request: n_keys(1),
        },
    );
    assert_eq!(r.status, 503);
    let state = engine.state(t0);
    assert_eq!(state["links"][0]["stored_key_count"], 10);
}

#[test]
fn replies_carry_the_configured_latency() {
    let mut w = World::new();
    for _ in 0..50 {
        let r = w.enc(0.0, 0, "SAE_A", "SAE_Z", n_keys(1));
        assert!((12..=15).contains(&r.delay.as_millis()), "{:?}", r.delay);
    }
    let idx = w
        .engine
        .set_kme(&sae("KME_A"), Some(true), Some(0))
        .unwrap();
    assert!(w.engine.kme_is_down(idx));
    assert!(w.enc(0.0, 0, "SAE_A", "SAE_Z", n_keys(1)).delay.as_millis() <= 5);
    assert!(w.engine.set_kme(&sae("KME_X"), Some(true), None).is_err());
}

#[test]
fn state_holds_no_key_material() {
    let mut w = World::new();
    let reply = w.enc(0.0, 0, "SAE_A", "SAE_B", n_keys(1));
    let k = keys(&reply, 1);
    assert!(!format!("{reply:?}").contains(&STANDARD.encode(k[0].expose())));
    assert!(!format!("{reply:?}").contains(&k[0].id().to_string()));
    let now = w.at(0.0);
    let text = w.engine.state(now).to_string();
    assert!(!text.contains(&k[0].id().to_string()));
    assert!(!text.contains(&STANDARD.encode(k[0].expose())));
    assert!(text.contains("\"pending_keys\":1"), "{text}");
    assert!(!format!("{:?}", w.engine).contains(&k[0].id().to_string()));
}

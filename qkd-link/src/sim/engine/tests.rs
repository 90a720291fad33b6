#![allow(clippy::unwrap_used)]
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;
use crate::api::msg;
use crate::api::parse::{KeyExpectation, parse_error_body, parse_key_container, parse_status};
use crate::key::QkdKey;
use crate::sim::entropy::{FailingEntropy, SeededEntropy};

const CFG: &str = r#"
limits: { key_size: 256, min_key_size: 64, max_key_size: 1024, max_key_per_request: 8, max_sae_id_count: 1 }
kmes:
  - { id: KME_A, listen: "127.0.0.1:0", saes: [SAE_A], latency_ms: { min: 2, max: 5 }, extra_latency_ms: 10 }
  - { id: KME_B, listen: "127.0.0.1:0", saes: [SAE_B, SAE_C] }
  - { id: KME_C, listen: "127.0.0.1:0", saes: [SAE_D] }
links:
  - { kmes: [KME_A, KME_B], secret_key_rate_bps: 2560, max_key_count: 100, initial_key_count: 10 }
"#;

struct World {
    engine: Engine,
    t0: Instant,
}

fn sae(s: &str) -> SaeId {
    SaeId::new(s).unwrap()
}

impl World {
    fn new() -> Self {
        let cfg = SimConfig::from_yaml(CFG, "test").unwrap();
        let t0 = Instant::now();
        Self {
            engine: Engine::new(&cfg, t0, Box::new(SeededEntropy::new(7))),
            t0,
        }
    }

    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    fn enc(&mut self, t: f64, kme: usize, caller: &str, slave: &str, req: KeyRequest) -> Reply {
        let now = self.at(t);
        self.engine.handle(
            now,
            kme,
            &sae(caller),
            ApiRequest::EncKeys {
                slave: sae(slave),
                request: req,
            },
        )
    }

    fn dec(&mut self, t: f64, kme: usize, caller: &str, master: &str, ids: Vec<KeyId>) -> Reply {
        let now = self.at(t);
        self.engine.handle(
            now,
            kme,
            &sae(caller),
            ApiRequest::DecKeys {
                master: sae(master),
                ids,
            },
        )
    }

    fn stored(&mut self, t: f64) -> u64 {
        let now = self.at(t);
        let r = self.engine.handle(
            now,
            0,
            &sae("SAE_A"),
            ApiRequest::Status {
                slave: sae("SAE_B"),
            },
        );
        assert_eq!(r.status, 200);
        parse_status(&r.body).unwrap().stored_key_count
    }
}

fn keys(r: &Reply, n: usize) -> Vec<QkdKey> {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    parse_key_container(
        &r.body,
        &KeyExpectation {
            number: n,
            size_bits: None,
            ids: None,
        },
    )
    .unwrap()
}

fn n_keys(n: u32) -> KeyRequest {
    KeyRequest {
        number: Some(n),
        ..KeyRequest::default()
    }
}

fn error(r: &Reply, status: u16) -> String {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    parse_error_body(&r.body).message
}

#[test]
fn status_reports_the_link_and_limits() {
    let mut w = World::new();
    let r = w.engine.handle(
        w.t0,
        0,
        &sae("SAE_A"),
        ApiRequest::Status {
            slave: sae("SAE_B"),
        },
    );
    let s = parse_status(&r.body).unwrap();
    assert_eq!(
        (s.source_kme_id.as_str(), s.target_kme_id.as_str()),
        ("KME_A", "KME_B")
    );
    assert_eq!(
        (s.master_sae_id.as_str(), s.slave_sae_id.as_str()),
        ("SAE_A", "SAE_B")
    );
    assert_eq!(
        (s.key_size, s.stored_key_count, s.max_key_count),
        (256, 10, 100)
    );
    assert_eq!(
        (
            s.max_key_per_request,
            s.min_key_size,
            s.max_key_size,
            s.max_sae_id_count
        ),
        (8, 64, 1024, 1)
    );
}

#[test]
fn master_and_slave_get_the_same_key_exactly_once() {
    let mut w = World::new();
    let master = keys(&w.enc(0.0, 0, "SAE_A", "SAE_B", n_keys(3)), 3);
    let ids: Vec<KeyId> = master.iter().map(QkdKey::id).collect();
    let slave = keys(&w.dec(0.0, 1, "SAE_B", "SAE_A", ids.clone()), 3);
    for (m, s) in master.iter().zip(&slave) {
        assert_eq!(m.id(), s.id());
        assert_eq!(m.expose(), s.expose());
        assert_eq!(m.expose().len(), 32);
    }
    assert_ne!(master[0].expose(), master[1].expose());
    let again = w.dec(0.0, 1, "SAE_B", "SAE_A", vec![ids[0]]);
    assert_eq!(error(&again, 400), msg::KEYS_NOT_FOUND);
    assert_eq!(w.engine.stats().keys_delivered, 3);
}

#[test]
fn callers_not_served_by_the_kme_get_401() {
    let mut w = World::new();
    let r = w.enc(0.0, 0, "SAE_B", "SAE_A", n_keys(1));
    assert!(error(&r, 401).contains("not served by KME_A"));
    let r = w.engine.handle(
        w.t0,
        1,
        &sae("SAE_A"),
        ApiRequest::Status {
            slave: sae("SAE_B"),
        },
    );
    error(&r, 401);
}

#[test]
fn only_the_named_slave_may_fetch() {
    let mut w = World::new();
    let k = keys(&w.enc(0.0, 0, "SAE_A", "SAE_B", n_keys(1)), 1);
    let ids = vec![k[0].id()];
    error(&w.dec(0.0, 1, "SAE_C", "SAE_A", ids.clone()), 401);
    // The key survives the refused attempt.
    let got = keys(&w.dec(0.0, 1, "SAE_B", "SAE_A", ids), 1);
    assert_eq!(got[0].expose(), k[0].expose());
}

#[test]
fn keys_are_only_found_at_the_slave_kme_under_the_right_master() {
    let mut w = World::new();
    let k = keys(&w.enc(0.0, 0, "SAE_A", "SAE_B", n_keys(1)), 1);
    // The master cannot fetch its own key back through dec_keys.
    let r = w.dec(0.0, 0, "SAE_A", "SAE_B", vec![k[0].id()]);
    assert_eq!(error(&r, 400), msg::KEYS_NOT_FOUND);
    let unknown = KeyId::from_random_bytes([9; 16]);
    let r = w.dec(0.0, 1, "SAE_B", "SAE_A", vec![k[0].id(), unknown]);
    assert_eq!(error(&r, 400), msg::KEYS_NOT_FOUND);
    // All or nothing: the known key was not released by the failed request.
    keys(&w.dec(0.0, 1, "SAE_B", "SAE_A", vec![k[0].id()]), 1);
}

#[test]
fn request_limits_give_400_with_the_spec_messages() {
    let mut w = World::new();
    assert!(
        error(&w.enc(0.0, 0, "SAE_A", "SAE_B", n_keys(9)), 400).contains("max_key_per_request")
    );
    assert!(error(&w.enc(0.0, 0, "SAE_A", "SAE_B", n_keys(0)), 400).contains("at least 1"));
    let sized = |size| KeyRequest {
        size: Some(size),
        ..KeyRequest::default()
    };
    assert_eq!(
        error(&w.enc(0.0, 0, "SAE_A", "SAE_B", sized(255)), 400),
        msg::SIZE_MULTIPLE_OF_8
    );
    assert!(error(&w.enc(0.0, 0, "SAE_A", "SAE_B", sized(32)), 400).contains("min_key_size"));
    assert!(error(&w.enc(0.0, 0, "SAE_A", "SAE_B", sized(2048)), 400).contains("max_key_size"));
    let ext: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"abc_route_type":"direct"}"#).unwrap();
    let mandatory = KeyRequest {
        extension_mandatory: vec![ext.clone()],
        ..KeyRequest::default()
    };
    let r = w.enc(0.0, 0, "SAE_A", "SAE_B", mandatory);
    assert_eq!(r.status, 400);
    let body = parse_error_body(&r.body);
    assert_eq!(body.message, msg::EXT_MANDATORY_UNSUPPORTED);
    assert_eq!(
        body.details[0]["extension_mandatory_unsupported"],
        "abc_route_type is not supported"
    );
    let optional = KeyRequest {
        extension_optional: vec![ext],
        ..KeyRequest::default()
    };
    keys(&w.enc(0.0, 0, "SAE_A", "SAE_B", optional), 1);
    assert_eq!(w.stored(0.0), 9, "only the successful request consumed key");
}

#[test]
fn key_ids_requests_are_checked_whole() {
    let mut w = World::new();
    let k = keys(&w.enc(0.0, 0, "SAE_A", "SAE_B", n_keys(1)), 1);
    error(&w.dec(0.0, 1, "SAE_B", "SAE_A", vec![]), 400);
    let dup = w.dec(0.0, 1, "SAE_B", "SAE_A", vec![k[0].id(), k[0].id()]);
    assert!(error(&dup, 400).contains("more than once"));
    let many: Vec<KeyId> = (0..9u8)
        .map(|i| KeyId::from_random_bytes([i; 16]))
        .collect();
    error(&w.dec(0.0, 1, "SAE_B", "SAE_A", many), 400);
    keys(&w.dec(0.0, 1, "SAE_B", "SAE_A", vec![k[0].id()]), 1);
}

#[test]
fn peers_must_be_known_distinct_and_linked() {
    let mut w = World::new();
    assert!(error(&w.enc(0.0, 0, "SAE_A", "SAE_A", n_keys(1)), 400).contains("not the caller"));
    assert!(error(&w.enc(0.0, 0, "SAE_A", "SAE_Z", n_keys(1)), 400).contains("unknown"));
    assert!(error(&w.enc(0.0, 0, "SAE_A", "SAE_D", n_keys(1)), 400).contains("no QKD link"));
    assert!(error(&w.enc(0.0, 1, "SAE_B", "SAE_C", n_keys(1)), 400).contains("no QKD link"));
}

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
fn multicast_keys_reach_each_named_slave_once() {
    let mut w = World::new();
    let req = KeyRequest {
        additional_slave_sae_ids: vec!["SAE_C".into()],
        ..n_keys(1)
    };
    let k = keys(&w.enc(0.0, 0, "SAE_A", "SAE_B", req), 1);
    let ids = vec![k[0].id()];
    let b = keys(&w.dec(0.0, 1, "SAE_B", "SAE_A", ids.clone()), 1);
    error(&w.dec(0.0, 1, "SAE_B", "SAE_A", ids.clone()), 400);
    let c = keys(&w.dec(0.0, 1, "SAE_C", "SAE_A", ids.clone()), 1);
    assert_eq!(b[0].expose(), c[0].expose());
    error(&w.dec(0.0, 1, "SAE_C", "SAE_A", ids), 400);
    let two = KeyRequest {
        additional_slave_sae_ids: vec!["SAE_C".into(), "SAE_C".into()],
        ..n_keys(1)
    };
    assert!(error(&w.enc(0.0, 0, "SAE_A", "SAE_B", two), 400).contains("max_SAE_ID_count"));
    let foreign = KeyRequest {
        additional_slave_sae_ids: vec!["SAE_D".into()],
        ..n_keys(1)
    };
    error(&w.enc(0.0, 0, "SAE_A", "SAE_B", foreign), 400);
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

//! The engine's ETSI GS QKD 014 semantics: Status, the master/slave key exchange, who may fetch
//! what, request limits and multicast. Also the shared harness (`World`) that
//! `tests_faults.rs` drives key production and faults with.

#![allow(clippy::unwrap_used)]
use std::time::{Duration, Instant};

use super::*;
use crate::api::msg;
use crate::api::parse::{KeyExpectation, parse_error_body, parse_key_container, parse_status};
use crate::key::QkdKey;
use crate::sim::entropy::SeededEntropy;

pub(super) const CFG: &str = r#"
limits: { key_size: 256, min_key_size: 64, max_key_size: 1024, max_key_per_request: 8, max_sae_id_count: 1 }
kmes:
  - { id: KME_A, listen: "127.0.0.1:0", saes: [SAE_A], latency_ms: { min: 2, max: 5 }, extra_latency_ms: 10 }
  - { id: KME_B, listen: "127.0.0.1:0", saes: [SAE_B, SAE_C] }
  - { id: KME_C, listen: "127.0.0.1:0", saes: [SAE_D] }
links:
  - { kmes: [KME_A, KME_B], secret_key_rate_bps: 2560, max_key_count: 100, initial_key_count: 10 }
"#;

pub(super) struct World {
    pub(super) engine: Engine,
    pub(super) t0: Instant,
}

pub(super) fn sae(s: &str) -> SaeId {
    SaeId::new(s).unwrap()
}

impl World {
    pub(super) fn new() -> Self {
        let cfg = SimConfig::from_yaml(CFG, "test").unwrap();
        let t0 = Instant::now();
        Self {
            engine: Engine::new(&cfg, t0, Box::new(SeededEntropy::new(7))),
            t0,
        }
    }

    pub(super) fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    pub(super) fn enc(
        &mut self,
        t: f64,
        kme: usize,
        caller: &str,
        slave: &str,
        req: KeyRequest,
    ) -> Reply {
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

    pub(super) fn dec(
        &mut self,
        t: f64,
        kme: usize,
        caller: &str,
        master: &str,
        ids: Vec<KeyId>,
    ) -> Reply {
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

    pub(super) fn stored(&mut self, t: f64) -> u64 {
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

pub(super) fn keys(r: &Reply, n: usize) -> Vec<QkdKey> {
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

pub(super) fn n_keys(n: u32) -> KeyRequest {
    KeyRequest {
        number: Some(n),
        ..KeyRequest::default()
    }
}

pub(super) fn error(r: &Reply, status: u16) -> String {
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

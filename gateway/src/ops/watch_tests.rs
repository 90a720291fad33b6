use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use keymix::{KeyId, KeySources};

use super::*;
use crate::hybrid::EpochInfo;
use crate::proto::psk::PskId;

const NAME: &str = "site-b";

fn hybrid(usable: bool, has_qkd: Option<bool>, bad_mac: u64) -> PeerSnapshot {
    PeerSnapshot {
        usable,
        hybrid: Some(HybridSnapshot {
            qkd_configured: true,
            current_has_qkd: has_qkd,
            drops: [("bad_mac".to_owned(), bad_mac)].into_iter().collect(),
        }),
    }
}

fn eval(w: &mut PeerWatch, now: Instant, snap: &PeerSnapshot) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    w.evaluate(now, NAME, snap, &mut out);
    out
}

fn key_id(n: u64) -> KeyId {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&n.to_le_bytes());
    KeyId::from_random_bytes(raw)
}

fn epoch(n: u64, qkd: bool) -> HybridEvent {
    HybridEvent::EpochInstalled(EpochInfo {
        epoch: n,
        psk_id: PskId::FIRST,
        sources: KeySources::hybrid(qkd),
        key_ids: if qkd { vec![key_id(n)] } else { vec![] },
        transcript_hash: [0; 32],
        confirmation: [0; 16],
    })
}

fn transition(to: PolicyState) -> impl Fn(&AuditEvent) -> bool {
    move |e| matches!(e, AuditEvent::PolicyTransition { to: t, .. } if *t == to)
}

#[test]
fn startup_passes_through_fail_closed_without_an_outage_record() {
    let mut w = PeerWatch::default();
    let t = Instant::now();
    let first = eval(&mut w, t, &hybrid(false, None, 0));
    assert_eq!(
        first,
        [AuditEvent::PolicyTransition {
            peer: "site-b".into(),
            from: None,
            to: PolicyState::FailClosed
        }]
    );
    let up = eval(&mut w, t, &hybrid(true, Some(true), 0));
    assert!(
        up.contains(&AuditEvent::PeerUp {
            peer: "site-b".into()
        }),
        "{up:?}"
    );
    assert!(up.iter().any(transition(PolicyState::Normal)), "{up:?}");
    assert!(
        !up.iter()
            .any(|e| matches!(e, AuditEvent::FailClosedExit { .. })),
        "{up:?}"
    );
    assert!(
        eval(&mut w, t, &hybrid(true, Some(true), 0)).is_empty(),
        "no change, no event"
    );
    assert_eq!(w.view().policy_state, Some(PolicyState::Normal));
    assert!(w.is_up());
}

#[test]
fn losing_keys_under_a_blocked_policy_enters_and_leaves_fail_closed() {
    let mut w = PeerWatch::default();
    let t = Instant::now();
    eval(&mut w, t, &hybrid(false, None, 0));
    eval(&mut w, t, &hybrid(true, Some(true), 0));
    assert_eq!(
        w.on_hybrid_event(NAME, Role::Master, &HybridEvent::QkdBlocked { epoch: 2 }),
        None
    );
    let down = eval(&mut w, t, &hybrid(false, Some(true), 0));
    for want in [
        AuditEvent::PeerDown {
            peer: "site-b".into(),
            reason: "qkd_unavailable".into(),
        },
        AuditEvent::FailClosedEnter {
            peer: "site-b".into(),
            reason: "qkd_unavailable".into(),
        },
    ] {
        assert!(down.contains(&want), "{want:?} missing from {down:?}");
    }
    assert!(!w.is_up());
    let e = w.on_hybrid_event(NAME, Role::Master, &epoch(2, true));
    assert!(
        matches!(e, Some(AuditEvent::EpochInstalled { epoch: 2, ref qkd_key_ids, .. }) if qkd_key_ids == &[key_id(2)])
    );
    let back = eval(&mut w, t, &hybrid(true, Some(true), 0));
    assert!(
        back.contains(&AuditEvent::FailClosedExit {
            peer: "site-b".into()
        }),
        "{back:?}"
    );
    assert!(
        back.contains(&AuditEvent::PeerUp {
            peer: "site-b".into()
        }),
        "{back:?}"
    );
}

#[test]
fn an_epoch_without_qkd_is_a_fallback_and_is_counted_by_source() {
    let mut w = PeerWatch::default();
    let t = Instant::now();
    w.on_hybrid_event(NAME, Role::Master, &epoch(1, true));
    w.on_hybrid_event(NAME, Role::Master, &epoch(2, false));
    w.on_hybrid_event(NAME, Role::Master, &epoch(3, false));
    eval(&mut w, t, &hybrid(true, Some(true), 0));
    let fb = eval(&mut w, t, &hybrid(true, Some(false), 0));
    assert!(fb.iter().any(transition(PolicyState::Fallback)), "{fb:?}");
    let v = w.view();
    assert_eq!(v.policy_state, Some(PolicyState::Fallback));
    assert_eq!(v.epochs_by_source.get("x25519+mlkem+qkd"), Some(&1));
    assert_eq!(v.epochs_by_source.get("x25519+mlkem"), Some(&2));
}

#[test]
fn hybrid_failures_are_counted_by_reason() {
    let mut w = PeerWatch::default();
    w.on_hybrid_event(
        "p",
        Role::Master,
        &HybridEvent::ExchangeAbandoned { epoch: 1 },
    );
    w.on_hybrid_event(
        "p",
        Role::Master,
        &HybridEvent::ExchangeAbandoned { epoch: 1 },
    );
    let v = w.view();
    assert_eq!(v.hybrid_failures.get("hybrid_abandoned"), Some(&2));
    assert_eq!(v.hybrid_failures.get("hybrid_rejected"), None);
}

#[test]
fn a_flood_of_forgeries_is_reported_once_per_interval_with_its_count() {
    let mut w = PeerWatch::default();
    let t = Instant::now();
    let auth = |ev: &[AuditEvent]| -> Vec<u64> {
        ev.iter()
            .filter_map(|e| match e {
                AuditEvent::AuthFailure { reason, count, .. } if reason == "bad_mac" => {
                    Some(*count)
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(auth(&eval(&mut w, t, &hybrid(true, Some(true), 5))), [5]);
    // 3000 more within the interval: nothing yet.
    for i in 1..=30 {
        let now = t + Duration::from_millis(100 * i);
        assert!(auth(&eval(&mut w, now, &hybrid(true, Some(true), 5 + 100 * i))).is_empty());
    }
    let later = t + AUTH_REPORT_INTERVAL + Duration::from_secs(1);
    assert_eq!(
        auth(&eval(&mut w, later, &hybrid(true, Some(true), 3005))),
        [3000]
    );
    // Nothing new: nothing reported, however long it has been.
    assert!(
        auth(&eval(
            &mut w,
            later + AUTH_REPORT_INTERVAL * 3,
            &hybrid(true, Some(true), 3005)
        ))
        .is_empty()
    );
}

#[test]
fn interface_auth_failures_have_no_peer_and_ignore_other_reasons() {
    let mut counter = AuthCounter::default();
    let drops: BTreeMap<String, u64> =
        [("invalid_mac1".to_owned(), 4), ("no_session".to_owned(), 9)]
            .into_iter()
            .collect();
    let mut out = Vec::new();
    counter.report(
        Instant::now(),
        &drops,
        &INTERFACE_AUTH_REASONS,
        None,
        &mut out,
    );
    assert_eq!(
        out,
        [AuditEvent::AuthFailure {
            peer: None,
            reason: "invalid_mac1".into(),
            source: None,
            count: 4
        }]
    );
}

#[test]
fn plain_peers_get_up_and_down_but_no_policy_state() {
    let mut w = PeerWatch::default();
    let t = Instant::now();
    let plain = |usable| PeerSnapshot {
        usable,
        hybrid: None,
    };
    assert!(eval(&mut w, t, &plain(false)).is_empty());
    assert_eq!(
        eval(&mut w, t, &plain(true)),
        [AuditEvent::PeerUp { peer: NAME.into() }]
    );
    assert_eq!(
        eval(&mut w, t, &plain(false)),
        [AuditEvent::PeerDown {
            peer: "site-b".into(),
            reason: "keys_expired".into()
        }]
    );
    assert_eq!(w.view().policy_state, None);
}

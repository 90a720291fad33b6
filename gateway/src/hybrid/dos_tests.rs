//! Denial of service and key spending (docs/protocol.md §7, §6.1 step 1): what an attacker who
//! holds `K_pair` (a quantum adversary) can make either role do, and what requests and
//! WireGuard's "epoch needed" can and cannot make the master do. Same harness as `tests.rs`.

use std::time::Duration;

use super::test_pair::{Pair, deliver, epochs_installed, static_key};
use super::wire::{self, Kind};
use super::*;
use x25519_dalek::PublicKey;

/// `K_pair` as the master computes it (the slave's is the same).
fn pair_keys() -> PairKeys {
    let slave = PublicKey::from(&static_key(2)).to_bytes();
    PairKeys::derive(&static_key(1), &slave).expect("valid keys")
}

/// The body of the first complete message of `kind` among `sent` datagrams, and its exchange.
fn body_of(sent: &[Vec<u8>], kind: Kind) -> (Vec<u8>, u64) {
    let fragments: Vec<_> = (sent.iter())
        .filter_map(|d| wire::parse(d).ok())
        .filter(|f| f.header.kind == kind)
        .collect();
    let first = &fragments[0].header;
    let count = usize::from(first.count);
    let body = fragments[..count]
        .iter()
        .flat_map(|f| f.payload.to_vec())
        .collect();
    (body, first.exchange_id)
}

#[test]
fn forged_replies_cost_the_master_a_bounded_number_of_verifications() {
    let mut pair = Pair::new(QkdPolicy::Off);
    pair.run_for(Duration::from_secs(1));
    let (mut response, _) = body_of(&pair.at_slave.sent, Kind::Response);
    // From now on no Init reaches the slave: the second exchange stays in flight.
    pair.lose = Box::new(|to_slave, d| to_slave && d[2] == 1);
    pair.run_for(Duration::from_secs(5));
    let inits: Vec<_> = pair.at_master.sent.iter().rev().take(4).cloned().collect();
    let (_, in_flight) = body_of(&inits, Kind::Init);
    // The attacker's Response: the epoch in flight (in clear text), a signature that cannot
    // verify, fragments MAC'd with K_pair and the in-flight exchange id. 100 a second.
    response[..8].copy_from_slice(&2u64.to_le_bytes());
    let forged = wire::fragment(&pair_keys(), Kind::Response, in_flight, &response);
    let before = pair.master.stats().signature_verifications;
    for _ in 0..1000 {
        pair.now += Duration::from_millis(10);
        for d in &forged {
            let _ = deliver(&mut pair.master, pair.now, d);
        }
    }
    let spent = pair.master.stats().signature_verifications - before;
    assert!(
        spent <= 4 + 2 * 10,
        "{spent} verifications in 10 s (2 a second, burst 4)"
    );
    assert!(pair.master.stats().drops_for(HybridDrop::RateLimited) >= 900);
    assert!(pair.master.stats().drops_for(HybridDrop::BadSignature) >= 1);
}

#[test]
fn forged_fresh_inits_cost_the_slave_a_bounded_number_of_verifications() {
    let mut pair = Pair::new(QkdPolicy::Off);
    pair.run_for(Duration::from_secs(1));
    let (mut init, _) = body_of(&pair.at_master.sent, Kind::Init);
    let before = pair.slave.stats().signature_verifications;
    for i in 0..1000u64 {
        pair.now += Duration::from_millis(10);
        // A fresh timestamp each time (the attacker reads the clock too), a new exchange id.
        init[10..22].copy_from_slice(&pair.clock.timestamp(pair.now));
        let forged = wire::fragment(&pair_keys(), Kind::Init, 1000 + i, &init);
        for d in &forged {
            let _ = deliver(&mut pair.slave, pair.now, d);
        }
    }
    let spent = pair.slave.stats().signature_verifications - before;
    assert!(
        spent <= 4 + 2 * 10,
        "{spent} verifications in 10 s (2 a second, burst 4)"
    );
    assert_eq!(pair.slave.stats().kme_requests, 0, "and no KME request");
}

#[test]
fn neither_requests_nor_epoch_needed_bypass_the_back_off() {
    let mut pair = Pair::new(QkdPolicy::Required);
    pair.kme.master_down = true;
    pair.run_for(Duration::from_millis(100));
    let blocked = |p: &Pair| {
        (p.at_master.events.iter())
            .filter(|e| matches!(e, HybridEvent::QkdBlocked { .. }))
            .count()
    };
    assert_eq!(blocked(&pair), 1);
    let asked = pair.master.stats().kme_requests;
    // The back-off lasts REKEY_TIMEOUT (+ jitter). Every 100 ms of it, the slave asks and the
    // master's WireGuard layer wants an epoch: the KME is not asked again before it ends.
    for _ in 0..45 {
        pair.now += Duration::from_millis(100);
        pair.slave.request_epoch(pair.now);
        pair.master.request_epoch(pair.now);
        pair.settle();
    }
    assert_eq!(
        pair.master.stats().kme_requests,
        asked,
        "no KME request in the back-off"
    );
    pair.kme.master_down = false;
    pair.run_for(Duration::from_secs(1));
    assert_eq!(
        epochs_installed(&pair.at_master).len(),
        1,
        "after it, an epoch"
    );
}

/// The two KMEs disagree on a key's bytes: the signed Response's key confirmation fails. That is
/// reported at once (not after REKEY_ATTEMPT_TIME) and the next exchange, with a new key, follows
/// after REKEY_TIMEOUT.
#[test]
fn kmes_disagreeing_on_a_key_are_reported_at_once_and_the_next_epoch_follows() {
    let mut pair = Pair::new(QkdPolicy::Required);
    pair.kme.corrupt_next = true;
    pair.run_for(Duration::from_millis(100));
    let mismatch = |p: &Pair| {
        (p.at_master.events.iter()).any(
            |e| matches!(e, HybridEvent::KeyMismatch { epoch: 1, key_ids } if key_ids.len() == 1),
        )
    };
    assert!(mismatch(&pair), "reported at once");
    assert!(epochs_installed(&pair.at_master).is_empty());
    assert_eq!(pair.master.stats().drops_for(HybridDrop::BadConfirm), 1);
    pair.run_for(Duration::from_secs(6));
    let epochs = epochs_installed(&pair.at_master);
    assert_eq!(epochs.len(), 1, "a new exchange with a new key succeeded");
    assert_eq!(pair.at_master.psks.last(), pair.at_slave.psks.last());
}

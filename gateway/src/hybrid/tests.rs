//! Two hybrid peers on a simulated clock with an in-memory KME pair (`test_pair.rs`): epochs,
//! QKD policies, refusals, replays, loss and restarts, all without sockets or sleeping.

use std::time::Duration;

use keymix::{KeyId, QkdMaterial, SecretVec};

use super::test_pair::{Pair, Seen, build, deliver, epochs_installed};
use super::*;

#[test]
fn required_policy_rotates_epochs_with_distinct_qkd_keys_and_equal_psks() {
    let mut pair = Pair::new(QkdPolicy::Required);
    for _ in 0..6 {
        pair.run_for(Duration::from_secs(5));
        pair.confirm_all();
    }
    let master = epochs_installed(&pair.at_master);
    let slave = epochs_installed(&pair.at_slave);
    assert!(master.len() >= 6, "an epoch every 5 s: {}", master.len());
    let facts = |e: &[EpochInfo]| -> Vec<_> {
        e.iter()
            .map(|i| {
                (
                    i.epoch,
                    i.sources,
                    i.key_ids.clone(),
                    i.transcript_hash,
                    i.confirmation,
                )
            })
            .collect()
    };
    assert_eq!(
        facts(&master),
        facts(&slave),
        "same epochs, sources, key IDs, transcripts and confirmations"
    );
    assert_eq!(pair.at_master.psks, pair.at_slave.psks, "same PSKs");
    let mut ids: Vec<&KeyId> = master.iter().flat_map(|e| &e.key_ids).collect();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "every epoch has its own QKD key");
    assert!(master.iter().all(|e| e.sources.has_qkd()));
    let psks: std::collections::HashSet<_> = pair.at_master.psks.iter().collect();
    assert_eq!(psks.len(), pair.at_master.psks.len(), "every PSK differs");
    assert_eq!(
        master.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        (1..=master.len() as u64).collect::<Vec<_>>()
    );
}

#[test]
fn policy_off_makes_x25519_mlkem_epochs_without_a_kme() {
    let mut pair = Pair::new(QkdPolicy::Off);
    pair.run_for(Duration::from_secs(1));
    assert_eq!(pair.master.stats().kme_requests, 0);
    let epochs = epochs_installed(&pair.at_slave);
    assert_eq!(epochs.len(), 1);
    assert!(!epochs[0].sources.has_qkd() && epochs[0].key_ids.is_empty());
    assert_eq!(pair.at_master.psks, pair.at_slave.psks);
}

#[test]
fn required_policy_blocks_while_the_kme_is_down_and_recovers() {
    let mut pair = Pair::new(QkdPolicy::Required);
    pair.kme.master_down = true;
    pair.run_for(Duration::from_secs(30));
    assert!(pair.at_master.psks.is_empty(), "no epoch without QKD");
    assert!(
        pair.at_master
            .events
            .iter()
            .any(|e| matches!(e, HybridEvent::QkdBlocked { .. }))
    );
    pair.kme.master_down = false;
    pair.run_for(Duration::from_secs(6));
    let epochs = epochs_installed(&pair.at_slave);
    assert!(
        !epochs.is_empty() && epochs.iter().all(|e| e.sources.has_qkd()),
        "recovered with QKD"
    );
}

#[test]
fn preferred_policy_falls_back_and_reports_it() {
    let mut pair = Pair::new(QkdPolicy::Preferred);
    pair.kme.master_down = true;
    pair.run_for(Duration::from_secs(1));
    let epochs = epochs_installed(&pair.at_slave);
    assert_eq!(epochs.len(), 1);
    assert!(!epochs[0].sources.has_qkd());
    assert!(
        pair.at_master
            .events
            .iter()
            .any(|e| matches!(e, HybridEvent::Fallback { epoch: 1 }))
    );
    assert_eq!(pair.at_master.psks, pair.at_slave.psks);
}

#[test]
fn slave_kme_failure_is_a_signed_reject_and_preferred_retries_without_qkd() {
    let mut pair = Pair::new(QkdPolicy::Preferred);
    pair.kme.slave_down = true;
    pair.run_for(Duration::from_secs(1));
    let rejected = |seen: &Seen, sent| {
        seen.events.iter().any(|e| matches!(e, HybridEvent::Rejected { reason: RejectReason::QkdUnavailable, sent: s, .. } if *s == sent))
    };
    assert!(rejected(&pair.at_slave, true) && rejected(&pair.at_master, false));
    let epochs = epochs_installed(&pair.at_master);
    assert_eq!(epochs.len(), 1, "the retry without QKD succeeded");
    assert!(!epochs[0].sources.has_qkd());
}

#[test]
fn a_key_id_unknown_to_the_slave_kme_is_refused_and_required_makes_no_epoch() {
    let mut pair = Pair::new(QkdPolicy::Required);
    pair.kme.slave_down = false;
    // The slave's KME lost every key: each ID is unknown there.
    pair.lose = Box::new(|_, _| false);
    pair.settle();
    pair.master.handle_timeout(pair.now);
    // Take the master's request by hand so the key never reaches the slave KME.
    let request = pair.master.poll_qkd_request().expect("asked for a key");
    assert_eq!(
        request.op,
        QkdOp::Fetch {
            prefetched: Prefetched::Use
        }
    );
    let unknown = KeyId::parse("00000000-0000-4000-8000-00000000dead").expect("uuid");
    let material = QkdMaterial::new(vec![unknown], SecretVec::new(vec![9; 32])).expect("valid");
    pair.master
        .handle_qkd_result(pair.now, request.id, Ok(material));
    pair.settle();
    assert!(pair.at_slave.events.iter().any(|e| matches!(
        e,
        HybridEvent::Rejected {
            reason: RejectReason::QkdRefused,
            ..
        }
    )));
    assert!(pair.at_master.psks.is_empty() && pair.at_slave.psks.is_empty());
}

#[test]
fn a_master_signing_with_the_wrong_ml_dsa_key_is_refused() {
    let mut pair = Pair::with_master_key(QkdPolicy::Off, 0xC);
    pair.run_for(Duration::from_secs(10));
    assert!(pair.at_slave.psks.is_empty() && pair.at_master.psks.is_empty());
    assert!(pair.slave.stats().drops_for(HybridDrop::BadSignature) >= 1);
}

#[test]
fn tampered_and_forged_datagrams_cost_no_public_key_work() {
    let mut pair = Pair::new(QkdPolicy::Off);
    pair.lose = Box::new(|to_slave, _| to_slave); // capture the Init without delivering it
    pair.run_for(Duration::from_millis(10));
    let init = pair.at_master.sent[0].clone();
    // A bit flip anywhere in the payload fails the MAC.
    let mut tampered = init.clone();
    tampered[100] ^= 1;
    assert_eq!(
        deliver(&mut pair.slave, pair.now, &tampered),
        Err(HybridDrop::BadMac)
    );
    // A flood of forged datagrams with the right pair_id: all dropped at the MAC.
    let mut forged = init.clone();
    for i in 0..1000u32 {
        // The genuine payload starts with epoch 1; these never reproduce it.
        forged[24..28].copy_from_slice(&(i | 0x8000_0000).to_le_bytes());
        assert_eq!(
            deliver(&mut pair.slave, pair.now, &forged),
            Err(HybridDrop::BadMac)
        );
    }
    // Malformed headers never reach the MAC.
    assert_eq!(
        deliver(&mut pair.slave, pair.now, &init[..30]),
        Err(HybridDrop::Malformed)
    );
    assert_eq!(
        pair.slave.stats().signature_verifications,
        0,
        "no ML-DSA work"
    );
    assert_eq!(pair.slave.stats().kem_operations, 0, "no ML-KEM work");
    assert_eq!(pair.slave.stats().drops_for(HybridDrop::BadMac), 1001);
}

#[test]
fn replayed_inits_are_refused_but_exact_retransmissions_get_the_cached_answer() {
    let mut pair = Pair::new(QkdPolicy::Off);
    pair.run_for(Duration::from_millis(10));
    let first_init: Vec<Vec<u8>> = pair.at_master.sent[..4].to_vec();
    assert_eq!(epochs_installed(&pair.at_slave).len(), 1);
    // Exact retransmission: answered from the cache without new work, at most once a second.
    pair.run_for(Duration::from_secs(1));
    let verifications = pair.slave.stats().signature_verifications;
    let cached = pair.slave.stats().cached_answers;
    for _ in 0..3 {
        for d in &first_init {
            let _ = deliver(&mut pair.slave, pair.now, d);
        }
    }
    assert_eq!(pair.slave.stats().cached_answers, cached + 1);
    assert_eq!(pair.slave.stats().drops_for(HybridDrop::RateLimited), 2);
    assert_eq!(pair.slave.stats().signature_verifications, verifications);
    // The next epoch replaces the cache; replaying the first Init is now a replay.
    pair.confirm_all();
    pair.run_for(Duration::from_secs(6));
    assert_eq!(epochs_installed(&pair.at_slave).len(), 2);
    for d in &first_init {
        let _ = deliver(&mut pair.slave, pair.now, d);
    }
    assert_eq!(pair.slave.stats().drops_for(HybridDrop::Replay), 1);
    assert_eq!(
        epochs_installed(&pair.at_slave).len(),
        2,
        "the current keys stay"
    );
}

#[test]
fn a_lost_response_fragment_is_recovered_by_retransmission() {
    let mut pair = Pair::new(QkdPolicy::Required);
    let mut dropped = false;
    pair.lose = Box::new(move |to_slave, d| {
        let lose = !to_slave && !dropped && d[2] == 2 && d[3] == 1;
        dropped |= lose;
        lose
    });
    pair.run_for(Duration::from_secs(6));
    let epochs = epochs_installed(&pair.at_master);
    assert_eq!(epochs.len(), 1, "installed after one retransmission");
    assert_eq!(pair.slave.stats().cached_answers, 1);
    assert_eq!(
        pair.kme.next, 1,
        "the retransmission used no second QKD key"
    );
    assert_eq!(pair.at_master.psks, pair.at_slave.psks);
}

#[test]
fn a_restarted_slave_makes_the_master_resynchronise_from_genesis() {
    let mut pair = Pair::new(QkdPolicy::Off);
    pair.run_for(Duration::from_secs(1));
    pair.confirm_all();
    pair.run_for(Duration::from_secs(5));
    pair.confirm_all();
    assert_eq!(epochs_installed(&pair.at_master).len(), 2);
    let (_, fresh_slave) = build(pair.now, pair.clock, QkdPolicy::Off, 0xA);
    pair.slave = fresh_slave;
    // The restarted slave asks at once, saying it has no epoch: the master starts from genesis
    // without first learning it from a chain-mismatch Reject.
    pair.run_for(Duration::from_millis(10));
    let last = epochs_installed(&pair.at_master).pop().expect("an epoch");
    assert_eq!(last.epoch, 1, "restarted from genesis");
    assert_eq!(pair.at_master.psks.last(), pair.at_slave.psks.last());
    assert!(
        pair.at_slave
            .events
            .iter()
            .all(|e| !matches!(e, HybridEvent::Rejected { .. }))
    );
    // A slave that lost its ratchet while keeping an epoch number still gets a signed
    // chain-mismatch Reject, and the master resets.
    let (_, fresh_slave) = build(pair.now, pair.clock, QkdPolicy::Off, 0xA);
    pair.slave = fresh_slave;
    pair.lose = Box::new(|to_slave, d| !to_slave && d[2] == 3);
    pair.run_for(Duration::from_secs(6));
    assert!(pair.at_slave.events.iter().any(|e| matches!(
        e,
        HybridEvent::Rejected {
            reason: RejectReason::ChainMismatch,
            ..
        }
    )));
    let last = epochs_installed(&pair.at_master).pop().expect("an epoch");
    assert_eq!(last.epoch, 1, "restarted from genesis");
    assert_eq!(pair.at_master.psks.last(), pair.at_slave.psks.last());
}

#[test]
fn a_request_during_an_exchange_gets_the_init_again_at_once() {
    let mut pair = Pair::new(QkdPolicy::Off);
    pair.run_for(Duration::from_secs(1));
    pair.confirm_all();
    // The second epoch's Init is lost on its way.
    let mut lost = 0;
    pair.lose = Box::new(move |to_slave, d| {
        let lose = to_slave && d[2] == 1 && lost < 4;
        lost += usize::from(lose);
        lose
    });
    pair.run_for(Duration::from_secs(5));
    assert_eq!(epochs_installed(&pair.at_slave).len(), 1);
    // The slave asks (it has traffic and no session): the master sends the Init again now,
    // instead of at its retransmission timer 5 s later.
    pair.slave.request_epoch(pair.now);
    pair.settle();
    assert_eq!(epochs_installed(&pair.at_slave).len(), 2);
    assert_eq!(pair.kme.next, 0, "no KME (policy off) and no new exchange");
}

#[test]
fn requests_are_honoured_only_as_rotation_needs() {
    let mut pair = Pair::new(QkdPolicy::Required);
    pair.run_for(Duration::from_millis(100));
    pair.confirm_all();
    assert_eq!(epochs_installed(&pair.at_master).len(), 1);
    let keys = pair.kme.next;
    // Right after an epoch, requests every second make none: the rotation (5 s) decides.
    for _ in 0..4 {
        pair.run_for(Duration::from_secs(1));
        pair.slave.request_epoch(pair.now);
        pair.settle();
    }
    assert_eq!(epochs_installed(&pair.at_master).len(), 1);
    assert_eq!(pair.kme.next, keys, "no QKD key spent on requests");
    pair.run_for(Duration::from_secs(1));
    assert_eq!(
        epochs_installed(&pair.at_master).len(),
        2,
        "the rotation's epoch"
    );
}

#[test]
fn an_idle_tunnel_still_ratchets_because_the_init_proves_the_chain() {
    let mut pair = Pair::new(QkdPolicy::Off);
    pair.slave_confirms = false;
    pair.run_for(Duration::from_secs(16));
    let epochs: Vec<u64> = epochs_installed(&pair.at_slave)
        .iter()
        .map(|e| e.epoch)
        .collect();
    assert_eq!(
        epochs,
        vec![1, 2, 3, 4],
        "the chain tag promotes the tentative epoch"
    );
    assert_eq!(pair.at_master.psks, pair.at_slave.psks);
}

mod parsers {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn no_input_panics_a_hybrid_parser(data in prop::collection::vec(any::<u8>(), 0..6000)) {
            super::super::fuzz_parsers(&data);
        }

        #[test]
        fn hybrid_shaped_headers_do_not_panic(mut data in prop::collection::vec(any::<u8>(), 41..1300), kind in 0u8..6, index in 0u8..9, count in 0u8..9) {
            data[0] = super::super::constants::MESSAGE_TYPE;
            data[1] = 1;
            data[2] = kind;
            data[3] = index;
            data[4] = count;
            super::super::fuzz_parsers(&data);
        }
    }
}

#[test]
fn a_rate_limited_epoch_request_leaves_no_deadline_in_the_past() {
    // Found by the simulation (seed 2): the slave asked for an epoch (no session) just before its
    // own rekey timer; at the timer the request was rate-limited, and its deadline stayed due, so
    // the driver would spin until the rate limit passed.
    let mut pair = Pair::new(QkdPolicy::Off);
    pair.run_for(Duration::from_secs(1));
    pair.confirm_all();
    let due = pair.slave.poll_timeout().expect("the slave's rekey timer");
    pair.now = due - Duration::from_millis(500);
    pair.slave.request_epoch(pair.now);
    pair.now = due;
    pair.slave.handle_timeout(pair.now);
    let next = pair.slave.poll_timeout().expect("a deadline");
    assert!(next > pair.now, "deadline {:?} before now", pair.now - next);
}

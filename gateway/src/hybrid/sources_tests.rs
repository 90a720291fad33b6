//! Two QKD sources per peer (docs/protocol.md §6.3) on the simulated pair: `required: all` fails
//! closed when one source is down, `any` mixes the one that delivered, `preferred` falls back
//! with none, and a slave under `all` refuses an Init that names too few sources.

use std::time::Duration;

use super::test_pair::{Pair, Seen, epochs_installed};
use super::*;

fn two(require: Require) -> QkdSources {
    QkdSources { count: 2, require }
}

fn second() -> SourceIndex {
    SourceIndex::new(1).expect("index 1")
}

fn count(seen: &Seen, want: fn(&HybridEvent) -> bool) -> usize {
    seen.events.iter().filter(|e| want(e)).count()
}

#[test]
fn both_sources_are_mixed_in_source_order() {
    let mut pair = Pair::with_sources(QkdPolicy::Required, two(Require::All), two(Require::All));
    pair.run_for(Duration::from_secs(1));
    let (master, slave) = (
        epochs_installed(&pair.at_master),
        epochs_installed(&pair.at_slave),
    );
    assert_eq!(master.len(), 1);
    assert_eq!(master[0].key_ids.len(), 2, "one key ID per source");
    assert_eq!(master[0].key_ids, slave[0].key_ids);
    assert_eq!(pair.at_master.psks, pair.at_slave.psks, "the same PSK");
    for peer in [&pair.master, &pair.slave] {
        let sources = &peer.stats().sources;
        assert_eq!((sources[0].delivered, sources[1].delivered), (1, 1));
        assert_eq!(sources[1].last, Some(SourceResult::Delivered));
    }
}

#[test]
fn required_all_fails_closed_when_one_source_is_down_and_recovers() {
    let mut pair = Pair::with_sources(QkdPolicy::Required, two(Require::All), two(Require::All));
    pair.kme.master_down_at = vec![second()];
    pair.run_for(Duration::from_secs(30));
    assert!(
        pair.at_master.psks.is_empty(),
        "no epoch with one source down"
    );
    let blocked = count(&pair.at_master, |e| {
        matches!(e, HybridEvent::QkdBlocked { .. })
    });
    assert!(blocked >= 2, "counted and retried with back-off: {blocked}");
    assert_eq!(
        count(&pair.at_master, |e| matches!(
            e,
            HybridEvent::Fallback { .. }
        )),
        0
    );
    let sources = &pair.master.stats().sources;
    assert_eq!(sources[1].failed as usize, blocked);
    assert_eq!(sources[1].last, Some(SourceResult::Unavailable));
    pair.kme.master_down_at.clear();
    pair.run_for(Duration::from_secs(6));
    let epochs = epochs_installed(&pair.at_slave);
    assert!(
        !epochs.is_empty() && epochs.iter().all(|e| e.key_ids.len() == 2),
        "recovered"
    );
}

#[test]
fn required_all_fails_closed_when_the_slaves_end_of_one_source_is_down() {
    let mut pair = Pair::with_sources(QkdPolicy::Required, two(Require::All), two(Require::All));
    pair.kme.slave_down_at = vec![second()];
    pair.run_for(Duration::from_secs(10));
    assert!(pair.at_master.psks.is_empty() && pair.at_slave.psks.is_empty());
    let refused = |e: &HybridEvent| {
        matches!(
            e,
            HybridEvent::Rejected {
                reason: RejectReason::QkdUnavailable,
                sent: true,
                ..
            }
        )
    };
    assert!(count(&pair.at_slave, refused) >= 1);
    assert_eq!(
        pair.slave.stats().sources[1].last,
        Some(SourceResult::Unavailable)
    );
}

#[test]
fn required_any_makes_the_epoch_with_the_source_that_delivered() {
    let mut pair = Pair::with_sources(QkdPolicy::Required, two(Require::Any), two(Require::Any));
    pair.kme.master_down_at = vec![SourceIndex::FIRST];
    pair.run_for(Duration::from_secs(1));
    let epochs = epochs_installed(&pair.at_slave);
    assert_eq!(epochs.len(), 1);
    assert!(epochs[0].sources.has_qkd());
    assert_eq!(epochs[0].key_ids.len(), 1, "only the second source's key");
    assert_eq!(pair.at_master.psks, pair.at_slave.psks);
    // The slave resolved it at the second source's KME.
    assert_eq!(pair.slave.stats().sources[1].delivered, 1);
    assert_eq!(pair.slave.stats().sources[0].delivered, 0);
}

#[test]
fn preferred_falls_back_when_every_source_is_down_and_mixes_one_that_is_up() {
    let mut pair = Pair::with_sources(
        QkdPolicy::Preferred,
        QkdSources {
            count: 2,
            ..Default::default()
        },
        two(Require::All),
    );
    pair.kme.master_down_at = vec![SourceIndex::FIRST, second()];
    pair.run_for(Duration::from_secs(1));
    let epochs = epochs_installed(&pair.at_slave);
    assert_eq!(epochs.len(), 1);
    assert!(!epochs[0].sources.has_qkd(), "X25519 + ML-KEM only");
    assert_eq!(
        count(&pair.at_master, |e| matches!(
            e,
            HybridEvent::Fallback { epoch: 1 }
        )),
        1
    );
    pair.kme.master_down_at = vec![second()];
    pair.confirm_all();
    pair.run_for(Duration::from_secs(6));
    let epochs = epochs_installed(&pair.at_slave);
    let last = epochs.last().expect("a second epoch");
    assert_eq!(last.key_ids.len(), 1, "the source that is up is mixed");
}

#[test]
fn a_slave_under_all_refuses_an_init_with_too_few_sources() {
    let mut pair = Pair::with_sources(QkdPolicy::Required, two(Require::Any), two(Require::All));
    pair.kme.master_down_at = vec![second()];
    pair.run_for(Duration::from_secs(1));
    assert!(pair.at_slave.psks.is_empty(), "no epoch");
    let mismatch = |sent| move |e: &HybridEvent| matches!(e, HybridEvent::Rejected { reason: RejectReason::PolicyMismatch, sent: s, .. } if *s == sent);
    assert!(pair.at_slave.events.iter().any(mismatch(true)));
    assert!(pair.at_master.events.iter().any(mismatch(false)));
    assert_eq!(
        pair.slave.stats().kme_requests,
        0,
        "no key resolved for a refused Init"
    );
}

#[test]
fn a_slave_with_one_source_refuses_tags_it_does_not_have() {
    let mut pair = Pair::with_sources(
        QkdPolicy::Required,
        two(Require::All),
        QkdSources::default(),
    );
    pair.run_for(Duration::from_secs(1));
    assert!(pair.at_slave.psks.is_empty());
    let mismatch = |e: &HybridEvent| {
        matches!(
            e,
            HybridEvent::Rejected {
                reason: RejectReason::PolicyMismatch,
                sent: true,
                ..
            }
        )
    };
    assert_eq!(count(&pair.at_slave, mismatch), 1);
}

#[test]
fn what_a_slave_admits_by_policy_and_sources_named() {
    let table = [
        (QkdPolicy::Required, Require::All, [false, false, true]),
        (QkdPolicy::Required, Require::Any, [false, true, true]),
        (QkdPolicy::Preferred, Require::All, [true, true, true]),
        (QkdPolicy::Off, Require::All, [true, false, false]),
    ];
    for (policy, require, by_named) in table {
        for (named, want) in by_named.into_iter().enumerate() {
            let got = two(require).admits(policy, named);
            assert_eq!(got, want, "{policy:?} {require:?} with {named} named");
        }
    }
}

/// The flags byte of the first Init the master sent (fragment 0's body starts after the header),
/// without `GENESIS` (the first epoch's Init has it).
fn init_flags(seen: &Seen) -> u8 {
    let first = seen.sent.first().expect("an Init sent");
    first[super::constants::HEADER_LEN + 8] & !0x01
}

#[test]
fn only_a_peer_with_several_sources_tags_its_key_ids() {
    // One source: version 1's Init, byte for byte (no SOURCE_TAGGED), as a gateway that predates
    // several sources sends and expects.
    let mut one = Pair::new(QkdPolicy::Required);
    one.run_for(Duration::from_secs(1));
    assert_eq!(init_flags(&one.at_master), 0);
    assert_eq!(epochs_installed(&one.at_slave).len(), 1);
    let mut two_sources =
        Pair::with_sources(QkdPolicy::Required, two(Require::All), two(Require::All));
    two_sources.run_for(Duration::from_secs(1));
    assert_eq!(init_flags(&two_sources.at_master), 0x02);
}

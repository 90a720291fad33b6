//! The hybrid key agreement between whole nodes in the simulation (docs/protocol.md §6, §8, §9),
//! in simulated time: rotation with QKD without losing a packet, fail-closed while a KME is down
//! and recovery, fallback under `preferred`, a wrong key refused, and resynchronisation after a
//! restart of either side. Every step is also checked for the simulation's invariants.
#![allow(clippy::unwrap_used)]

mod sim;

use std::time::Duration;

use gateway::audit::AuditEvent;
use gateway::hybrid::{HybridEvent, QkdPolicy, Role};
use gateway::node::testing::{HybridLink, Site, hybrid, hybrid_pair};
use gateway::node::{NodeConfig, NodeEvent, PeerId};
use sim::World;

const A: Site = Site(1);
const B: Site = Site(2);

/// A is master, B slave; both with `policy` and `rekey` seconds between epochs.
fn config(site: Site, policy: QkdPolicy, rekey: u64) -> NodeConfig {
    hybrid_pair(site, policy, Duration::from_secs(rekey))
}

fn pair(seed: u64, policy: QkdPolicy, rekey: u64) -> World {
    let mut w = World::new(seed);
    w.add(A, config(A, policy, rekey));
    w.add(B, config(B, policy, rekey));
    w
}

/// Sends one packet each way every `every` for `duration`; returns the tags sent A→B and B→A.
fn traffic(w: &mut World, every: Duration, duration: Duration) -> (Vec<u64>, Vec<u64>) {
    let (mut ab, mut ba) = (Vec::new(), Vec::new());
    let end = w.now + duration;
    let mut tag = w.events.len() as u64 * 1_000_000;
    while w.now < end {
        for (from, to, sent) in [(A, B, &mut ab), (B, A, &mut ba)] {
            tag += 1;
            w.tun_send(from, to, tag);
            sent.push(tag);
        }
        w.run_for(every);
    }
    (ab, ba)
}

/// How long after `since` the first of `sent` arrived at `at`.
fn back_after(w: &World, at: Site, sent: &[u64], since: std::time::Instant) -> Option<Duration> {
    let got = w.received(at);
    let first = got
        .iter()
        .filter(|(t, _)| sent.contains(t))
        .map(|(_, when)| *when)
        .min()?;
    Some(first.saturating_duration_since(since))
}

fn installed(w: &World, node: usize) -> Vec<gateway::hybrid::EpochInfo> {
    w.check.epochs(node, PeerId::new(0)).to_vec()
}

fn audited(w: &World, node: usize, f: impl Fn(&AuditEvent) -> bool) -> bool {
    w.events
        .iter()
        .any(|(_, n, e)| *n == node && matches!(e, NodeEvent::Audit(a) if f(a)))
}

#[test]
fn required_qkd_rotates_every_5s_without_losing_a_packet() {
    let mut w = pair(10, QkdPolicy::Required, 5);
    let (ab, ba) = traffic(&mut w, Duration::from_millis(20), Duration::from_secs(60));
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        w.received_tags(B),
        ab,
        "A -> B: none lost, duplicated or reordered"
    );
    assert_eq!(w.received_tags(A), ba, "B -> A");
    let (master, slave) = (installed(&w, 0), installed(&w, 1));
    assert!(master.len() >= 11, "an epoch every 5 s: {}", master.len());
    let ids = |e: &[gateway::hybrid::EpochInfo]| -> Vec<_> {
        e.iter().map(|i| i.key_ids.clone()).collect()
    };
    assert_eq!(
        ids(&master),
        ids(&slave),
        "the same QKD key ID at both sides"
    );
    let mut all: Vec<_> = ids(&master).concat();
    let n = all.len();
    all.dedup();
    assert_eq!(
        (all.len(), n),
        (master.len(), master.len()),
        "one fresh QKD key per epoch"
    );
    assert_eq!(
        w.kmes.served as usize,
        master.len(),
        "each key fetched once at each side"
    );
}

#[test]
fn required_fails_closed_while_the_slave_kme_is_down_and_recovers() {
    let mut w = World::new(11);
    for site in [A, B] {
        let mut c = config(site, QkdPolicy::Required, 5);
        c.danger_reject_after = Some(Duration::from_secs(20));
        w.add(site, c);
    }
    traffic(&mut w, Duration::from_millis(100), Duration::from_secs(10));
    w.kmes.down.insert(B.0);
    let (during, _) = traffic(&mut w, Duration::from_millis(100), Duration::from_secs(60));
    let got = w.received_tags(B);
    let late: Vec<_> = during
        .iter()
        .rev()
        .take(100)
        .filter(|t| got.contains(t))
        .collect();
    assert!(
        late.is_empty(),
        "fail closed: nothing passes once the keys expired: {late:?}"
    );
    assert!(audited(&w, 0, |a| matches!(
        a,
        AuditEvent::FailClosedEnter { .. }
    )));
    assert!(w.events.iter().any(|(_, n, e)| *n == 1
        && matches!(
            e,
            NodeEvent::Hybrid {
                event: HybridEvent::Rejected { .. },
                ..
            }
        )));
    w.kmes.down.clear();
    let outage_end = w.now;
    let (after, _) = traffic(&mut w, Duration::from_millis(100), Duration::from_secs(30));
    let back = back_after(&w, B, &after, outage_end).expect("traffic flows again");
    eprintln!("traffic back {back:?} after the KME returned");
    let got = w.received_tags(B);
    assert!(
        after.iter().skip(50).all(|t| got.contains(t)),
        "and keeps flowing"
    );
    assert!(audited(&w, 0, |a| matches!(
        a,
        AuditEvent::FailClosedExit { .. }
    )));
    assert!(installed(&w, 0).iter().all(|e| e.sources.has_qkd()));
}

#[test]
fn preferred_falls_back_to_x25519_mlkem_and_traffic_keeps_flowing() {
    let mut w = pair(12, QkdPolicy::Preferred, 5);
    w.kmes.down.insert(A.0);
    let (ab, _) = traffic(&mut w, Duration::from_millis(50), Duration::from_secs(20));
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.received_tags(B), ab, "nothing lost");
    let epochs = installed(&w, 0);
    assert!(epochs.len() >= 3 && epochs.iter().all(|e| !e.sources.has_qkd()));
    assert!(w.events.iter().any(|(_, n, e)| *n == 0
        && matches!(
            e,
            NodeEvent::Hybrid {
                event: HybridEvent::Fallback { .. },
                ..
            }
        )));
    w.kmes.down.clear();
    traffic(&mut w, Duration::from_millis(50), Duration::from_secs(10));
    assert!(
        installed(&w, 0).last().unwrap().sources.has_qkd(),
        "QKD again once it is back"
    );
}

#[test]
fn a_wrong_key_is_refused_at_key_confirmation_and_the_keys_in_force_stay() {
    let mut w = pair(13, QkdPolicy::Required, 5);
    traffic(&mut w, Duration::from_millis(100), Duration::from_secs(3));
    w.kmes.wrong_keys = 1.0;
    let (ab, _) = traffic(&mut w, Duration::from_millis(100), Duration::from_secs(30));
    let bad = w.node(A).hybrid_peer(PeerId::new(0)).unwrap().stats();
    assert!(bad.drops_for(gateway::hybrid::HybridDrop::BadConfirm) >= 1);
    assert_eq!(installed(&w, 0).len(), 1, "no epoch from a wrong key");
    let got = w.received_tags(B);
    assert!(
        ab.iter().all(|t| got.contains(t)),
        "the epoch in force keeps carrying traffic"
    );
}

#[test]
fn a_restarted_slave_or_master_resynchronises_and_traffic_resumes() {
    for restarted in [B, A] {
        let mut w = pair(14, QkdPolicy::Required, 10);
        traffic(&mut w, Duration::from_millis(100), Duration::from_secs(25));
        let i = w.index(restarted);
        let before = installed(&w, i).len();
        w.restart(i, config(restarted, QkdPolicy::Required, 10));
        let crash = w.now;
        let (ab, ba) = traffic(&mut w, Duration::from_millis(100), Duration::from_secs(40));
        let ab_back = back_after(&w, B, &ab, crash).expect("A -> B resumes");
        let ba_back = back_after(&w, A, &ba, crash).expect("B -> A resumes");
        eprintln!(
            "{restarted:?} restarted: traffic back after {ab_back:?} (A -> B), {ba_back:?} (B -> A)"
        );
        let (got_b, got_a) = (w.received_tags(B), w.received_tags(A));
        assert!(
            ab.iter().skip(100).all(|t| got_b.contains(t)),
            "A -> B keeps flowing"
        );
        assert!(
            ba.iter().skip(100).all(|t| got_a.contains(t)),
            "B -> A keeps flowing"
        );
        let fresh = installed(&w, i).get(before).map(|e| e.epoch);
        assert_eq!(fresh, Some(1), "the ratchet starts again from genesis");
    }
}

#[test]
fn two_masters_make_no_epoch_and_count_a_role_conflict() {
    let mut w = World::new(15);
    let master_of = |me: Site, peer: Site| {
        let link = HybridLink {
            peer,
            role: Role::Master,
            policy: QkdPolicy::Off,
            rekey_after: Duration::from_secs(5),
        };
        hybrid(me, &[link])
    };
    w.add(A, master_of(A, B));
    w.add(B, master_of(B, A));
    traffic(&mut w, Duration::from_millis(100), Duration::from_secs(20));
    assert!(
        installed(&w, 0).is_empty() && installed(&w, 1).is_empty(),
        "fail closed"
    );
    assert!(w.received_tags(B).is_empty());
    for site in [A, B] {
        let stats = w.node(site).hybrid_peer(PeerId::new(0)).unwrap().stats();
        let conflicts = stats.drops_for(gateway::hybrid::HybridDrop::RoleConflict);
        assert!(conflicts >= 1, "{site:?} reports the misconfiguration");
    }
}

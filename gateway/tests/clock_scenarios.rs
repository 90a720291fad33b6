//! Wall-clock faults in the simulation (whitepaper §5.1 timestamps; docs/protocol.md §5.3, §6.2
//! step 1, §7): a gateway started with its clock a day behind recovers when NTP sets it right,
//! without a restart, and jumps of an hour either way on either side of a running pair — set
//! right later or not — stop neither rotation nor traffic. Every step is also checked for the
//! simulation's invariants.
#![allow(clippy::unwrap_used)]

mod sim;

use std::time::{Duration, Instant};

use gateway::hybrid::QkdPolicy;
use gateway::node::PeerId;
use gateway::node::testing::{Site, hybrid_pair};
use sim::World;

const A: Site = Site(1);
const B: Site = Site(2);
const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

fn pair(seed: u64) -> World {
    let mut w = World::new(seed);
    for site in [A, B] {
        w.add(
            site,
            hybrid_pair(site, QkdPolicy::Required, Duration::from_secs(5)),
        );
    }
    w
}

/// Traffic each way every 100 ms for `seconds`; the tags sent and when.
fn traffic(w: &mut World, seconds: u64) -> Vec<(u64, Instant)> {
    let mut sent = Vec::new();
    for _ in 0..seconds * 10 {
        let tag = 1 + w.steps;
        w.tun_send(A, B, tag);
        w.tun_send(B, A, tag);
        sent.push((tag, w.now));
        w.run_for(Duration::from_millis(100));
    }
    sent
}

/// When the first packet sent at or after `since` arrived, each way.
fn first_delivery(w: &World, sent: &[(u64, Instant)], since: Instant) -> [Option<Duration>; 2] {
    [B, A].map(|to| {
        let got = w.received(to);
        (sent.iter().filter(|(_, at)| *at >= since))
            .filter_map(|(tag, _)| {
                got.iter()
                    .find(|(t, _)| t == tag)
                    .map(|(_, at)| *at - since)
            })
            .min()
    })
}

fn epochs(w: &World, site: Site) -> usize {
    w.check.epochs(w.index(site), PeerId::new(0)).len()
}

#[test]
fn a_site_started_with_its_clock_a_day_behind_recovers_when_ntp_sets_it_right() {
    for late in [A, B] {
        let mut w = pair(1);
        traffic(&mut w, 10);
        let i = w.index(late);
        w.crash(i);
        w.restart(
            i,
            hybrid_pair(late, QkdPolicy::Required, Duration::from_secs(5)),
        );
        w.set_clock(late, -DAY);
        traffic(&mut w, 20);
        let fixed = w.now;
        w.set_clock(late, 0);
        let sent = traffic(&mut w, 5);
        for (dir, d) in ["A → B", "B → A"]
            .iter()
            .zip(first_delivery(&w, &sent, fixed))
        {
            let d = d.unwrap_or_else(|| panic!("{late:?} set right: nothing {dir}"));
            assert!(
                d <= Duration::from_secs(1),
                "{late:?} set right: {dir} after {d:?}"
            );
        }
    }
}

#[test]
fn clock_jumps_either_way_on_either_side_stop_neither_rotation_nor_traffic() {
    for site in [A, B] {
        for jump in [HOUR, -HOUR] {
            let mut w = pair(2);
            traffic(&mut w, 20);
            let before = (epochs(&w, A), epochs(&w, B));
            w.set_clock(site, jump);
            let sent = traffic(&mut w, 60);
            w.set_clock(site, 0);
            let sent_after = traffic(&mut w, 30);
            let case = format!("{site:?} jumped {jump:+} s");
            let made = (epochs(&w, A) - before.0, epochs(&w, B) - before.1);
            assert!(
                made.0 >= 12 && made.1 >= 12,
                "{case}: epochs {made:?} in 90 s"
            );
            for (to, from) in [(B, A), (A, B)] {
                let got = w.received_tags(to);
                let lost = (sent.iter().chain(&sent_after))
                    .filter(|(t, _)| !got.contains(t))
                    .count();
                assert!(lost <= 2, "{case}: {lost} packets {from:?} → {to:?} lost");
            }
        }
    }
}

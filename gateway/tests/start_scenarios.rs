//! Start and restart in the simulation (docs/protocol.md §2, §9; whitepaper §6 timers): with
//! hybrid on and `qkd.policy: required`, traffic flows within a second of the second site's
//! start whichever site starts first, and within a second of either site's crash and restart,
//! without touching the other site; plain peers with an endpoint handshake at start. Every step
//! is also checked for the simulation's invariants.
#![allow(clippy::unwrap_used)]

mod sim;

use std::time::{Duration, Instant};

use gateway::hybrid::QkdPolicy;
use gateway::node::testing::{Site, hybrid_pair, plain};
use gateway::node::{NodeConfig, PeerId};
use sim::World;

const A: Site = Site(1);
const B: Site = Site(2);
/// What the property asks: the first packet within this of the (re)start.
const WITHIN: Duration = Duration::from_secs(1);

fn config(me: Site) -> NodeConfig {
    hybrid_pair(me, QkdPolicy::Required, Duration::from_secs(120))
}

/// Sends a packet each way every 50 ms for `seconds`; returns when the first packet sent at or
/// after `since` arrived in each direction (A → B, B → A), if it did.
fn first_after(w: &mut World, since: Instant, seconds: u64) -> [Option<Duration>; 2] {
    let first = 1_000_000 * (w.steps % 1000 + 1);
    for tag in first..first + seconds * 20 {
        w.tun_send(A, B, tag);
        w.tun_send(B, A, tag);
        w.run_for(Duration::from_millis(50));
    }
    [B, A].map(|to| {
        (w.received(to).iter())
            .filter(|(t, at)| *t >= first && *at >= since)
            .map(|(_, at)| *at - since)
            .min()
    })
}

fn assert_within(what: &str, got: [Option<Duration>; 2]) {
    for (dir, d) in ["A → B", "B → A"].iter().zip(got) {
        let d = d.unwrap_or_else(|| panic!("{what}: nothing arrived {dir}"));
        assert!(d <= WITHIN, "{what}: first packet {dir} after {d:?}");
    }
}

#[test]
fn traffic_flows_within_a_second_of_the_second_start_whichever_site_starts_first() {
    for (first, second) in [(A, B), (B, A)] {
        let mut w = World::new(1);
        w.add(first, config(first));
        // The first site runs alone for a while: its Init or EpochRequest finds nobody.
        w.run_for(Duration::from_secs(7));
        let up = w.now;
        w.add(second, config(second));
        assert_within(&format!("{first:?} first"), first_after(&mut w, up, 3));
    }
}

#[test]
fn traffic_flows_within_a_second_of_a_crashed_site_restarting() {
    for crashed in [A, B] {
        let mut w = World::new(2);
        w.add(A, config(A));
        w.add(B, config(B));
        let now = w.now;
        first_after(&mut w, now, 30);
        // kill -9: all state gone; down for 2 s while the other keeps sending.
        let i = w.index(crashed);
        w.crash(i);
        let now = w.now;
        first_after(&mut w, now, 2);
        let up = w.now;
        w.restart(i, config(crashed));
        assert_within(
            &format!("{crashed:?} restarted"),
            first_after(&mut w, up, 3),
        );
    }
}

/// The same with the shortest rotation, the crash coming right after an epoch: the master's last
/// WireGuard initiation is then less than REKEY_TIMEOUT old when the restarted site's epoch is
/// installed, and that spacing rule must not hold back the new epoch's handshake.
#[test]
fn traffic_flows_within_a_second_of_a_restart_right_after_a_rotation() {
    let config = |me| hybrid_pair(me, QkdPolicy::Required, Duration::from_secs(5));
    for crashed in [A, B] {
        let mut w = World::new(5);
        w.add(A, config(A));
        w.add(B, config(B));
        let now = w.now;
        first_after(&mut w, now, 12);
        // Run on until the master installs an epoch, then crash at once.
        let installs = |w: &World| w.check.epochs(w.index(A), PeerId::new(0)).len();
        let before = installs(&w);
        for _ in 0..200 {
            if installs(&w) > before {
                break;
            }
            w.run_for(Duration::from_millis(50));
        }
        assert!(installs(&w) > before, "no rotation within 10 s");
        let i = w.index(crashed);
        w.crash(i);
        w.run_for(Duration::from_millis(500));
        let up = w.now;
        w.restart(i, config(crashed));
        assert_within(
            &format!("{crashed:?} restarted right after a rotation"),
            first_after(&mut w, up, 3),
        );
    }
}

#[test]
fn plain_peers_with_an_endpoint_handshake_at_start() {
    let mut w = World::new(3);
    w.add(A, plain(A, &[B], true));
    w.add(B, plain(B, &[A], true));
    w.run_for(WITHIN);
    for site in [A, B] {
        let peer = w.node(site).wg_peer(PeerId::new(0)).unwrap();
        assert!(
            peer.has_usable_session(w.now),
            "{site:?}: a session without traffic"
        );
    }
}

/// After an idle period past REJECT_AFTER_TIME (180 s), and past three times that (keys erased),
/// the first packets each way wait for a handshake (and, hybrid, an epoch) and then arrive: none
/// is lost, plain or hybrid, whichever side speaks first.
#[test]
fn the_first_packets_after_an_idle_period_arrive() {
    type Config = fn(Site) -> NodeConfig;
    let configs: [(&str, Config); 2] = [
        ("plain", |me| {
            plain(me, &[if me == A { B } else { A }], true)
        }),
        ("hybrid", config),
    ];
    for (mode, config) in configs {
        for idle in [200, 600] {
            let mut w = World::new(4);
            w.add(A, config(A));
            w.add(B, config(B));
            let now = w.now;
            first_after(&mut w, now, 2);
            w.run_for(Duration::from_secs(idle));
            let (a, b) = (w.received_tags(A).len(), w.received_tags(B).len());
            for (tag, from, to) in [(1, A, B), (2, B, A), (3, A, B), (4, B, A)] {
                w.tun_send(from, to, tag);
                w.run_for(Duration::from_millis(20));
            }
            w.run_for(WITHIN);
            let got = (w.received_tags(A).len() - a, w.received_tags(B).len() - b);
            assert_eq!(got, (2, 2), "{mode}, {idle} s idle: packets lost");
        }
    }
}

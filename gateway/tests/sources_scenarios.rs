//! Two QKD paths per link between whole nodes in the simulation (docs/protocol.md §6.3), in
//! simulated time: with one of a site's two KMEs down, `required: all` fails closed (no epoch
//! without both keys) and recovers when the path returns; `any` keeps rotating on the path that
//! is up. Every step is also checked for the simulation's invariants.
#![allow(clippy::unwrap_used)]

mod sim;

use std::time::Duration;

use gateway::hybrid::{HybridEvent, QkdPolicy, Require};
use gateway::node::testing::{Site, hybrid_pair, with_two_sources};
use gateway::node::{KmeId, NodeEvent, PeerId};
use sim::World;

const A: Site = Site(1);
const B: Site = Site(2);

fn pair(seed: u64, require: Require) -> World {
    let mut w = World::new(seed);
    for site in [A, B] {
        let config = hybrid_pair(site, QkdPolicy::Required, Duration::from_secs(5));
        w.add(site, with_two_sources(config, require));
    }
    w
}

fn west() -> KmeId {
    KmeId::new(1).unwrap()
}

fn epochs(w: &World, node: usize) -> Vec<gateway::hybrid::EpochInfo> {
    w.check.epochs(node, PeerId::new(0)).to_vec()
}

fn blocked(w: &World) -> usize {
    (w.events.iter())
        .filter(|(_, n, e)| {
            *n == 0
                && matches!(
                    e,
                    NodeEvent::Hybrid {
                        event: HybridEvent::QkdBlocked { .. },
                        ..
                    }
                )
        })
        .count()
}

#[test]
fn required_all_fails_closed_when_one_path_goes_down_and_recovers() {
    let mut w = pair(31, Require::All);
    w.run_for(Duration::from_secs(12));
    let before = epochs(&w, 0);
    assert!(
        before.len() >= 2,
        "rotating on both paths: {}",
        before.len()
    );
    assert!(
        before.iter().all(|e| e.key_ids.len() == 2),
        "a key from each path"
    );
    // The master's west path goes down: no epoch may be made with the east key alone.
    w.kmes.down_paths.insert((A.0, west()));
    w.run_for(Duration::from_secs(30));
    let during = epochs(&w, 0);
    assert_eq!(during.len(), before.len(), "no epoch while a path is down");
    assert!(
        blocked(&w) >= 2,
        "fail closed, counted, retried with back-off"
    );
    let status = w.node(A).snapshot(w.now);
    let sources = &status.peers[0].qkd_sources;
    assert_eq!(sources.len(), 2);
    assert_eq!(
        (sources[1].kme.as_str(), sources[1].last.as_deref()),
        ("west", Some("unavailable"))
    );
    assert_eq!(sources[0].last.as_deref(), Some("delivered"));
    w.kmes.down_paths.clear();
    w.run_for(Duration::from_secs(12));
    let after = epochs(&w, 0);
    assert!(after.len() > during.len(), "recovered");
    assert!(after.iter().all(|e| e.key_ids.len() == 2));
    assert_eq!(epochs(&w, 1).last(), after.last(), "the slave agrees");
}

#[test]
fn required_any_rotates_on_the_path_that_is_up() {
    let mut w = pair(32, Require::Any);
    w.kmes.down_paths.insert((B.0, west()));
    w.kmes.down_paths.insert((A.0, west()));
    w.run_for(Duration::from_secs(20));
    let made = epochs(&w, 0);
    assert!(made.len() >= 3, "{}", made.len());
    assert!(
        made.iter()
            .all(|e| e.key_ids.len() == 1 && e.sources.has_qkd())
    );
    assert_eq!(blocked(&w), 0);
}

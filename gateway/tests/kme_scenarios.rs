//! KME faults in the simulation (ETSI GS QKD 014 §5.3 `dec_keys`; the failure modes of
//! docs/design.md §3): the KMEs lose every key not yet served — a restart without persistent
//! storage, a resynchronisation — while the master still holds keys it prefetched before. The
//! slave's KME refuses those key IDs; the pair must not spend one exchange per stale key (one
//! every REKEY_TIMEOUT) before it reaches a key the slave's KME knows. Every step is also checked
//! for the simulation's invariants.
#![allow(clippy::unwrap_used)]

mod sim;

use std::time::{Duration, Instant};

use gateway::hybrid::{HybridEvent, QkdPolicy};
use gateway::node::NodeEvent;
use gateway::node::testing::{Site, hybrid_pair};
use sim::World;

const A: Site = Site(1);
const B: Site = Site(2);
const ROTATION: Duration = Duration::from_secs(10);

/// The daemon's prefetch batch for a peer rotating every ROTATION (7 keys).
fn batch() -> usize {
    let cfg =
        qkd_link::PrefetchConfig::for_rotation(qkd_link::SaeId::new("SAE_B").unwrap(), ROTATION);
    cfg.batch as usize
}

/// When the first QKD epoch must follow the loss of the keys, the next rotation being due 5 s
/// after it and refused once. `required`: it is retried after REKEY_TIMEOUT (5 s) + jitter
/// (≤ 0.33 s) with a fresh key. `preferred`: an epoch without QKD at once, then QKD again at the
/// rotation after it.
fn healed_within(policy: QkdPolicy) -> Duration {
    let refused = Duration::from_secs(5);
    match policy {
        QkdPolicy::Preferred => refused + ROTATION + Duration::from_secs(1),
        _ => refused + Duration::from_secs(7),
    }
}

/// When site `site` installed epochs with a QKD key, in order.
fn qkd_installs(w: &World, site: Site) -> Vec<Instant> {
    let i = w.index(site);
    (w.events.iter())
        .filter(|(_, at, e)| {
            *at == i
                && matches!(
                    e,
                    NodeEvent::Hybrid {
                        event: HybridEvent::EpochInstalled(info),
                        ..
                    } if info.sources.has_qkd()
                )
        })
        .map(|(t, _, _)| *t)
        .collect()
}

#[test]
fn lost_kme_keys_cost_one_refused_exchange_not_one_per_prefetched_key() {
    for policy in [QkdPolicy::Required, QkdPolicy::Preferred] {
        let mut w = World::new(3);
        w.kmes.prefetch = batch();
        for site in [A, B] {
            w.add(site, hybrid_pair(site, policy, ROTATION));
        }
        // A few epochs, so the master's buffer is part-used, as in a running pair.
        w.run_for(Duration::from_secs(25));
        let lost = w.now;
        w.kmes.lose_keys();
        w.run_for(Duration::from_secs(60));
        for site in [A, B] {
            let after: Vec<_> = (qkd_installs(&w, site).into_iter())
                .filter(|t| *t > lost)
                .collect();
            let first = *after.first().unwrap_or_else(|| {
                panic!("{policy:?}: {site:?} installed no QKD epoch after the keys were lost")
            });
            assert!(
                first - lost <= healed_within(policy),
                "{policy:?}: {site:?}'s first QKD epoch {:?} after the keys were lost",
                first - lost
            );
            assert!(
                after.len() >= 4,
                "{policy:?}: {site:?} installed {} QKD epochs in the 60 s after",
                after.len()
            );
        }
    }
}

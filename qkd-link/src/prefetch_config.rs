//! What a master-side prefetch pool ([`crate::prefetch::Prefetcher`]) holds, and the one rule
//! that sizes it from the peer's rotation (docs/protocol.md §7, "KME key prefetch").
//!
//! QKD key is scarce (a long link distils a few keys a second, shared by every peer on it) and
//! a key held in a pool is a key no other peer can use. So a pool holds what its peer's epochs
//! spend in [`COVER_HORIZON`], plus one for the exchange that is retried with a fresh key,
//! within [`MIN_KEYS`]..=[`MAX_KEYS`]: a peer that rotates every 10 s holds 7, one that rotates
//! every 120 s (the default) holds 2, where a fixed pool held 16 each.

use std::time::Duration;

use crate::ids::SaeId;

/// How long a full pool keeps a peer rotating with the KME unreachable (and so how far ahead
/// of need keys are fetched). One minute rides through a KME restart or the prefetcher's longest
/// backoff (5 s) many times over; a longer outage is covered by the session itself, which serves
/// until REJECT_AFTER_TIME (180 s, docs/protocol.md §8).
pub const COVER_HORIZON: Duration = Duration::from_secs(60);

/// Fewest keys a pool holds: the next epoch's and one to spare for a retried exchange.
pub const MIN_KEYS: usize = 2;

/// Most keys a pool holds (the former fixed size), whatever the rotation.
pub const MAX_KEYS: usize = 16;

/// Most keys asked for in one request; at or below a KME's usual `max_key_per_request`.
pub const MAX_BATCH: u32 = 8;

/// What to prefetch and how much to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchConfig {
    /// The peer SAE the keys are shared with (the slave).
    pub slave: SaeId,
    /// Most keys held in memory.
    pub capacity: usize,
    /// Fetch when the pool holds this many keys or fewer.
    pub low_water: usize,
    /// Key size in bits; `None` takes the KME's default `key_size`.
    pub key_size_bits: Option<u32>,
    /// Most keys asked for in one request (keep at or below the KME's `max_key_per_request`).
    pub batch: u32,
    /// Backoff after a failed fetch, doubling up to `backoff_max_ms`.
    pub backoff_initial_ms: u64,
    /// Longest pause between failed fetches.
    pub backoff_max_ms: u64,
}

impl PrefetchConfig {
    /// The largest pool: 16 keys of 256 bits, refill at 4, batches of 8, 0.2–5 s backoff. A hub
    /// sizes each pool from its peer's rotation instead ([`PrefetchConfig::for_rotation`]).
    pub fn new(slave: SaeId) -> Self {
        Self {
            slave,
            capacity: MAX_KEYS,
            low_water: 4,
            key_size_bits: Some(256),
            batch: MAX_BATCH,
            backoff_initial_ms: 200,
            backoff_max_ms: 5_000,
        }
    }

    /// A pool for a peer whose epochs each take one key every `rotation`: capacity
    /// `ceil(COVER_HORIZON / rotation) + 1` within `MIN_KEYS..=MAX_KEYS`, refilled at half of it
    /// (so half the horizon is still covered while the refill is under way), in batches of at
    /// most [`MAX_BATCH`].
    pub fn for_rotation(slave: SaeId, rotation: Duration) -> Self {
        let capacity = keys_for_rotation(rotation);
        Self {
            capacity,
            low_water: capacity / 2,
            batch: u32::try_from(capacity).unwrap_or(MAX_BATCH).min(MAX_BATCH),
            ..Self::new(slave)
        }
    }
}

/// Keys that cover [`COVER_HORIZON`] of epochs every `rotation`, plus one, bounded.
fn keys_for_rotation(rotation: Duration) -> usize {
    let rotation_ms = rotation.as_millis().max(1);
    let epochs = COVER_HORIZON.as_millis().div_ceil(rotation_ms);
    usize::try_from(epochs)
        .unwrap_or(MAX_KEYS)
        .saturating_add(1)
        .clamp(MIN_KEYS, MAX_KEYS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sized(secs: u64) -> PrefetchConfig {
        PrefetchConfig::for_rotation(SaeId::new("SAE_B").unwrap(), Duration::from_secs(secs))
    }

    #[test]
    fn a_fast_rotation_holds_more_keys_than_a_slow_one() {
        let fast = sized(10);
        assert_eq!((fast.capacity, fast.low_water, fast.batch), (7, 3, 7));
        let default = sized(120);
        assert_eq!(
            (default.capacity, default.low_water, default.batch),
            (2, 1, 2)
        );
        let odd = sized(45); // ceil(60 / 45) = 2, plus one
        assert_eq!((odd.capacity, odd.low_water, odd.batch), (3, 1, 3));
    }

    #[test]
    fn sizes_stay_within_bounds() {
        let fastest = sized(5); // 12 + 1
        assert_eq!(
            (fastest.capacity, fastest.low_water, fastest.batch),
            (13, 6, 8)
        );
        let absurd =
            PrefetchConfig::for_rotation(SaeId::new("SAE_B").unwrap(), Duration::from_millis(100));
        assert_eq!((absurd.capacity, absurd.batch), (MAX_KEYS, MAX_BATCH));
        assert_eq!(
            sized(0).capacity,
            MAX_KEYS,
            "a zero rotation does not divide by zero"
        );
        assert_eq!(sized(3600).capacity, MIN_KEYS);
    }

    #[test]
    fn at_one_hundred_peers_a_hub_holds_far_fewer_keys() {
        let hub = |cfg: PrefetchConfig| 100 * cfg.capacity;
        assert_eq!(hub(PrefetchConfig::new(SaeId::new("SAE_B").unwrap())), 1600);
        assert_eq!(hub(sized(120)), 200);
        assert_eq!(hub(sized(10)), 700);
    }

    #[test]
    fn every_size_refills_before_it_runs_dry_and_in_one_request() {
        for secs in 0..200 {
            let c = sized(secs);
            assert!(
                c.low_water >= 1 && c.low_water < c.capacity,
                "{secs} s: {c:?}"
            );
            assert!(
                c.capacity - c.low_water <= c.batch as usize,
                "{secs} s: {c:?}"
            );
        }
    }
}

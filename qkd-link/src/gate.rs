//! The gate all the prefetch pools of one KME client pass through (docs/protocol.md §7, "KME key
//! prefetch"): at most a few `enc_keys` requests in flight at once, however many pools there are,
//! and each pool's first fill started at a random moment of a short window, so a hub that
//! restarts with 100 master peers does not send its KME 100 requests in the same instant.
//!
//! Neither may delay a peer whose epoch waits for a key: a pool with a waiting
//! [`crate::Prefetcher::take`] skips the rest of its start delay and asks for an *urgent* permit,
//! which takes any free permit, including the one reserved for urgent requests, which background
//! fills never hold. So a waiting epoch queues behind other waiting epochs only, never behind
//! pools that are merely topping up.
//!
//! The daemon's gate ([`FetchGate::default`]) widens with the number of pools that join it: at
//! least [`DEFAULT_MAX_IN_FLIGHT`] requests, one more per [`POOLS_PER_PERMIT`] pools, at most
//! [`MAX_IN_FLIGHT_CAP`] ([`scaled_in_flight`]). A restart makes every master epoch wait for a
//! key at once, and the last one waits about pools × latency / permits: with four permits and a
//! KME answering in ~11 ms that passes the 2 s QKD timeout from ~730 pools
//! (docs/gateway-decisions.md §11); with the scaled gate 1000 pools are served in ~0.7 s, and the
//! KME still never sees more than 16 requests at once.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests a hub's pools may have in flight at once (a KME serves a handful of requests in
/// parallel; a hundred at once only queue at its end and time out).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;

/// The most requests the daemon's gate allows in flight, however many pools join it.
pub const MAX_IN_FLIGHT_CAP: usize = 16;

/// Pools per request in flight of the daemon's gate, above [`DEFAULT_MAX_IN_FLIGHT`].
pub const POOLS_PER_PERMIT: usize = 64;

/// Requests in flight of the daemon's gate for `pools` pools:
/// `clamp(ceil(pools / 64), 4, 16)`, so 4 up to 256 pools, 16 from 961.
pub fn scaled_in_flight(pools: usize) -> usize {
    pools
        .div_ceil(POOLS_PER_PERMIT)
        .clamp(DEFAULT_MAX_IN_FLIGHT, MAX_IN_FLIGHT_CAP)
}

/// Pools' first fills (and, in qgw's node, a hub's first exchanges) started per second on
/// average after a start: a scaled gate spreads the first fills of n pools over
/// `max(DEFAULT_START_SPREAD, (n - 1) / STARTS_PER_SECOND)` ([`start_window`]), so a hub of 100
/// peers asks its KME for about 50 keys a second, not 100 in its first second.
pub const STARTS_PER_SECOND: u32 = 50;

/// The window over which `n` starts at [`STARTS_PER_SECOND`] fall: zero for one.
pub fn start_window(n: usize) -> Duration {
    let gaps = u32::try_from(n.saturating_sub(1)).unwrap_or(u32::MAX);
    Duration::from_secs(1) * gaps / STARTS_PER_SECOND
}

/// Window over which the pools' first fills start. One second: a pool that nobody waits for is
/// full within about a second of start, and a waiting epoch does not wait for it at all.
pub const DEFAULT_START_SPREAD: Duration = Duration::from_secs(1);

/// A permit to have one request in flight; released when dropped.
#[derive(Debug)]
pub struct Permit {
    /// `None` only if the semaphore were closed, which this gate never does.
    _held: Option<OwnedSemaphorePermit>,
}

/// Shared by the prefetch pools of one client; cheap to clone (clones share the limit).
#[derive(Debug, Clone)]
pub struct FetchGate {
    /// Permits background fills may take (all but the reserved one).
    background: Arc<Semaphore>,
    /// The permit reserved for requests an epoch is waiting on.
    urgent: Arc<Semaphore>,
    start_spread: Duration,
    /// For a scaled gate: pools joined and the current limit; `None` for a fixed limit.
    scaled: Option<Arc<Mutex<Scaled>>>,
}

/// The state of a gate that widens with its pools ([`scaled_in_flight`]).
#[derive(Debug)]
struct Scaled {
    pools: usize,
    limit: usize,
}

impl Default for FetchGate {
    /// The daemon's gate: [`scaled_in_flight`] requests for the pools that joined (4 at first),
    /// first fills spread over [`DEFAULT_START_SPREAD`] or, for more than 51 pools, over
    /// [`start_window`] of them.
    fn default() -> Self {
        let mut gate = Self::new(DEFAULT_MAX_IN_FLIGHT, DEFAULT_START_SPREAD);
        gate.scaled = Some(Arc::new(Mutex::new(Scaled {
            pools: 0,
            limit: DEFAULT_MAX_IN_FLIGHT,
        })));
        gate
    }
}

impl FetchGate {
    /// At most `max_in_flight` (at least 1) requests at once, one of them (if there are two or
    /// more) reserved for waiting epochs; first fills start within `start_spread`.
    pub fn new(max_in_flight: usize, start_spread: Duration) -> Self {
        let max = max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        let reserved = usize::from(max >= 2);
        Self {
            background: Arc::new(Semaphore::new(max - reserved)),
            urgent: Arc::new(Semaphore::new(reserved)),
            start_spread,
            scaled: None,
        }
    }

    /// A pool joins the gate ([`crate::Prefetcher::spawn_gated`] calls this once per pool): a
    /// scaled gate widens to [`scaled_in_flight`] of its pools. It never narrows again (pools
    /// leave only when the daemon stops). A fixed gate ignores it.
    pub fn join(&self) {
        let Some(scaled) = &self.scaled else {
            return;
        };
        let mut s = scaled.lock().unwrap_or_else(PoisonError::into_inner);
        s.pools += 1;
        let limit = scaled_in_flight(s.pools);
        if limit > s.limit {
            self.background.add_permits(limit - s.limit);
            s.limit = limit;
        }
    }

    /// No limit and no start delay: every pool on its own, as a single pool needs.
    pub fn unlimited() -> Self {
        Self::new(Semaphore::MAX_PERMITS, Duration::ZERO)
    }

    /// The delay before a pool's first fill for a uniform random `draw`: `draw` modulo the
    /// window, to the millisecond.
    /// A scaled gate's window grows with its pools ([`STARTS_PER_SECOND`]).
    pub fn start_delay(&self, draw: u64) -> Duration {
        let spread = self.scaled.as_ref().map_or(self.start_spread, |scaled| {
            let pools = scaled.lock().unwrap_or_else(PoisonError::into_inner).pools;
            self.start_spread.max(start_window(pools))
        });
        let window = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX);
        if window == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(draw % window)
    }

    /// A permit for a fill nobody waits for; queues (first come, first served) behind other
    /// background fills.
    pub async fn background(&self) -> Permit {
        let held = Arc::clone(&self.background).acquire_owned().await.ok();
        Permit { _held: held }
    }

    /// A permit for a fill an epoch waits for: the first free one of either kind.
    pub async fn urgent(&self) -> Permit {
        let held = tokio::select! {
            held = Arc::clone(&self.urgent).acquire_owned() => held,
            held = Arc::clone(&self.background).acquire_owned() => held,
        };
        Permit { _held: held.ok() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_delays_stay_in_the_window() {
        let gate = FetchGate::new(4, Duration::from_secs(1));
        assert_eq!(gate.start_delay(0), Duration::ZERO);
        assert_eq!(gate.start_delay(999), Duration::from_millis(999));
        assert_eq!(gate.start_delay(1000), Duration::ZERO);
        assert_eq!(
            gate.start_delay(u64::MAX),
            Duration::from_millis(u64::MAX % 1000)
        );
        assert_eq!(FetchGate::unlimited().start_delay(u64::MAX), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn background_fills_leave_the_reserved_permit_to_a_waiting_epoch() {
        let gate = FetchGate::new(3, Duration::ZERO);
        let _a = gate.background().await;
        let _b = gate.background().await;
        let third = tokio::time::timeout(Duration::from_secs(1), gate.background()).await;
        assert!(third.is_err(), "two background permits of three");
        let urgent = tokio::time::timeout(Duration::from_secs(1), gate.urgent()).await;
        assert!(urgent.is_ok(), "the reserved permit");
        let more = tokio::time::timeout(Duration::from_secs(1), gate.urgent()).await;
        assert!(more.is_err(), "never more than three in flight");
    }

    #[test]
    fn a_scaled_gate_spreads_first_fills_at_the_hub_start_rate() {
        let gate = FetchGate::default();
        for _ in 0..10 {
            gate.join();
        }
        let latest = |g: &FetchGate| (0..5000).map(|d| g.start_delay(d)).max();
        assert_eq!(
            latest(&gate),
            Some(Duration::from_millis(999)),
            "1 s for 10"
        );
        for _ in 10..101 {
            gate.join();
        }
        // (101 - 1) / 50 per second = 2 s, as the node spreads the first exchanges.
        assert_eq!(latest(&gate), Some(Duration::from_millis(1999)));
        let fixed = FetchGate::new(4, Duration::from_secs(1));
        for _ in 0..101 {
            fixed.join();
        }
        assert_eq!(latest(&fixed), Some(Duration::from_millis(999)));
    }

    #[test]
    fn the_scaled_limit_grows_with_the_pools_and_stops_at_the_cap() {
        let table = [
            (0, 4),
            (1, 4),
            (100, 4),
            (256, 4),
            (257, 5),
            (300, 5),
            (1000, 16),
        ];
        for (pools, limit) in table {
            assert_eq!(scaled_in_flight(pools), limit, "{pools} pools");
        }
        assert_eq!(scaled_in_flight(usize::MAX), MAX_IN_FLIGHT_CAP);
    }

    #[tokio::test(start_paused = true)]
    async fn a_scaled_gate_widens_as_pools_join_and_a_fixed_one_does_not() {
        let in_flight = |gate: FetchGate| async move {
            let mut held = Vec::new();
            while let Ok(p) = tokio::time::timeout(Duration::from_secs(1), gate.urgent()).await {
                held.push(p);
            }
            held.len()
        };
        let (scaled, fixed) = (FetchGate::default(), FetchGate::new(4, Duration::ZERO));
        for _ in 0..300 {
            scaled.join();
            fixed.join();
        }
        assert_eq!(in_flight(scaled).await, 5);
        assert_eq!(in_flight(fixed).await, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_gate_of_one_still_serves_both_kinds() {
        let gate = FetchGate::new(0, Duration::ZERO);
        drop(gate.background().await);
        let held = gate.urgent().await;
        let second = tokio::time::timeout(Duration::from_secs(1), gate.background()).await;
        assert!(second.is_err());
        drop(held);
        drop(gate.background().await);
    }
}

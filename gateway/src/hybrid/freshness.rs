//! Replay defence of the timestamped hybrid messages, the Init (docs/protocol.md §6.2 step 1) and
//! the EpochRequest (§5.3): a timestamp must be greater than the greatest one accepted from the
//! peer, as WireGuard's handshake initiation (whitepaper §5.1) — and, so that the defence
//! survives a restart of the receiver, which forgets that greatest timestamp, no older than a
//! bound and no further in the future than the clock skew tolerated (§7).
//!
//! The checks are ordered cheapest and most specific first; neither costs more than a
//! comparison, so they run before any rate limit is spent and before any public-key work.

use std::time::{Duration, Instant};

use super::HybridDrop;
use crate::proto::tai64n::WallClock;

/// The greatest timestamp accepted from the peer and the window around this side's wall clock.
#[derive(Debug)]
pub(super) struct Freshness {
    greatest: Option<[u8; 12]>,
    /// Oldest acceptable age.
    max_age: Duration,
    /// Furthest acceptable distance into the future.
    max_ahead: Duration,
}

impl Freshness {
    /// Accepts timestamps at most `max_age` old and `max_ahead` in the future.
    pub(super) fn new(max_age: Duration, max_ahead: Duration) -> Self {
        Self {
            greatest: None,
            max_age,
            max_ahead,
        }
    }

    /// Whether `timestamp` would be accepted at `now`: [`HybridDrop::Replay`] if it is not newer
    /// than the greatest accepted, [`HybridDrop::Stale`] if it is outside the window.
    pub(super) fn check(
        &self,
        clock: &WallClock,
        now: Instant,
        timestamp: &[u8; 12],
    ) -> Result<(), HybridDrop> {
        if self.greatest.is_some_and(|g| *timestamp <= g) {
            return Err(HybridDrop::Replay);
        }
        let age = clock.age_of(now, timestamp);
        let too_old = age > i128::from(self.max_age.as_secs());
        let too_new = -age > i128::from(self.max_ahead.as_secs());
        if too_old || too_new {
            return Err(HybridDrop::Stale);
        }
        Ok(())
    }

    /// Records `timestamp` as accepted (call once the message proved genuine).
    pub(super) fn accept(&mut self, timestamp: [u8; 12]) {
        self.greatest = Some(self.greatest.map_or(timestamp, |g| g.max(timestamp)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIX: Duration = Duration::from_secs(1_800_000_000);

    #[test]
    fn newer_and_within_the_window_or_refused_by_reason() {
        let t0 = Instant::now();
        let clock = WallClock::new(t0, UNIX);
        let mut f = Freshness::new(Duration::from_secs(120), Duration::from_secs(60));
        let at = |secs: u64| clock.timestamp(t0 + Duration::from_secs(secs));
        let now = t0 + Duration::from_secs(200);
        assert_eq!(f.check(&clock, now, &at(200)), Ok(()));
        assert_eq!(f.check(&clock, now, &at(80)), Ok(()), "120 s old");
        assert_eq!(f.check(&clock, now, &at(79)), Err(HybridDrop::Stale));
        assert_eq!(f.check(&clock, now, &at(260)), Ok(()), "60 s ahead");
        assert_eq!(f.check(&clock, now, &at(261)), Err(HybridDrop::Stale));
        f.accept(at(150));
        assert_eq!(f.check(&clock, now, &at(150)), Err(HybridDrop::Replay));
        assert_eq!(f.check(&clock, now, &at(100)), Err(HybridDrop::Replay));
        assert_eq!(f.check(&clock, now, &at(151)), Ok(()));
        f.accept(at(120));
        assert_eq!(
            f.check(&clock, now, &at(140)),
            Err(HybridDrop::Replay),
            "never lowered"
        );
    }

    #[test]
    fn a_restart_forgets_the_greatest_but_not_the_window() {
        let t0 = Instant::now();
        let clock = WallClock::new(t0, UNIX);
        let recorded = clock.timestamp(t0);
        let restarted = Freshness::new(Duration::from_secs(120), Duration::from_secs(60));
        let later = t0 + Duration::from_secs(121);
        assert_eq!(
            restarted.check(&clock, later, &recorded),
            Err(HybridDrop::Stale)
        );
    }
}

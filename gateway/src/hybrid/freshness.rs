//! Replay defence of the timestamped hybrid messages, the Init (docs/protocol.md §6.2 step 1) and
//! the EpochRequest (§5.3): a timestamp must be greater than the greatest one accepted from the
//! peer, as WireGuard's handshake initiation (whitepaper §5.1) — and, so that the defence
//! survives a restart of the receiver, which forgets that greatest timestamp, it must not be
//! older than the receiver's own start by more than the clock skew tolerated (§7). That floor is
//! the start instant read through the current wall clock, and it only ever goes down: if NTP
//! later corrects a clock that was ahead at start, the floor follows; a clock that jumps ahead
//! raises nothing. There is no upper bound: only the peer can make a message that passes its
//! MAC (and, for the Init, its signature), and a clock jump at either side must not wedge the
//! exchange (senders keep their own timestamps increasing across a backward jump).
//!
//! The checks cost a comparison, so they run before any rate limit is spent and before any
//! public-key work.

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::HybridDrop;
use crate::proto::tai64n::{WallClock, unix_seconds};

/// The greatest timestamp accepted from the peer and the floor below which none is accepted.
#[derive(Debug)]
pub(super) struct Freshness {
    greatest: Option<[u8; 12]>,
    /// When this side started (the peer was created).
    started: Instant,
    /// How far below this side's start a timestamp may be.
    tolerance: Duration,
    /// The lowest floor seen so far, in Unix seconds (lowered while checking, which reads).
    floor: Cell<Option<i128>>,
}

impl Freshness {
    /// For a receiver that started at `started`, accepting timestamps down to `tolerance` before.
    pub(super) fn new(started: Instant, tolerance: Duration) -> Self {
        Self {
            greatest: None,
            started,
            tolerance,
            floor: Cell::new(None),
        }
    }

    /// Whether `timestamp` is acceptable now: [`HybridDrop::Replay`] if it is not newer than the
    /// greatest accepted, [`HybridDrop::Stale`] if it is older than the floor.
    pub(super) fn check(&self, clock: &WallClock, timestamp: &[u8; 12]) -> Result<(), HybridDrop> {
        if self.greatest.is_some_and(|g| *timestamp <= g) {
            return Err(HybridDrop::Replay);
        }
        let start = i128::from(clock.unix(self.started).as_secs());
        let floor = start - i128::from(self.tolerance.as_secs());
        let floor = self.floor.get().map_or(floor, |f| f.min(floor));
        self.floor.set(Some(floor));
        if unix_seconds(timestamp) < floor {
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
    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn newer_than_the_greatest_and_not_from_before_the_start() {
        let t0 = Instant::now();
        let clock = WallClock::new(t0, UNIX);
        let at = |secs: u64| clock.timestamp(t0 + Duration::from_secs(secs));
        // This side started at 100 s.
        let mut f = Freshness::new(t0 + Duration::from_secs(100), MINUTE);
        assert_eq!(f.check(&clock, &at(39)), Err(HybridDrop::Stale));
        assert_eq!(
            f.check(&clock, &at(40)),
            Ok(()),
            "a minute before the start"
        );
        assert_eq!(f.check(&clock, &at(10_000)), Ok(()), "no upper bound");
        f.accept(at(150));
        assert_eq!(f.check(&clock, &at(150)), Err(HybridDrop::Replay));
        assert_eq!(f.check(&clock, &at(100)), Err(HybridDrop::Replay));
        assert_eq!(f.check(&clock, &at(151)), Ok(()));
        f.accept(at(120));
        assert_eq!(
            f.check(&clock, &at(140)),
            Err(HybridDrop::Replay),
            "never lowered"
        );
    }

    #[test]
    fn the_floor_follows_a_clock_set_back_but_not_one_set_ahead() {
        let t0 = Instant::now();
        let mut clock = WallClock::new(t0, UNIX + 3 * MINUTE);
        let f = Freshness::new(t0, MINUTE);
        let peer = WallClock::new(t0, UNIX);
        // This side's clock is three minutes ahead: the peer's timestamps look old.
        assert_eq!(f.check(&clock, &peer.timestamp(t0)), Err(HybridDrop::Stale));
        // NTP sets it right: the floor follows.
        clock.set(t0, UNIX);
        assert_eq!(f.check(&clock, &peer.timestamp(t0)), Ok(()));
        // A jump ahead later does not raise it again.
        clock.set(t0, UNIX + 3 * MINUTE);
        assert_eq!(f.check(&clock, &peer.timestamp(t0)), Ok(()));
    }
}

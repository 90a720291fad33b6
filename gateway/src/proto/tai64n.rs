//! The handshake timestamp (whitepaper §5.4.2: `TAI64N()`, the responder rejects an initiation
//! whose timestamp is not greater than the last one from that peer, which stops replays).
//!
//! The clock is injected: a [`WallClock`] pairs one monotonic `Instant` with the Unix time read once
//! by the daemon, and timestamps are derived from `now`, so they never go backwards while the
//! process runs and tests are deterministic. Nanoseconds are rounded down to 2^24 ns (~16.8 ms), as
//! wireguard-go does, so the timestamp does not leak a fine-grained clock.

use std::time::{Duration, Instant};

use tai64::{Tai64, Tai64N};

use super::constants::TIMESTAMP_LEN;

/// Nanosecond bits cleared from timestamps (wireguard-go `whitenerMask`).
const WHITENER_MASK: u32 = (1 << 24) - 1;

/// Maps the caller's monotonic `now` to wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    base: Instant,
    unix_at_base: Duration,
}

impl WallClock {
    /// `unix_at_base` is the time since the Unix epoch at the instant `base`.
    pub fn new(base: Instant, unix_at_base: Duration) -> Self {
        Self { base, unix_at_base }
    }

    /// Unix time at `now`.
    pub fn unix(&self, now: Instant) -> Duration {
        self.unix_at_base + now.saturating_duration_since(self.base)
    }

    /// The 12-byte TAI64N label of `now`, big-endian so byte order is time order.
    pub fn timestamp(&self, now: Instant) -> [u8; TIMESTAMP_LEN] {
        let unix = self.unix(now);
        let secs = i64::try_from(unix.as_secs()).unwrap_or(i64::MAX);
        Tai64N(Tai64::from_unix(secs), unix.subsec_nanos() & !WHITENER_MASK).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_increase_with_time_and_are_whitened() {
        let t0 = Instant::now();
        let c = WallClock::new(t0, Duration::from_secs(1_700_000_000));
        let a = c.timestamp(t0);
        assert_eq!(
            a,
            c.timestamp(t0 + Duration::from_millis(10)),
            "below whitening resolution"
        );
        let b = c.timestamp(t0 + Duration::from_millis(20));
        assert!(b > a);
        assert!(c.timestamp(t0 + Duration::from_secs(1)) > b);
        // Seconds are the TAI64 label of the Unix time (big-endian, 2^62 + offset).
        assert_eq!(a[..8], Tai64::from_unix(1_700_000_000).to_bytes());
        assert_eq!(
            u32::from_be_bytes([a[8], a[9], a[10], a[11]]) & WHITENER_MASK,
            0
        );
    }
}

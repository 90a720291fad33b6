//! The handshake timestamp (whitepaper §5.4.2: `TAI64N()`, the responder rejects an initiation
//! whose timestamp is not greater than the last one from that peer, which stops replays).
//!
//! The clock is injected: a [`WallClock`] pairs a monotonic `Instant` with the Unix time the
//! daemon read at that instant, and timestamps are derived from `now`, so tests are deterministic.
//! The daemon re-reads the wall clock every loop turn ([`WallClock::set`]), so a clock that NTP
//! corrects, or that jumps, is followed as WireGuard follows it (it reads the clock per
//! timestamp); whoever sends timestamps keeps them increasing across a backward jump.
//! Nanoseconds are rounded down to 2^24 ns (~16.8 ms), as wireguard-go does, so the timestamp
//! does not leak a fine-grained clock.

use std::time::{Duration, Instant};

use tai64::{Tai64, Tai64N};

use super::constants::TIMESTAMP_LEN;

/// The whole Unix seconds of a TAI64N label; any 12 bytes are accepted (the label's second
/// count, whatever it is: the crate's own conversion can overflow on hostile input).
pub fn unix_seconds(timestamp: &[u8; TIMESTAMP_LEN]) -> i128 {
    let mut label = [0u8; 8];
    label.copy_from_slice(&timestamp[..8]);
    // TAI64: 2^62 + 10 + Unix seconds.
    i128::from(u64::from_be_bytes(label)) - (1i128 << 62) - 10
}

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

    /// From `now` on, the wall clock reads `unix` at `now` (it was corrected, or it jumped).
    pub fn set(&mut self, now: Instant, unix: Duration) {
        self.base = now;
        self.unix_at_base = unix;
    }

    /// The timestamp of `now`, or — if the wall clock went back since — the smallest one above
    /// `last` (the previous one sent to the same receiver), which then stays the greater.
    /// Receivers refuse any timestamp not above the greatest they accepted, so a clock set back
    /// must not make the sender's timestamps go back with it.
    pub fn timestamp_after(
        &self,
        now: Instant,
        last: Option<[u8; TIMESTAMP_LEN]>,
    ) -> [u8; TIMESTAMP_LEN] {
        let ts = self.timestamp(now);
        match last {
            Some(mut last) if ts <= last => {
                // Big-endian: increment the last byte with carry (the nanosecond field's
                // whitened low bits leave room; a carry into the seconds is still a valid label).
                for byte in last.iter_mut().rev() {
                    let (next, overflow) = byte.overflowing_add(1);
                    *byte = next;
                    if !overflow {
                        break;
                    }
                }
                last
            }
            _ => ts,
        }
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

    #[test]
    fn timestamps_after_a_clock_set_back_stay_above_the_last_one() {
        let t0 = Instant::now();
        let mut c = WallClock::new(t0, Duration::from_secs(1_000));
        let first = c.timestamp_after(t0, None);
        assert_eq!(first, c.timestamp(t0));
        c.set(t0, Duration::from_secs(400));
        let second = c.timestamp_after(t0, Some(first));
        assert!(second > first);
        let third = c.timestamp_after(t0 + Duration::from_secs(1), Some(second));
        assert!(third > second, "still above while the clock is behind");
        c.set(t0, Duration::from_secs(2_000));
        assert_eq!(
            c.timestamp_after(t0, Some(third)),
            c.timestamp(t0),
            "then the clock again"
        );
    }

    #[test]
    fn a_reset_clock_is_followed_and_any_label_has_a_second_count() {
        let t0 = Instant::now();
        let mut c = WallClock::new(t0, Duration::from_secs(1_000));
        assert_eq!(unix_seconds(&c.timestamp(t0)), 1_000);
        let t1 = t0 + Duration::from_secs(10);
        // NTP moves the clock forward by an hour.
        c.set(t1, Duration::from_secs(1_010 + 3_600));
        let later = c.unix(t1 + Duration::from_secs(1));
        assert_eq!(later, Duration::from_secs(4_611));
        assert_eq!(unix_seconds(&c.timestamp(t1)), 4_610);
        assert!(unix_seconds(&[0xff; 12]) > 1i128 << 62, "any bytes");
        assert!(unix_seconds(&[0; 12]) < -(1i128 << 61));
    }
}

//! A token bucket on wire bytes (RFC 2697 §1's single bucket, without colours): it fills at a
//! rate in bits per second up to a depth (the burst) and a packet may leave while the bucket
//! holds at least the largest packet's cost. Because the test is "at least the largest cost",
//! never "any credit at all", the bucket never goes into debt, so the bytes that leave in any
//! window of length `w` are at most `burst + rate * w`: nothing leaves faster than the rate over
//! a window longer than the burst.
//!
//! Credit is kept exactly in integers, in bit-nanoseconds (bits × 10⁹), so a long run at any
//! rate accumulates no rounding drift; time comes in as `now` (sans-IO).

use std::time::{Duration, Instant};

/// Nanoseconds per second: one bit of credit is this many bit-nanoseconds.
const NANOS: u128 = 1_000_000_000;

/// A token bucket (see the module docs).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_bps: u64,
    /// Depth, in bit-nanoseconds.
    depth: u128,
    /// Credit now (as of `last`), in bit-nanoseconds; at most `depth`.
    credit: u128,
    /// The cost that must be covered before anything may leave, in bit-nanoseconds.
    gate: u128,
    last: Instant,
}

/// Bytes as bit-nanoseconds of credit.
fn credit_of(bytes: usize) -> u128 {
    bytes as u128 * 8 * NANOS
}

impl TokenBucket {
    /// A full bucket filling at `rate_bps` (at least 1) up to `burst_bytes`, that lets a packet
    /// leave while it holds `gate_bytes` (the largest packet's cost; at most the burst).
    pub fn new(rate_bps: u64, burst_bytes: usize, gate_bytes: usize, now: Instant) -> Self {
        let depth = credit_of(burst_bytes.max(gate_bytes));
        Self {
            rate_bps: rate_bps.max(1),
            depth,
            credit: depth,
            gate: credit_of(gate_bytes),
            last: now,
        }
    }

    /// Changes the rate and the burst (a configuration reload), keeping at most the new burst
    /// of the credit gathered so far.
    pub fn set_rate(&mut self, rate_bps: u64, burst_bytes: usize) {
        self.rate_bps = rate_bps.max(1);
        self.depth = credit_of(burst_bytes).max(self.gate);
        self.credit = self.credit.min(self.depth);
    }

    /// The rate, in bits per second.
    pub fn rate_bps(&self) -> u64 {
        self.rate_bps
    }

    /// Adds the credit earned since the last call (time going backwards earns nothing).
    pub fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        if elapsed.is_zero() {
            return;
        }
        self.last = now;
        let earned = elapsed.as_nanos().saturating_mul(u128::from(self.rate_bps));
        self.credit = self.credit.saturating_add(earned).min(self.depth);
    }

    /// Whether a packet may leave now (call [`TokenBucket::refill`] first).
    pub fn ready(&self) -> bool {
        self.credit >= self.gate
    }

    /// Takes the cost of a packet of `bytes` wire bytes that left (as much as there is).
    pub fn consume(&mut self, bytes: usize) {
        self.credit = self.credit.saturating_sub(credit_of(bytes));
    }

    /// When [`TokenBucket::ready`] next holds (`last` or earlier: it holds now).
    pub fn ready_at(&self) -> Instant {
        let missing = self.gate.saturating_sub(self.credit);
        let nanos = missing.div_ceil(u128::from(self.rate_bps));
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        self.last
            .checked_add(Duration::from_nanos(nanos))
            .unwrap_or(self.last + Duration::from_secs(86_400 * 365))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_lets_the_burst_go_then_the_rate() {
        let t0 = Instant::now();
        // 8 Mbit/s = 1 byte/µs; burst 3000 bytes; gate 1000 bytes.
        let mut b = TokenBucket::new(8_000_000, 3000, 1000, t0);
        let mut sent = 0;
        while b.ready() {
            b.consume(1000);
            sent += 1;
        }
        assert_eq!(sent, 3, "the burst");
        assert_eq!(b.ready_at(), t0 + Duration::from_micros(1000));
        b.refill(t0 + Duration::from_micros(999));
        assert!(!b.ready());
        b.refill(t0 + Duration::from_micros(1000));
        assert!(b.ready());
    }

    #[test]
    fn never_fills_beyond_the_burst_nor_goes_into_debt() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(8_000_000, 2000, 1000, t0);
        b.refill(t0 + Duration::from_secs(10));
        b.consume(1000);
        b.consume(1000);
        assert!(!b.ready());
        b.consume(5000);
        assert_eq!(
            b.ready_at(),
            t0 + Duration::from_secs(10) + Duration::from_millis(1)
        );
    }

    #[test]
    fn a_rate_change_keeps_the_credit_within_the_new_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(8_000_000, 10_000, 1000, t0);
        b.set_rate(800_000, 1000);
        assert_eq!(b.rate_bps(), 800_000);
        b.consume(1000);
        assert_eq!(b.ready_at(), t0 + Duration::from_millis(10));
        b.set_rate(0, 0);
        assert_eq!(
            b.rate_bps(),
            1,
            "a zero rate is clamped, never a division by zero"
        );
    }

    #[test]
    fn time_going_backwards_earns_nothing() {
        let t0 = Instant::now() + Duration::from_secs(5);
        let mut b = TokenBucket::new(8_000_000, 1000, 1000, t0);
        b.consume(1000);
        b.refill(t0 - Duration::from_secs(1));
        assert!(!b.ready());
    }
}

//! A simulated QKD link: two KMEs accumulate identical secret key at the link's secret key rate
//! into a bounded store (reference §9). Sans-IO: key production is computed lazily from the time
//! elapsed since the last call, with the clock passed in, so rate behaviour is testable exactly.
//!
//! The store counts bits, not key material: bytes are drawn from the entropy source only when a
//! key is issued (ETSI GS QKD 014 §5.3). Keys issued to a master but not yet fetched by their
//! slave(s) stay "pending" and count against the capacity, as they occupy the slave KME's buffer.
//! A link whose QBER exceeds its threshold, or that is set down, produces nothing; keys already
//! stored remain deliverable.

use std::time::Instant;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// One link's key store and state.
#[derive(Debug, Clone)]
pub struct Link {
    rate_bps: u64,
    capacity_bits: u64,
    available_bits: u64,
    pending_bits: u64,
    last: Instant,
    /// Sub-bit remainder of production, in bit-nanoseconds, so no rate is lost to rounding.
    carry: u128,
    down: bool,
    qber: f64,
    qber_threshold: f64,
    produced_bits: u64,
    consumed_bits: u64,
}

impl Link {
    /// A link producing `rate_bps`, holding at most `capacity_bits`, starting with `initial_bits`.
    pub fn new(now: Instant, rate_bps: u64, capacity_bits: u64, initial_bits: u64) -> Self {
        Self {
            rate_bps,
            capacity_bits,
            available_bits: initial_bits.min(capacity_bits),
            pending_bits: 0,
            last: now,
            carry: 0,
            down: false,
            qber: 0.0,
            qber_threshold: 1.0,
            produced_bits: 0,
            consumed_bits: 0,
        }
    }

    /// Sets the QBER model: no key is distilled while `qber > threshold`.
    pub fn with_qber(mut self, qber: f64, threshold: f64) -> Self {
        self.qber = qber;
        self.qber_threshold = threshold;
        self
    }

    /// Whether the link is producing key now.
    pub fn generating(&self) -> bool {
        !self.down && self.qber <= self.qber_threshold && self.rate_bps > 0
    }

    /// Accounts for key produced between the last call and `now`. Earlier `now` values are
    /// ignored (the clock never runs backwards for the link).
    pub fn advance(&mut self, now: Instant) {
        let Some(dt) = now.checked_duration_since(self.last) else {
            return;
        };
        self.last = now;
        if !self.generating() {
            self.carry = 0;
            return;
        }
        let total = u128::from(self.rate_bps) * dt.as_nanos() + self.carry;
        let bits = total / NANOS_PER_SEC;
        self.carry = total % NANOS_PER_SEC;
        let room = self
            .capacity_bits
            .saturating_sub(self.available_bits + self.pending_bits);
        let added = u64::try_from(bits).unwrap_or(u64::MAX).min(room);
        if u128::from(added) < bits {
            self.carry = 0; // the store is full: the rest of the production is discarded
        }
        self.available_bits += added;
        self.produced_bits = self.produced_bits.saturating_add(added);
    }

    /// Moves `bits` from the store to pending (issued to a master). False if not enough.
    pub fn take(&mut self, bits: u64) -> bool {
        if bits > self.available_bits {
            return false;
        }
        self.available_bits -= bits;
        self.pending_bits += bits;
        self.consumed_bits += bits;
        true
    }

    /// Spends `bits` of the store as a one-time pad for a relayed key: they leave the store at
    /// once (the pad is destroyed after one use) and occupy nothing afterwards. False if not
    /// enough.
    pub fn spend(&mut self, bits: u64) -> bool {
        if bits > self.available_bits {
            return false;
        }
        self.available_bits -= bits;
        self.consumed_bits += bits;
        true
    }

    /// Frees `bits` of pending key (all slaves fetched it).
    pub fn release(&mut self, bits: u64) {
        self.pending_bits = self.pending_bits.saturating_sub(bits);
    }

    /// Bits available for new keys.
    pub fn available_bits(&self) -> u64 {
        self.available_bits
    }

    /// Bits issued but not yet fetched by every slave.
    pub fn pending_bits(&self) -> u64 {
        self.pending_bits
    }

    /// Store capacity in bits.
    pub fn capacity_bits(&self) -> u64 {
        self.capacity_bits
    }

    /// Total bits produced since start.
    pub fn produced_bits(&self) -> u64 {
        self.produced_bits
    }

    /// Total bits taken out of the store since start (issued directly or spent on relays).
    /// `initial + produced == available + consumed` always holds.
    pub fn consumed_bits(&self) -> u64 {
        self.consumed_bits
    }

    /// Fault: link down (fibre cut, QBER alarm). Call [`Link::advance`] first.
    pub fn set_down(&mut self, down: bool) {
        self.down = down;
    }

    /// Whether the link is set down.
    pub fn is_down(&self) -> bool {
        self.down
    }

    /// Sets the current QBER. Call [`Link::advance`] first.
    pub fn set_qber(&mut self, qber: f64) {
        self.qber = qber;
    }

    /// Current QBER and threshold.
    pub fn qber(&self) -> (f64, f64) {
        (self.qber, self.qber_threshold)
    }

    /// Configured secret key rate.
    pub fn rate_bps(&self) -> u64 {
        self.rate_bps
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn key_accumulates_at_the_configured_rate() {
        let t0 = Instant::now();
        let mut link = Link::new(t0, 1000, 1_000_000, 0);
        link.advance(t0 + Duration::from_secs(1));
        assert_eq!(link.available_bits(), 1000);
        link.advance(t0 + Duration::from_millis(2500));
        assert_eq!(link.available_bits(), 2500);
    }

    #[test]
    fn fractional_bits_are_carried_not_lost() {
        let t0 = Instant::now();
        let mut link = Link::new(t0, 3, 1_000, 0);
        for ms in (100..=10_000).step_by(100) {
            link.advance(t0 + Duration::from_millis(ms));
        }
        assert_eq!(link.available_bits(), 30, "3 bit/s for 10 s in 100 steps");
    }

    #[test]
    fn store_is_bounded_and_pending_counts_against_it() {
        let t0 = Instant::now();
        let mut link = Link::new(t0, 1_000_000, 1024, 0);
        link.advance(t0 + Duration::from_secs(10));
        assert_eq!(link.available_bits(), 1024);
        assert!(link.take(512));
        link.advance(t0 + Duration::from_secs(20));
        assert_eq!(link.available_bits(), 512, "pending keys occupy the buffer");
        link.release(512);
        link.advance(t0 + Duration::from_secs(21));
        assert_eq!(link.available_bits(), 1024);
        assert!(!link.take(1025));
    }

    #[test]
    fn spent_pads_leave_the_store_and_every_bit_is_accounted() {
        let t0 = Instant::now();
        let mut link = Link::new(t0, 100, 1024, 512);
        assert!(link.take(256));
        assert!(link.spend(128));
        assert!(!link.spend(129), "never below zero");
        assert_eq!(link.pending_bits(), 256, "a spent pad occupies nothing");
        link.advance(t0 + Duration::from_secs(3));
        assert_eq!(link.consumed_bits(), 384);
        assert_eq!(
            512 + link.produced_bits(),
            link.available_bits() + link.consumed_bits()
        );
    }

    #[test]
    fn down_or_high_qber_links_produce_nothing_but_keep_their_store() {
        let t0 = Instant::now();
        let mut link = Link::new(t0, 1000, 100_000, 256).with_qber(0.02, 0.08);
        link.set_down(true);
        link.advance(t0 + Duration::from_secs(5));
        assert_eq!(link.available_bits(), 256);
        link.set_down(false);
        link.advance(t0 + Duration::from_secs(6));
        assert_eq!(
            link.available_bits(),
            1256,
            "no credit for the time spent down"
        );
        link.set_qber(0.11);
        assert!(!link.generating());
        link.advance(t0 + Duration::from_secs(10));
        assert_eq!(link.available_bits(), 1256);
        assert!(link.take(256));
    }

    #[test]
    fn clock_going_backwards_is_ignored() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut link = Link::new(t0, 1000, 100_000, 0);
        link.advance(t0 - Duration::from_secs(5));
        link.advance(t0 + Duration::from_secs(1));
        assert_eq!(link.available_bits(), 1000);
    }

    #[test]
    fn initial_fill_is_capped() {
        let link = Link::new(Instant::now(), 0, 100, 500);
        assert_eq!(link.available_bits(), 100);
        assert!(!link.generating());
    }
}

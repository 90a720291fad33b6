//! Handshake load detection and per-source rate limiting (whitepaper §5.3 "Denial of Service
//! Mitigation & Cookies"; the kernel's `ratelimiter.c` and wireguard-go `ratelimiter` for the
//! numbers: 20 handshake messages per second per source address, burst 5), and the crate's one
//! [`TokenBucket`] (also the hybrid Init admission of docs/protocol.md §7).
//!
//! "Under load" is measured, not queued: more than `threshold` handshake messages in one second puts
//! the interface under load for `UNDER_LOAD_AFTER` after the last such second. Under load, mac2
//! (a valid cookie) is required and each source address is rate limited. Memory is bounded: the
//! per-address table is cleared when it reaches `MAX_TRACKED` entries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long the interface stays under load after the rate last exceeded the threshold
/// (wireguard-go `UnderLoadAfterTime`).
pub const UNDER_LOAD_AFTER: Duration = Duration::from_secs(1);
/// Default handshake messages per second above which cookies are required (the kernel's queue
/// threshold is 4096 / 8 = 512 pending handshakes).
pub const DEFAULT_LOAD_THRESHOLD: u32 = 512;
/// Sustained handshake messages per second accepted from one source address under load.
pub const PACKETS_PER_SECOND: u32 = 20;
/// Burst allowed above the sustained rate.
pub const PACKETS_BURSTABLE: u32 = 5;
/// Source addresses tracked at most.
pub const MAX_TRACKED: usize = 8192;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// A token bucket on the injected clock: `rate` tokens per second, at most `burst`, full at the
/// start. Integer nanoseconds, as the kernel's ratelimiter, so no rate is lost to rounding.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    /// Nanoseconds of credit one token costs.
    cost: u64,
    /// Most credit held (`burst` tokens).
    max: u64,
    credit: u64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// `rate` tokens per second (at least 1), `burst` at most (at least 1).
    pub fn new(rate: u32, burst: u32) -> Self {
        let cost = NANOS_PER_SECOND / u64::from(rate.max(1));
        let max = cost * u64::from(burst.max(1));
        Self {
            cost,
            max,
            credit: max,
            last: None,
        }
    }

    /// Takes one token at `now`; `false` if none is left.
    pub fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_nanos();
            let elapsed = u64::try_from(elapsed).unwrap_or(u64::MAX);
            self.credit = self.credit.saturating_add(elapsed).min(self.max);
        }
        self.last = Some(now);
        if self.credit >= self.cost {
            self.credit -= self.cost;
            true
        } else {
            false
        }
    }
}

/// Decides whether the interface is under handshake load.
#[derive(Debug, Clone)]
pub struct LoadMonitor {
    threshold: u32,
    window_start: Option<Instant>,
    count: u32,
    loaded_until: Option<Instant>,
}

impl LoadMonitor {
    /// Under load above `threshold` handshake messages per second.
    pub fn new(threshold: u32) -> Self {
        Self {
            threshold,
            window_start: None,
            count: 0,
            loaded_until: None,
        }
    }

    /// Records one handshake message at `now`; returns whether the interface is under load.
    pub fn record(&mut self, now: Instant) -> bool {
        let fresh = self
            .window_start
            .is_none_or(|s| now.saturating_duration_since(s) >= Duration::from_secs(1));
        if fresh {
            self.window_start = Some(now);
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        if self.count > self.threshold {
            self.loaded_until = Some(now + UNDER_LOAD_AFTER);
        }
        self.under_load(now)
    }

    /// Whether the interface is under load at `now`.
    pub fn under_load(&self, now: Instant) -> bool {
        self.loaded_until.is_some_and(|t| now < t)
    }
}

/// Token buckets per source address (IPv6 grouped by /64, as the kernel does).
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: HashMap<IpAddr, TokenBucket>,
}

fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) & !((1u128 << 64) - 1)).into()),
    }
}

impl RateLimiter {
    /// Whether one more handshake message from `ip` is allowed at `now`.
    pub fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.buckets.len() >= MAX_TRACKED {
            self.buckets.clear();
        }
        self.buckets
            .entry(bucket_key(ip))
            .or_insert_with(|| TokenBucket::new(PACKETS_PER_SECOND, PACKETS_BURSTABLE))
            .take(now)
    }

    /// Addresses tracked (bounded by [`MAX_TRACKED`]).
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn load_starts_above_threshold_and_ends_after_a_second() {
        let t0 = Instant::now();
        let mut m = LoadMonitor::new(3);
        assert!(!m.record(t0));
        assert!(!m.record(t0));
        assert!(!m.record(t0));
        assert!(m.record(t0), "fourth message in one second");
        assert!(m.under_load(t0 + Duration::from_millis(999)));
        assert!(!m.under_load(t0 + UNDER_LOAD_AFTER));
        assert!(
            !m.record(t0 + Duration::from_secs(2)),
            "a new second starts from zero"
        );
    }

    #[test]
    fn burst_then_sustained_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let allowed = (0..20).filter(|_| r.allow(t0, ip)).count();
        assert_eq!(allowed, PACKETS_BURSTABLE as usize);
        assert!(!r.allow(t0, ip));
        assert!(
            r.allow(t0 + Duration::from_millis(50), ip),
            "one token per 50 ms"
        );
        assert!(!r.allow(t0 + Duration::from_millis(51), ip));
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(r.allow(t0, other), "other sources are unaffected");
    }

    #[test]
    fn a_bucket_refills_at_its_rate_up_to_its_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2, 4);
        assert_eq!((0..10).filter(|_| b.take(t0)).count(), 4, "burst");
        assert!(!b.take(t0 + Duration::from_millis(499)));
        assert!(
            b.take(t0 + Duration::from_millis(500)),
            "one token per 500 ms"
        );
        let later = t0 + Duration::from_secs(60);
        assert_eq!(
            (0..10).filter(|_| b.take(later)).count(),
            4,
            "never above burst"
        );
    }

    #[test]
    fn ipv6_is_grouped_by_64_and_memory_is_bounded() {
        let t0 = Instant::now();
        let mut r = RateLimiter::default();
        for i in 0..PACKETS_BURSTABLE {
            let ip: IpAddr = format!("2001:db8::{i}").parse().unwrap();
            assert!(r.allow(t0, ip));
        }
        assert!(!r.allow(t0, "2001:db8::ffff".parse().unwrap()));
        for i in 0..(MAX_TRACKED as u32 + 10) {
            r.allow(t0, IpAddr::V4(i.into()));
        }
        assert!(r.tracked() <= MAX_TRACKED);
    }
}

//! Handshake load detection and per-source rate limiting (whitepaper §5.3 "Denial of Service
//! Mitigation & Cookies"; the kernel's `ratelimiter.c` and wireguard-go `ratelimiter` for the
//! numbers: 20 handshake messages per second per source address, burst 5).
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

const NANOS_PER_PACKET: u64 = 1_000_000_000 / PACKETS_PER_SECOND as u64;
const MAX_TOKENS: u64 = NANOS_PER_PACKET * PACKETS_BURSTABLE as u64;

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
    buckets: HashMap<IpAddr, (u64, Instant)>,
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
        let (tokens, last) = self
            .buckets
            .entry(bucket_key(ip))
            .or_insert((MAX_TOKENS, now));
        let elapsed =
            u64::try_from(now.saturating_duration_since(*last).as_nanos()).unwrap_or(u64::MAX);
        *tokens = tokens.saturating_add(elapsed).min(MAX_TOKENS);
        *last = now;
        if *tokens >= NANOS_PER_PACKET {
            *tokens -= NANOS_PER_PACKET;
            true
        } else {
            false
        }
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

//! Counters the gateway exports to Prometheus: keys and bytes fetched, errors by kind, request
//! latency histogram, prefetch buffer level and KME reachability. Plain atomics, no exporter
//! dependency; read them with [`Metrics::snapshot`]. No key bytes or key IDs are ever recorded.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::error::ErrorKind;

/// Upper bounds (inclusive, milliseconds) of the latency buckets; a last bucket catches the rest.
pub const LATENCY_BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

const N_KINDS: usize = ErrorKind::ALL.len();
const N_BUCKETS: usize = LATENCY_BUCKETS_MS.len() + 1;

/// Shared counters; clone the `Arc` that holds it into every client and prefetcher.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: AtomicU64,
    keys_fetched: AtomicU64,
    key_bytes: AtomicU64,
    errors: [AtomicU64; N_KINDS],
    latency_buckets: [AtomicU64; N_BUCKETS],
    latency_sum_us: AtomicU64,
    buffer_level: AtomicU64,
    kme_reachable: AtomicBool,
}

/// A point-in-time copy of [`Metrics`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// HTTP requests completed or failed.
    pub requests: u64,
    /// Keys received from the KME (enc_keys and dec_keys).
    pub keys_fetched: u64,
    /// Bytes of key material received.
    pub key_bytes: u64,
    /// Error counts by kind, in [`ErrorKind::ALL`] order.
    pub errors: Vec<(ErrorKind, u64)>,
    /// Per-bucket (non-cumulative) latency counts; the last entry is the overflow bucket.
    pub latency_buckets: Vec<u64>,
    /// Sum of all request latencies in microseconds.
    pub latency_sum_us: u64,
    /// Keys currently in the prefetch buffers (all pools of the client).
    pub buffer_level: u64,
    /// Whether the last request reached the KME (any HTTP answer counts).
    pub kme_reachable: bool,
}

impl MetricsSnapshot {
    /// The count for one error kind.
    pub fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.errors
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }

    /// Cumulative bucket counts, as a Prometheus histogram wants them (`le` = bucket bound).
    pub fn latency_cumulative(&self) -> Vec<u64> {
        self.latency_buckets
            .iter()
            .scan(0u64, |acc, n| {
                *acc += n;
                Some(*acc)
            })
            .collect()
    }
}

impl Metrics {
    /// Fresh counters, KME not yet known reachable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one request's latency.
    pub fn record_latency(&self, latency: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let ms = latency.as_millis();
        let idx = LATENCY_BUCKETS_MS
            .iter()
            .position(|b| ms <= u128::from(*b))
            .unwrap_or(N_BUCKETS - 1);
        self.latency_buckets[idx].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Records keys received.
    pub fn record_keys(&self, count: usize, bytes: usize) {
        self.keys_fetched.fetch_add(count as u64, Ordering::Relaxed);
        self.key_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Records one error.
    pub fn record_error(&self, kind: ErrorKind) {
        self.errors[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// One prefetch pool's level went from `before` to `after`: the gauge is the sum over every
    /// pool of the client (a hub has one per peer it is master of). Added before it is taken
    /// away, so the gauge never wraps below zero.
    pub fn buffer_level_changed(&self, before: usize, after: usize) {
        self.buffer_level.fetch_add(after as u64, Ordering::Relaxed);
        self.buffer_level
            .fetch_sub(before as u64, Ordering::Relaxed);
    }

    /// Sets whether the KME answered the last request.
    pub fn set_reachable(&self, reachable: bool) {
        self.kme_reachable.store(reachable, Ordering::Relaxed);
    }

    /// Copies every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            keys_fetched: self.keys_fetched.load(Ordering::Relaxed),
            key_bytes: self.key_bytes.load(Ordering::Relaxed),
            errors: ErrorKind::ALL
                .iter()
                .map(|k| (*k, self.errors[k.index()].load(Ordering::Relaxed)))
                .collect(),
            latency_buckets: self
                .latency_buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            latency_sum_us: self.latency_sum_us.load(Ordering::Relaxed),
            buffer_level: self.buffer_level.load(Ordering::Relaxed),
            kme_reachable: self.kme_reachable.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_right_bucket() {
        let m = Metrics::new();
        m.record_latency(Duration::from_micros(500));
        m.record_latency(Duration::from_millis(7));
        m.record_latency(Duration::from_secs(60));
        let s = m.snapshot();
        assert_eq!(s.requests, 3);
        assert_eq!(s.latency_buckets[0], 1);
        assert_eq!(s.latency_buckets[3], 1, "7 ms <= 10 ms bucket");
        assert_eq!(*s.latency_buckets.last().unwrap_or(&0), 1);
        assert_eq!(s.latency_cumulative().last().copied(), Some(3));
        assert_eq!(s.latency_sum_us, 500 + 7000 + 60_000_000);
    }

    #[test]
    fn counters_accumulate() {
        let m = Metrics::new();
        m.record_keys(3, 96);
        m.record_error(ErrorKind::Timeout);
        m.record_error(ErrorKind::Timeout);
        m.buffer_level_changed(0, 7);
        m.buffer_level_changed(2, 0);
        m.set_reachable(true);
        let s = m.snapshot();
        assert_eq!((s.keys_fetched, s.key_bytes), (3, 96));
        assert_eq!(s.errors_of(ErrorKind::Timeout), 2);
        assert_eq!(s.errors_of(ErrorKind::Tls), 0);
        assert_eq!(s.buffer_level, 5);
        assert!(s.kme_reachable);
    }
}

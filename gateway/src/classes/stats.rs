//! What one traffic class of one peer did at the egress scheduler: the counters `qgw status`,
//! `qgw status --json` (`classes`) and `/metrics` (`qgw_class_*`) show. Queue delay is the time
//! from enqueue to release (the sojourn time CoDel works on, RFC 8289 §3), recorded in the
//! fixed buckets of [`DELAY_BUCKETS`] since start (a Prometheus histogram) and in a recent window
//! for the p99 that `qgw status` shows.

use std::time::Duration;

use super::ClassId;

/// Upper bounds of the queue-delay histogram buckets, in seconds (a final `+Inf` bucket follows).
pub const DELAY_BUCKETS: [f64; 11] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
];

/// One class's counters since start.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassStats {
    /// The class.
    pub class: ClassId,
    /// Inner packets released to the tunnel.
    pub packets: u64,
    /// Inner bytes released to the tunnel.
    pub bytes: u64,
    /// Packets dropped because the class's (or the peer's) queue was full.
    pub drops_overflow: u64,
    /// Packets dropped by CoDel (not ECN-capable).
    pub drops_codel: u64,
    /// Packets CoDel marked Congestion Experienced instead of dropping (RFC 3168, RFC 8289 §5.3).
    pub ecn_marked: u64,
    /// Packets waiting now.
    pub queued_packets: u64,
    /// Bytes waiting now.
    pub queued_bytes: u64,
    /// Released packets per queue-delay bucket (`DELAY_BUCKETS`, then `+Inf`), not cumulative.
    pub delay_buckets: [u64; DELAY_BUCKETS.len() + 1],
    /// Sum of the released packets' queue delays.
    pub delay_sum: Duration,
    /// The 99th percentile of the queue delay over the recent window (`None`: nothing released
    /// in it). An upper bound: the bound of the bucket the percentile falls into.
    pub recent_delay_p99: Option<Duration>,
}

impl ClassStats {
    /// Nothing yet, for `class`.
    pub fn new(class: ClassId) -> Self {
        Self {
            class,
            packets: 0,
            bytes: 0,
            drops_overflow: 0,
            drops_codel: 0,
            ecn_marked: 0,
            queued_packets: 0,
            queued_bytes: 0,
            delay_buckets: [0; DELAY_BUCKETS.len() + 1],
            delay_sum: Duration::ZERO,
            recent_delay_p99: None,
        }
    }

    /// Every drop, whatever the reason.
    pub fn drops(&self) -> u64 {
        self.drops_overflow + self.drops_codel
    }
}

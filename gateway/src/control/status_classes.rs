//! The per-class part of `qgw status` (docs/gateway-decisions.md, "Traffic classes"): for each
//! peer with an egress scheduler (`egress_rate`), what each of the four traffic classes did,
//! copied from the scheduler's [`ClassStats`]. `qgw status --json` gives it per peer as
//! `classes`; `name`, `packets`, `bytes`, `drops` and `queue_delay_p99_ms` are a fixed interface,
//! the other fields feed `/metrics` (`qgw_class_*`, `super::exposition`).

use serde::{Deserialize, Serialize};

use crate::classes::stats::{ClassStats, DELAY_BUCKETS};

/// One traffic class of one peer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassStatus {
    /// `telemonitoring`, `telemedicine`, `imaging` or `default` (`crate::classes::ClassId::name`).
    pub name: String,
    /// Inner packets released to the tunnel.
    pub packets: u64,
    /// Inner bytes released to the tunnel.
    pub bytes: u64,
    /// Packets dropped, for any reason (`drops_overflow` + `drops_codel`).
    pub drops: u64,
    /// The 99th percentile of the queue delay over the recent window, in milliseconds (an upper
    /// bound: the bound of its histogram bucket); `None` when nothing was released in it.
    pub queue_delay_p99_ms: Option<f64>,
    /// Packets dropped because the queue was full.
    #[serde(default)]
    pub drops_overflow: u64,
    /// Packets dropped by CoDel.
    #[serde(default)]
    pub drops_codel: u64,
    /// Packets CoDel marked Congestion Experienced instead of dropping.
    #[serde(default)]
    pub ecn_marked: u64,
    /// Packets waiting now.
    #[serde(default)]
    pub queued_packets: u64,
    /// Bytes waiting now.
    #[serde(default)]
    pub queued_bytes: u64,
    /// Queue delay since start: `(upper bound in µs, cumulative count)`; the last bound is
    /// `None` (+Inf), and its count is every released packet.
    #[serde(default)]
    pub queue_delay_buckets: Vec<(Option<u64>, u64)>,
    /// Sum of the released packets' queue delays, in µs.
    #[serde(default)]
    pub queue_delay_sum_us: u64,
}

// The delays are finite durations converted to milliseconds, never NaN: equality is total, so a
// `Status` holding them stays comparable with `==` and `Eq` as it was.
impl Eq for ClassStatus {}

impl From<&ClassStats> for ClassStatus {
    fn from(s: &ClassStats) -> Self {
        let bounds = DELAY_BUCKETS
            .iter()
            .map(|b| Some((b * 1e6).round() as u64))
            .chain([None]);
        let cumulative = s.delay_buckets.iter().scan(0u64, |below, n| {
            *below = below.saturating_add(*n);
            Some(*below)
        });
        Self {
            name: s.class.name().to_owned(),
            packets: s.packets,
            bytes: s.bytes,
            drops: s.drops(),
            queue_delay_p99_ms: s.recent_delay_p99.map(|d| d.as_secs_f64() * 1e3),
            drops_overflow: s.drops_overflow,
            drops_codel: s.drops_codel,
            ecn_marked: s.ecn_marked,
            queued_packets: s.queued_packets,
            queued_bytes: s.queued_bytes,
            queue_delay_buckets: bounds.zip(cumulative).collect(),
            queue_delay_sum_us: u64::try_from(s.delay_sum.as_micros()).unwrap_or(u64::MAX),
        }
    }
}

impl ClassStatus {
    /// Released packets counted in the histogram (its `+Inf` bucket).
    pub fn queue_delay_count(&self) -> u64 {
        self.queue_delay_buckets.last().map_or(0, |(_, n)| *n)
    }
}

/// The text lines of a peer's classes, one per class.
pub(super) fn render(classes: &[ClassStatus]) -> String {
    let mut s = String::new();
    for c in classes {
        s += &format!(
            "  class {}: {} packets, {} B, {} drops",
            c.name, c.packets, c.bytes, c.drops
        );
        if c.ecn_marked > 0 {
            s += &format!(", {} ECN marked", c.ecn_marked);
        }
        if c.queued_packets > 0 {
            s += &format!(", {} queued ({} B)", c.queued_packets, c.queued_bytes);
        }
        s += &format!(", queue p99 {}\n", p99(c.queue_delay_p99_ms));
    }
    s
}

/// A p99 in milliseconds as `qgw status` prints it: to the microsecond, `-` when nothing was
/// released recently, `> 500 ms` beyond the last bucket.
fn p99(ms: Option<f64>) -> String {
    let last_ms = DELAY_BUCKETS[DELAY_BUCKETS.len() - 1] * 1e3;
    match ms {
        None => "-".to_owned(),
        Some(ms) if ms > last_ms => format!("> {last_ms} ms"),
        Some(ms) => format!("{} ms", (ms * 1e3).round() / 1e3),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::classes::ClassId;

    /// Telemonitoring after 1204 packets: three delay buckets used, two drops, one marked.
    pub(crate) fn telemonitoring() -> ClassStats {
        let mut s = ClassStats::new(ClassId::Telemonitoring);
        s.packets = 1204;
        s.bytes = 317_440;
        s.drops_overflow = 1;
        s.drops_codel = 1;
        s.ecn_marked = 3;
        s.queued_packets = 2;
        s.queued_bytes = 640;
        s.delay_buckets[0] = 1000;
        s.delay_buckets[2] = 200;
        s.delay_buckets[DELAY_BUCKETS.len()] = 4;
        s.delay_sum = Duration::from_micros(2_750_500);
        s.recent_delay_p99 = Some(Duration::from_micros(250));
        s
    }

    #[test]
    fn copies_the_counters_and_accumulates_the_histogram() {
        let c = ClassStatus::from(&telemonitoring());
        assert_eq!(
            (c.name.as_str(), c.packets, c.bytes, c.drops),
            ("telemonitoring", 1204, 317_440, 2)
        );
        assert_eq!(c.queue_delay_p99_ms, Some(0.25));
        assert_eq!(c.queue_delay_sum_us, 2_750_500);
        let b = &c.queue_delay_buckets;
        assert_eq!(b.len(), DELAY_BUCKETS.len() + 1);
        assert_eq!(
            (b[0], b[1], b[2], b[10]),
            (
                (Some(250), 1000),
                (Some(500), 1000),
                (Some(1000), 1200),
                (Some(500_000), 1200)
            )
        );
        assert_eq!(b[11], (None, 1204));
        assert_eq!(c.queue_delay_count(), 1204);
    }

    #[test]
    fn renders_one_line_per_class_and_round_trips_as_json() {
        let busy = ClassStatus::from(&telemonitoring());
        let idle = ClassStatus::from(&ClassStats::new(ClassId::Imaging));
        let text = render(&[busy.clone(), idle.clone()]);
        assert_eq!(
            text,
            "  class telemonitoring: 1204 packets, 317440 B, 2 drops, 3 ECN marked, \
             2 queued (640 B), queue p99 0.25 ms\n  \
             class imaging: 0 packets, 0 B, 0 drops, queue p99 -\n"
        );
        let json = serde_json::to_value(&idle).expect("json");
        assert!(json["queue_delay_p99_ms"].is_null(), "{json}");
        let back: ClassStatus =
            serde_json::from_value(serde_json::to_value(&busy).expect("json")).expect("parse");
        assert_eq!(back, busy);
        // What admins' tooling may send back: the fixed fields alone.
        let fixed = serde_json::json!({"name": "default", "packets": 1, "bytes": 2,
            "drops": 0, "queue_delay_p99_ms": 1.5});
        let parsed: ClassStatus = serde_json::from_value(fixed).expect("fixed fields");
        assert_eq!(parsed.queue_delay_p99_ms, Some(1.5));
    }

    #[test]
    fn a_p99_prints_to_the_microsecond_or_beyond_the_last_bucket() {
        assert_eq!(p99(Some(20.0)), "20 ms");
        assert_eq!(p99(Some(0.3004)), "0.3 ms");
        assert_eq!(p99(Some(900.0)), "> 500 ms");
    }
}

//! CoDel (RFC 8289), one instance per flow queue as FQ-CoDel runs it (RFC 8290 §4.1), decided
//! packet by packet at dequeue: the caller takes the queue's head and asks [`Codel::on_dequeue`]
//! whether to drop (or CE-mark, RFC 8289 §5.3) it; after a drop it takes the next head and asks
//! again, which is the RFC's "drop while `now >= drop_next`" loop (§5.6) unrolled.
//!
//! The numbers are the RFC's defaults (§4.3, §4.4): **target 5 ms** (the standing queue delay
//! tolerated: 5–10 % of the interval) and **interval 100 ms** (about a worst-case RTT, so a
//! burst that drains within one RTT is never dropped). Once the sojourn time has stayed above
//! target for a whole interval, CoDel drops one packet and then the next ones at
//! `interval / sqrt(count)` (the control law, §5.5), so TCP's rate falls linearly until the
//! queue drains below target. A queue holding at most one MTU is never dropped from (§5.4:
//! nothing to gain on a link that is one packet from idle).

use std::time::{Duration, Instant};

/// The standing queue delay CoDel tolerates (RFC 8289 §4.4).
pub const TARGET: Duration = Duration::from_millis(5);
/// The window the delay must stay above target before CoDel acts (RFC 8289 §4.3).
pub const INTERVAL: Duration = Duration::from_millis(100);

/// One queue's CoDel state (RFC 8289 §5.2's variables).
#[derive(Debug, Clone, Default)]
pub struct Codel {
    /// When the sojourn time went (and stayed) above target, plus one interval: dropping may
    /// start then. `None`: below target, or the queue is nearly empty.
    first_above: Option<Instant>,
    /// In the dropping state: the time of the next drop.
    drop_next: Option<Instant>,
    /// Drops since entering the dropping state.
    count: u32,
    /// `count` when the last dropping state ended.
    last_count: u32,
    dropping: bool,
}

impl Codel {
    /// `t + interval / sqrt(count)` (RFC 8289 §5.5).
    fn control_law(t: Instant, count: u32) -> Instant {
        let step = INTERVAL.as_nanos() as f64 / f64::from(count.max(1)).sqrt();
        t + Duration::from_nanos(step as u64)
    }

    /// RFC 8289 §5.3's `dodequeue`: whether the head's sojourn time says the queue has stood
    /// above target for an interval. `backlog` is what the queue holds besides the head.
    fn ok_to_drop(&mut self, now: Instant, sojourn: Duration, backlog: usize, mtu: usize) -> bool {
        if sojourn < TARGET || backlog <= mtu {
            self.first_above = None;
            return false;
        }
        match self.first_above {
            None => {
                self.first_above = Some(now + INTERVAL);
                false
            }
            Some(at) => now >= at,
        }
    }

    /// Whether the head just taken (queued `sojourn` ago, the queue holding `backlog` bytes
    /// besides it) must be dropped or, if ECN-capable, marked (RFC 8289 §5.6).
    pub fn on_dequeue(
        &mut self,
        now: Instant,
        sojourn: Duration,
        backlog: usize,
        mtu: usize,
    ) -> bool {
        let ok = self.ok_to_drop(now, sojourn, backlog, mtu);
        if self.dropping {
            if !ok {
                self.dropping = false;
                return false;
            }
            let next = self.drop_next.unwrap_or(now);
            if now < next {
                return false;
            }
            self.count = self.count.saturating_add(1);
            self.drop_next = Some(Self::control_law(next, self.count));
            return true;
        }
        if !ok {
            return false;
        }
        self.dropping = true;
        // Start from the last dropping state's rate if it ended recently (§5.6: a queue that
        // came back soon needs about the drop rate that controlled it before).
        let delta = self.count.saturating_sub(self.last_count);
        let recent = self
            .drop_next
            .is_some_and(|next| now.saturating_duration_since(next) < 16 * INTERVAL);
        self.count = if delta > 1 && recent { delta } else { 1 };
        self.last_count = self.count;
        self.drop_next = Some(Self::control_law(now, self.count));
        true
    }

    /// The queue went empty: sojourn tracking restarts (the dropping state ends on the next
    /// head below target, as in the RFC).
    pub fn on_empty(&mut self) {
        self.first_above = None;
        self.dropping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MTU: usize = 1420;
    const MS: Duration = Duration::from_millis(1);

    /// Drives one queue whose head always waited `sojourn` with `backlog` behind it, a packet
    /// every millisecond for `ms` milliseconds; returns the drop times (ms from the start).
    fn run(c: &mut Codel, t0: Instant, ms: u32, sojourn: Duration, backlog: usize) -> Vec<u32> {
        (0..ms)
            .filter(|&i| c.on_dequeue(t0 + i * MS, sojourn, backlog, MTU))
            .collect()
    }

    #[test]
    fn a_short_burst_is_never_dropped() {
        let mut c = Codel::default();
        let t0 = Instant::now();
        // 50 ms above target, then drained: less than one interval.
        assert!(run(&mut c, t0, 50, 30 * MS, 20 * MTU).is_empty());
        assert!(run(&mut c, t0 + 50 * MS, 200, MS, 0).is_empty());
    }

    #[test]
    fn a_queue_at_most_one_mtu_is_never_dropped() {
        let mut c = Codel::default();
        assert!(run(&mut c, Instant::now(), 1000, 50 * MS, MTU).is_empty());
    }

    #[test]
    fn a_standing_queue_is_dropped_faster_and_faster() {
        let mut c = Codel::default();
        let t0 = Instant::now();
        let drops = run(&mut c, t0, 1000, 20 * MS, 20 * MTU);
        // The first drop one interval after going above target, then interval/sqrt(n).
        assert_eq!(drops[0], 100);
        assert_eq!(drops[1], 200, "100 ms / sqrt(1)");
        assert_eq!(drops[2], 271, "+ 100 ms / sqrt(2) = 70.7 ms");
        let gaps: Vec<u32> = drops.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.windows(2).all(|g| g[1] <= g[0]),
            "gaps shrink: {gaps:?}"
        );
    }

    #[test]
    fn dropping_stops_when_the_delay_falls_below_target() {
        let mut c = Codel::default();
        let t0 = Instant::now();
        assert!(!run(&mut c, t0, 300, 20 * MS, 20 * MTU).is_empty());
        assert!(run(&mut c, t0 + 300 * MS, 500, 2 * MS, 20 * MTU).is_empty());
    }

    #[test]
    fn a_queue_that_returns_soon_resumes_near_the_old_drop_rate() {
        let mut c = Codel::default();
        let t0 = Instant::now();
        let first = run(&mut c, t0, 1000, 20 * MS, 20 * MTU).len();
        assert!(first > 3);
        c.on_empty();
        let again = run(&mut c, t0 + 1000 * MS, 300, 20 * MS, 20 * MTU);
        // Enters dropping after an interval, at a count > 1: the second drop comes sooner
        // than 100 ms after the first.
        assert!(again.len() >= 2 && again[1] - again[0] < 100, "{again:?}");
    }
}

//! One class's queue-delay record: the since-start histogram of [`ClassStats`] and a recent
//! window for the p99 `qgw status` shows. The window is two rotating 10-second histograms
//! (the current one and the one before), so the p99 covers the last 10–20 s: recent enough to
//! show a congestion episode, long enough to hold a few hundred vital-sign messages. The p99
//! is an upper bound: the bound of the bucket it falls in (past the last bound, the largest
//! delay seen in the window).

use std::time::{Duration, Instant};

use super::stats::{ClassStats, DELAY_BUCKETS};

/// The length of one window histogram.
pub const WINDOW: Duration = Duration::from_secs(10);

const BUCKETS: usize = DELAY_BUCKETS.len() + 1;

/// The bucket of a delay (`DELAY_BUCKETS.len()`: `+Inf`).
fn bucket_of(delay: Duration) -> usize {
    let secs = delay.as_secs_f64();
    DELAY_BUCKETS
        .iter()
        .position(|&bound| secs <= bound)
        .unwrap_or(DELAY_BUCKETS.len())
}

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    counts: [u64; BUCKETS],
    max: Duration,
}

/// The recent window (see the module docs).
#[derive(Debug, Clone)]
pub struct RecentDelay {
    current: Window,
    previous: Window,
    current_start: Instant,
}

impl RecentDelay {
    /// Empty, the first window starting at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            current: Window::default(),
            previous: Window::default(),
            current_start: now,
        }
    }

    fn rotate(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.current_start);
        if age >= 2 * WINDOW {
            self.previous = Window::default();
            self.current = Window::default();
            self.current_start = now;
        } else if age >= WINDOW {
            self.previous = self.current;
            self.current = Window::default();
            self.current_start += WINDOW;
        }
    }

    /// Records a released packet's delay in `stats` (since start) and in the window.
    pub fn record(&mut self, now: Instant, delay: Duration, stats: &mut ClassStats) {
        let b = bucket_of(delay);
        stats.delay_buckets[b] += 1;
        stats.delay_sum += delay;
        self.rotate(now);
        self.current.counts[b] += 1;
        self.current.max = self.current.max.max(delay);
    }

    /// The p99 over the windows still recent at `now` (`None`: nothing released in them).
    pub fn p99(&self, now: Instant) -> Option<Duration> {
        let age = now.saturating_duration_since(self.current_start);
        let windows: &[&Window] = if age >= 2 * WINDOW {
            &[]
        } else if age >= WINDOW {
            &[&self.current]
        } else {
            &[&self.current, &self.previous]
        };
        let mut counts = [0u64; BUCKETS];
        let mut max = Duration::ZERO;
        for w in windows {
            for (c, n) in counts.iter_mut().zip(w.counts) {
                *c += n;
            }
            max = max.max(w.max);
        }
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        // The smallest bucket holding at least 99 % of the packets.
        let need = total - total / 100;
        let mut seen = 0;
        for (b, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= need {
                return Some(match DELAY_BUCKETS.get(b) {
                    Some(&bound) => Duration::from_secs_f64(bound).min(max),
                    None => max,
                });
            }
        }
        Some(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classes::ClassId;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn p99_is_the_bound_of_its_bucket_and_history_keeps_everything() {
        let t = Instant::now();
        let mut r = RecentDelay::new(t);
        let mut s = ClassStats::new(ClassId::Imaging);
        for _ in 0..990 {
            r.record(t, Duration::from_micros(100), &mut s);
        }
        for _ in 0..10 {
            r.record(t, 30 * MS, &mut s);
        }
        assert_eq!(r.p99(t), Some(Duration::from_secs_f64(0.000_25)));
        r.record(t, 30 * MS, &mut s);
        assert_eq!(
            r.p99(t),
            Some(30 * MS),
            "past 1 %: the 50 ms bucket, bounded by the max"
        );
        assert_eq!(s.delay_buckets[0], 990);
        assert_eq!(s.delay_buckets[7], 11);
        r.record(t, Duration::from_secs(3), &mut s);
        assert_eq!(s.delay_buckets[DELAY_BUCKETS.len()], 1, "+Inf");
    }

    #[test]
    fn old_windows_are_forgotten() {
        let t = Instant::now();
        let mut r = RecentDelay::new(t);
        let mut s = ClassStats::new(ClassId::Default);
        r.record(t, 40 * MS, &mut s);
        assert_eq!(
            r.p99(t + 15 * WINDOW / 10),
            Some(40 * MS),
            "the previous window counts"
        );
        r.record(t + 11 * WINDOW / 10, MS, &mut s);
        assert_eq!(r.p99(t + 19 * WINDOW / 10), Some(40 * MS));
        assert_eq!(
            r.p99(t + 21 * WINDOW / 10),
            Some(MS),
            "the 40 ms window has gone"
        );
        assert_eq!(r.p99(t + 4 * WINDOW), None);
    }
}

//! Bounded retries with exponential backoff and jitter (reference §10.1–10.2: back off on an
//! unreachable KME or 503, never on 401 or TLS failures). The delay computation is pure: the
//! caller supplies the random draw, so tests are deterministic.

use std::time::Duration;

use serde::Deserialize;

/// Hard ceiling on `max_attempts`, so a configuration typo cannot make a request retry for hours.
pub const MAX_ATTEMPTS_LIMIT: u32 = 10;

/// When and how often a failed request is tried again.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = no retry). 1..=10, default 3.
    pub max_attempts: u32,
    /// Backoff before the first retry, in milliseconds. Default 100.
    pub initial_backoff_ms: u64,
    /// Cap on any single backoff, in milliseconds. Default 2000.
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff_ms: 100,
            max_backoff_ms: 2000,
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Checks ranges; the message names the field and the fix.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&self.max_attempts) {
            return Err((
                "retry.max_attempts",
                format!(
                    "{} is outside 1..={MAX_ATTEMPTS_LIMIT} (1 disables retries)",
                    self.max_attempts
                ),
            ));
        }
        if self.initial_backoff_ms == 0 || self.initial_backoff_ms > self.max_backoff_ms {
            return Err((
                "retry.initial_backoff_ms",
                format!(
                    "{} must be positive and at most retry.max_backoff_ms ({})",
                    self.initial_backoff_ms, self.max_backoff_ms
                ),
            ));
        }
        if self.max_backoff_ms > 60_000 {
            return Err((
                "retry.max_backoff_ms",
                format!("{} exceeds 60000 ms", self.max_backoff_ms),
            ));
        }
        Ok(())
    }

    /// The pause before retry number `retry` (0 = first retry), "equal jitter": half the
    /// exponential step is fixed, the other half scaled by `jitter`, a uniform draw in `u64`.
    pub fn backoff(&self, retry: u32, jitter: u64) -> Duration {
        let step = self
            .initial_backoff_ms
            .saturating_mul(1u64 << retry.min(20))
            .min(self.max_backoff_ms);
        let half = step / 2;
        let spread = step - half;
        let extra = ((u128::from(spread) * u128::from(jitter)) >> 64) as u64;
        Duration::from_millis(half + extra)
    }
}

/// A uniform random `u64` for jitter (OS entropy; jitter needs no secrecy, but this avoids a PRNG
/// dependency). Falls back to 0 (no jitter) if the OS source fails.
pub fn jitter_draw() -> u64 {
    let mut b = [0u8; 8];
    match getrandom::fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
        };
        assert_eq!(p.backoff(0, 0), Duration::from_millis(50));
        assert_eq!(p.backoff(1, 0), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 0), Duration::from_millis(200));
        assert_eq!(p.backoff(9, 0), Duration::from_millis(500));
        assert_eq!(p.backoff(9, u64::MAX), Duration::from_millis(999));
        assert_eq!(p.backoff(u32::MAX, u64::MAX), Duration::from_millis(999));
    }

    #[test]
    fn jitter_stays_within_the_step() {
        let p = RetryPolicy::default();
        for j in [0, 1, u64::MAX / 3, u64::MAX / 2, u64::MAX] {
            let d = p.backoff(0, j);
            assert!(
                d >= Duration::from_millis(50) && d < Duration::from_millis(100),
                "{d:?}"
            );
        }
    }

    #[test]
    fn validation_names_the_field() {
        let mut p = RetryPolicy::default();
        assert!(p.validate().is_ok());
        p.max_attempts = 0;
        assert_eq!(p.validate().map_err(|e| e.0), Err("retry.max_attempts"));
        p.max_attempts = 11;
        assert!(p.validate().is_err());
        let p = RetryPolicy {
            initial_backoff_ms: 5000,
            ..RetryPolicy::default()
        };
        assert_eq!(
            p.validate().map_err(|e| e.0),
            Err("retry.initial_backoff_ms")
        );
    }
}

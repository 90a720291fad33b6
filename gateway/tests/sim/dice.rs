//! The simulation's one source of chance: every fault, delay, replay and traffic decision is drawn
//! from it, so a seed fixes a whole run (nodes draw their own streams from the same seed).

use keymix::{Entropy, SeededEntropy};
use std::time::Duration;

/// Seeded dice.
#[derive(Debug, Clone)]
pub struct Dice(SeededEntropy);

impl Dice {
    /// Dice for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(SeededEntropy::new(seed ^ 0xd1ce_d1ce_d1ce_d1ce))
    }

    /// A uniform `u64`.
    pub fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.u64() % n }
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// Uniform in `[lo, hi]`.
    pub fn duration(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_micros() as u64;
        lo + Duration::from_micros(self.below(span + 1))
    }

    /// Uniform in `[lo, hi]`.
    pub fn float(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.u64() >> 11) as f64 / (1u64 << 53) as f64)
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

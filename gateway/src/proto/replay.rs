//! Anti-replay sliding window for transport counters (whitepaper §5.4.6: "the receiver keeps track
//! of which counters it has seen, using a sliding window"), laid out as RFC 6479 describes: a ring of
//! 64-bit words, cleared word by word as the window slides, so checking is O(1) and never shifts.
//!
//! The window is 8192 bits of which 8128 are usable (one word is the slack the ring needs), as in
//! the kernel's `COUNTER_BITS_TOTAL`. Only counters whose packet *authenticated* may be recorded:
//! call [`ReplayWindow::accept`] after the AEAD opened, never before.

use super::constants::{REJECT_AFTER_MESSAGES, REPLAY_BITS_TOTAL};

const WORD_BITS: u64 = 64;
const WORDS: usize = REPLAY_BITS_TOTAL / WORD_BITS as usize;
/// How far behind the greatest counter seen a counter may still be accepted.
pub const WINDOW: u64 = REPLAY_BITS_TOTAL as u64 - WORD_BITS;

const _: () = assert!(WORDS.is_power_of_two() && REPLAY_BITS_TOTAL >= 2048);

/// The receive-side counter filter of one session.
#[derive(Clone)]
pub struct ReplayWindow {
    bitmap: [u64; WORDS],
    /// Greatest counter accepted so far (meaningless while `bitmap` is all zero and it is 0).
    greatest: u64,
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("greatest", &self.greatest)
            .finish_non_exhaustive()
    }
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self {
            bitmap: [0; WORDS],
            greatest: 0,
        }
    }
}

impl ReplayWindow {
    /// A fresh window: nothing seen.
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(counter: u64) -> (usize, u64) {
        // The mask keeps the index inside the ring; WORDS is a power of two.
        let word = ((counter / WORD_BITS) as usize) & (WORDS - 1);
        (word, 1u64 << (counter % WORD_BITS))
    }

    /// Whether `counter` could be accepted now (cheap pre-check before decrypting; no state change).
    pub fn check(&self, counter: u64) -> bool {
        if counter >= REJECT_AFTER_MESSAGES {
            return false;
        }
        if counter > self.greatest {
            return true;
        }
        if self.greatest - counter >= WINDOW {
            return false;
        }
        let (w, bit) = Self::slot(counter);
        self.bitmap[w] & bit == 0
    }

    /// Records `counter` if it is new and inside the window; returns whether it was accepted.
    pub fn accept(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        if counter > self.greatest {
            let current_block = self.greatest / WORD_BITS;
            let new_block = counter / WORD_BITS;
            // Clear the words the window slides over (at most the whole ring).
            let to_clear = (new_block - current_block).min(WORDS as u64);
            for i in 1..=to_clear {
                let w = ((current_block + i) as usize) & (WORDS - 1);
                self.bitmap[w] = 0;
            }
            self.greatest = counter;
        }
        let (w, bit) = Self::slot(counter);
        self.bitmap[w] |= bit;
        true
    }

    /// The greatest counter accepted so far.
    pub fn greatest(&self) -> u64 {
        self.greatest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_then_duplicates() {
        let mut w = ReplayWindow::new();
        for c in 0..20_000 {
            assert!(w.accept(c), "{c}");
        }
        for c in (20_000 - WINDOW)..20_000 {
            assert!(!w.accept(c), "duplicate {c} accepted");
        }
    }

    #[test]
    fn zero_is_accepted_once() {
        let mut w = ReplayWindow::new();
        assert!(w.accept(0));
        assert!(!w.accept(0));
    }

    #[test]
    fn window_edges() {
        let mut w = ReplayWindow::new();
        let top = 100_000;
        assert!(w.accept(top));
        // The oldest counter still inside the window, and the first one outside it.
        assert!(w.check(top - WINDOW + 1));
        assert!(!w.check(top - WINDOW));
        assert!(w.accept(top - WINDOW + 1));
        assert!(!w.accept(top - WINDOW + 1));
        assert!(!w.accept(top - WINDOW));
        assert!(!w.accept(0));
    }

    #[test]
    fn out_of_order_within_window() {
        let mut w = ReplayWindow::new();
        for c in [5u64, 3, 9, 1, 2, 4, 8, 7, 6, 0] {
            assert!(w.accept(c), "{c}");
        }
        for c in 0..10 {
            assert!(!w.accept(c), "{c}");
        }
    }

    #[test]
    fn big_jump_clears_stale_bits() {
        let mut w = ReplayWindow::new();
        for c in 0..64 {
            assert!(w.accept(c));
        }
        // Jump more than a full ring: every word is cleared, so old bits cannot alias new counters.
        let far = 64 + 3 * REPLAY_BITS_TOTAL as u64;
        assert!(w.accept(far));
        for c in (far - WINDOW + 1)..far {
            assert!(w.check(c), "{c} wrongly marked as seen");
        }
    }

    #[test]
    fn limit_is_rejected() {
        let mut w = ReplayWindow::new();
        assert!(!w.accept(REJECT_AFTER_MESSAGES));
        assert!(!w.accept(u64::MAX));
        assert!(w.accept(REJECT_AFTER_MESSAGES - 1));
    }

    proptest! {
        /// Against a model (a set plus the greatest counter): the window accepts exactly the
        /// counters that are new and not older than the window.
        #[test]
        fn matches_model(ops in proptest::collection::vec(0u64..30_000, 1..400)) {
            let mut w = ReplayWindow::new();
            let mut seen = std::collections::HashSet::new();
            let mut greatest: Option<u64> = None;
            for c in ops {
                let fresh = !seen.contains(&c);
                let in_window = greatest.is_none_or(|g| c > g || g - c < WINDOW);
                let expect = fresh && in_window;
                prop_assert_eq!(w.accept(c), expect, "counter {}", c);
                if expect {
                    seen.insert(c);
                    greatest = Some(greatest.map_or(c, |g| g.max(c)));
                }
            }
        }
    }
}

//! Remembered X25519 results, in fuzz builds only (`cfg(fuzzing)`, which cargo-fuzz sets): the
//! daemon, the tests and every other build compute each X25519 operation.
//!
//! Why: the node fuzz bodies (`crate::fuzzing`) build their node afresh for every input, so that a
//! crash replays from its input alone, and that repeats the same dozen X25519 operations (static
//! public keys, the fixture's handshakes) for every input; under the fuzzer's instrumentation they
//! were most of an input's time (docs/gateway-decisions.md §7 has the figures).
//!
//! Why it is sound: X25519 is a pure function of its two inputs, so a remembered result is the
//! result; no output changes, and no state passes from one input to the next, only time. An
//! operation is computed the first time it is asked for, so a panic in it still surfaces. Keys are
//! the scalar as given (unclamped) and the point; a non-contributory result is remembered as `None`.
//! At most [`Memo::CAPACITY`] results are kept, the first ones (the fixture's, which every input
//! repeats); later ones are computed every time, so memory stays bounded whatever points the fuzzer
//! makes up. The table holds private scalars unwiped: acceptable only in a fuzz build.

use std::collections::BTreeMap;

use super::KEY_LEN;

/// The inputs of one X25519 operation: the scalar's bytes and the point's u-coordinate.
type Inputs = ([u8; KEY_LEN], [u8; KEY_LEN]);

/// Its output: the shared point, `None` if not contributory.
type Output = Option<[u8; KEY_LEN]>;

/// (scalar, point) → `X25519(scalar, point)`.
#[derive(Debug, Default)]
pub(super) struct Memo(BTreeMap<Inputs, Output>);

impl Memo {
    /// Results kept at most (a fuzz node repeats about twenty).
    pub(super) const CAPACITY: usize = 1024;

    const fn new() -> Self {
        Self(BTreeMap::new())
    }

    /// The remembered result for `inputs`, or `compute()`, remembered while there is room.
    fn get_or_compute(&mut self, inputs: Inputs, compute: impl FnOnce() -> Output) -> Output {
        if let Some(known) = self.0.get(&inputs) {
            return *known;
        }
        let result = compute();
        if self.0.len() < Self::CAPACITY {
            self.0.insert(inputs, result);
        }
        result
    }
}

/// The result of `X25519(scalar, point)`: from the process's memo, else `compute()`.
#[cfg(fuzzing)]
pub(super) fn remembered(
    scalar: &x25519_dalek::StaticSecret,
    point: &[u8; KEY_LEN],
    compute: impl FnOnce() -> Output,
) -> Output {
    static MEMO: std::sync::Mutex<Memo> = std::sync::Mutex::new(Memo::new());
    let mut memo = MEMO
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    memo.get_or_compute((scalar.to_bytes(), *point), compute)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use x25519_dalek::{PublicKey, StaticSecret};

    use super::*;
    use crate::proto::crypto::{BASEPOINT, SeededEntropy, x25519_secret};

    /// X25519 as `dh` computes it.
    fn x25519(scalar: &StaticSecret, point: &[u8; KEY_LEN]) -> Output {
        let shared = scalar.diffie_hellman(&PublicKey::from(*point));
        shared.was_contributory().then(|| shared.to_bytes())
    }

    #[test]
    fn a_remembered_result_is_the_computed_one_and_refusals_are_remembered_too() {
        let mut memo = Memo::new();
        let mut rng = SeededEntropy::new(5);
        let (s, t) = (x25519_secret(&mut rng), x25519_secret(&mut rng));
        let t_pub = PublicKey::from(&t).to_bytes();
        let low_order = [0; KEY_LEN];
        for point in [BASEPOINT, t_pub, low_order] {
            let first = memo.get_or_compute((s.to_bytes(), point), || x25519(&s, &point));
            assert_eq!(first, x25519(&s, &point));
            let again = memo.get_or_compute((s.to_bytes(), point), || unreachable!("remembered"));
            assert_eq!(again, first);
        }
        assert_eq!(memo.0[&(s.to_bytes(), low_order)], None);
        assert_eq!(memo.0.len(), 3, "keyed by the point as well");
    }

    #[test]
    fn it_keeps_the_first_results_and_stays_bounded() {
        let mut memo = Memo::default();
        let inputs = |i: usize| {
            let mut k = [0u8; KEY_LEN];
            k[..8].copy_from_slice(&i.to_le_bytes());
            (k, BASEPOINT)
        };
        for i in 0..Memo::CAPACITY + 10 {
            memo.get_or_compute(inputs(i), || Some([1; KEY_LEN]));
        }
        assert_eq!(memo.0.len(), Memo::CAPACITY);
        let mut computed = false;
        let past = memo.get_or_compute(inputs(Memo::CAPACITY), || {
            computed = true;
            Some([2; KEY_LEN])
        });
        assert!(computed, "full: later results are computed every time");
        assert_eq!(past, Some([2; KEY_LEN]));
        let first = memo.get_or_compute(inputs(0), || unreachable!("the first ones are kept"));
        assert_eq!(first, Some([1; KEY_LEN]));
    }
}

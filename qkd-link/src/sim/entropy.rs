//! Where the simulator's key bytes, key IDs and latency jitter come from: keymix's one
//! [`Entropy`] trait, injected into the sans-IO engine so unit tests are deterministic
//! ([`keymix::SeededEntropy`]); the server uses [`keymix::OsEntropy`]. A source that fails makes
//! the engine answer 503 without consuming key ([`FailingEntropy`] tests that path).

pub use keymix::{Entropy, OsEntropy, SeededEntropy};

/// An entropy source that always fails, to test the failure path.
#[derive(Debug, Default, Clone, Copy)]
pub struct FailingEntropy;

impl Entropy for FailingEntropy {
    fn try_fill(&mut self, _buf: &mut [u8]) -> Result<(), keymix::Error> {
        Err(keymix::Error::Randomness("test source always fails".into()))
    }
}

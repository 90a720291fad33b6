//! Where randomness comes from: the one [`Entropy`] trait of the workspace. keymix's own key
//! generation, the gateway's handshakes, indices, jitter and hybrid exchanges, and the KME
//! simulator's keys all draw through it, so every consumer can be made deterministic in tests by
//! injecting a [`SeededEntropy`], and production uses [`OsEntropy`] (`getrandom`).
//!
//! Every primitive also has a seeded entry point (`*_from_seed`, `*_with_randomness`) so that
//! published test vectors and our own known-answer vectors can be reproduced exactly.

use sha2::{Digest, Sha256};

use crate::Error;

/// A source of random bytes.
pub trait Entropy {
    /// Fills `buf` completely, or says why it cannot.
    fn try_fill(&mut self, buf: &mut [u8]) -> Result<(), Error>;

    /// Fills `buf` completely. Without randomness no key can be made safely and there is no
    /// sensible way to continue, so a failing source panics here; callers that can answer
    /// differently (the KME simulator answers 503) use [`Entropy::try_fill`].
    fn fill(&mut self, buf: &mut [u8]) {
        if let Err(e) = self.try_fill(buf) {
            panic!("{e}");
        }
    }

    /// A uniform `u32`.
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill(&mut b);
        u32::from_le_bytes(b)
    }

    /// A uniform `u64`.
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

/// The operating system's CSPRNG (`getrandom`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn try_fill(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        getrandom::fill(buf).map_err(|e| Error::Randomness(e.to_string()))
    }
}

/// A deterministic stream, SHA-256(label ‖ seed ‖ counter) blocks: for tests, simulations and
/// benches only. Never for keys that protect traffic.
#[derive(Debug, Clone)]
pub struct SeededEntropy {
    seed: u64,
    counter: u64,
}

impl SeededEntropy {
    /// A stream determined entirely by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { seed, counter: 0 }
    }
}

impl Entropy for SeededEntropy {
    fn try_fill(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        for chunk in buf.chunks_mut(32) {
            let block = Sha256::new()
                .chain_update(b"qgw test entropy (not secret)")
                .chain_update(self.seed.to_le_bytes())
                .chain_update(self.counter.to_le_bytes())
                .finalize();
            self.counter += 1;
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        Ok(())
    }
}

/// Fills an `N`-byte array from the operating system's CSPRNG.
pub(crate) fn os_random<const N: usize>() -> Result<[u8; N], Error> {
    let mut bytes = [0u8; N];
    OsEntropy.try_fill(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_streams_are_deterministic_and_seed_dependent() {
        let (mut a, mut b, mut c) = (
            SeededEntropy::new(5),
            SeededEntropy::new(5),
            SeededEntropy::new(6),
        );
        let (mut x, mut y, mut z) = ([0u8; 40], [0u8; 40], [0u8; 40]);
        a.fill(&mut x);
        b.fill(&mut y);
        c.fill(&mut z);
        assert_eq!(x, y);
        assert_ne!(x, z);
        assert_ne!(x[..32], x[8..40], "blocks differ");
    }

    #[test]
    fn os_entropy_fills_the_whole_buffer() {
        let mut buf = [0u8; 64];
        OsEntropy.fill(&mut buf);
        assert_ne!(buf, [0u8; 64]);
    }
}

//! Where the simulator's key bytes, key IDs and latency jitter come from. Injected into the
//! sans-IO engine so unit tests are deterministic; the server uses the OS source.

/// The entropy source failed; the request is answered 503 and no key is consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("entropy source failed")]
pub struct EntropyError;

/// A source of random bytes.
pub trait Entropy: Send {
    /// Fills `buf` completely.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError>;

    /// A uniform `u64`.
    fn next_u64(&mut self) -> Result<u64, EntropyError> {
        let mut b = [0u8; 8];
        self.fill(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// The operating system's CSPRNG (`getrandom`): what `qkd-kme-sim serve` uses.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        getrandom::fill(buf).map_err(|_| EntropyError)
    }
}

/// A seeded SplitMix64 stream. Deterministic and NOT secret: for tests only.
#[derive(Debug, Clone)]
pub struct SeededEntropy {
    state: u64,
}

impl SeededEntropy {
    /// A stream starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn step(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        for chunk in buf.chunks_mut(8) {
            let v = self.step().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

/// An entropy source that always fails, to test the failure path.
#[derive(Debug, Default, Clone, Copy)]
pub struct FailingEntropy;

impl Entropy for FailingEntropy {
    fn fill(&mut self, _buf: &mut [u8]) -> Result<(), EntropyError> {
        Err(EntropyError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_streams_repeat_and_differ_by_seed() {
        let (mut a, mut b, mut c) = (
            SeededEntropy::new(1),
            SeededEntropy::new(1),
            SeededEntropy::new(2),
        );
        let (mut x, mut y, mut z) = ([0u8; 13], [0u8; 13], [0u8; 13]);
        a.fill(&mut x).ok();
        b.fill(&mut y).ok();
        c.fill(&mut z).ok();
        assert_eq!(x, y);
        assert_ne!(x, z);
    }

    #[test]
    fn os_entropy_fills() {
        let mut buf = [0u8; 32];
        assert!(OsEntropy.fill(&mut buf).is_ok());
        assert_ne!(buf, [0u8; 32]);
    }
}

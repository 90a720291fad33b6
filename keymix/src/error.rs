//! keymix's one error type.

/// Everything that can go wrong in keymix. Peer-supplied values that fail validation are their own
/// kinds, so a caller can count them as peer misbehaviour rather than local faults.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A byte string had the wrong length for its type.
    #[error("{what}: expected {expected} bytes, got {actual}")]
    InvalidLength {
        /// Which value was being decoded.
        what: &'static str,
        /// The length the type requires.
        expected: usize,
        /// The length that was supplied.
        actual: usize,
    },
    /// An ML-KEM encapsulation key failed the FIPS 203 §7.2 modulus check.
    #[error("ML-KEM-768 encapsulation key failed the FIPS 203 modulus check")]
    InvalidEncapsulationKey,
    /// An ML-DSA signature did not verify.
    #[error("ML-DSA-65 signature verification failed")]
    BadSignature,
    /// An ML-DSA context string is longer than FIPS 204 allows (255 bytes).
    #[error("ML-DSA context string is {0} bytes; FIPS 204 allows at most 255")]
    ContextTooLong(usize),
    /// A QKD contribution was malformed (no key ID, or a key outside the accepted size range).
    #[error("QKD key material rejected: {0}")]
    InvalidQkdMaterial(&'static str),
    /// The declared key sources do not match the inputs actually supplied.
    #[error("key sources {declared} do not match the inputs supplied ({reason})")]
    SourceMismatch {
        /// The declared set, e.g. `x25519+mlkem+qkd`.
        declared: String,
        /// What is inconsistent.
        reason: &'static str,
    },
    /// An epoch was derived out of order: the ratchet only moves one epoch forward at a time.
    #[error("epoch {next} cannot follow chain key of epoch {previous}")]
    EpochOutOfOrder {
        /// The epoch of the chain key supplied.
        previous: u64,
        /// The epoch requested.
        next: u64,
    },
    /// A QKD key ID is not a UUID in its canonical form (ETSI GS QKD 014 §6.3).
    #[error("invalid QKD key_ID {0:?}: expected a UUID like bc490419-7d60-487f-adc1-4ddcc177c139")]
    InvalidKeyId(String),
    /// The operating system's random number generator failed.
    #[error("operating system randomness unavailable: {0}")]
    Randomness(String),
}

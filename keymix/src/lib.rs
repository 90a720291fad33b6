//! # keymix — qgw's hybrid key schedule
//!
//! qgw keeps WireGuard's Noise_IKpsk2 handshake and transport unchanged and, at every rekey, fills
//! its preshared-key slot with a fresh secret that keymix derives from
//!
//! 1. an ML-KEM-768 shared secret (FIPS 203) — [`mlkem`],
//! 2. optionally, a QKD key delivered by the site's KME over ETSI GS QKD 014 — [`QkdMaterial`],
//! 3. the previous epoch's chain key (a ratchet) — [`ChainKey`],
//!
//! mixed with HKDF-SHA-256 (RFC 5869) under a transcript hash that binds the ML-KEM key and
//! ciphertext, the QKD key IDs, both identities, the epoch number and the sources used —
//! [`combiner`], [`transcript`]. WireGuard then mixes that PSK with its X25519 results, so the
//! session keys stay secret if any ONE of X25519, ML-KEM or QKD holds.
//!
//! ML-DSA-65 (FIPS 204) signatures authenticate the hybrid exchange — [`mldsa`]. QKD key IDs are
//! typed ([`KeyId`], ETSI GS QKD 014 §6.3) from the KME's reply to the transcript, with one set of
//! limits ([`MAX_QKD_KEY_IDS`], [`MIN_QKD_KEY_LEN`], [`MAX_QKD_KEY_LEN`]) for every crate; every
//! `qgw v1` label is in [`labels`]; randomness comes through the one [`Entropy`] trait.
//!
//! All secrets live in [`Secret`] / [`SecretVec`]: zeroized on drop, redacted in `Debug`,
//! compared in constant time. keymix does no I/O and never reads the clock. (When epochs are due
//! is the gateway's hybrid state machine's business: docs/protocol.md §6.1.)
//!
//! The protocol, threat model and the combiner's exact byte layout are in `docs/design.md`.

pub mod combiner;
mod entropy;
mod error;
pub mod labels;
pub mod mldsa;
pub mod mlkem;
mod qkd;
mod secret;
mod sources;
pub mod transcript;

pub use combiner::{ChainKey, EpochKeys, Psk, derive_epoch};
pub use entropy::{Entropy, OsEntropy, SeededEntropy};
pub use error::Error;
pub use qkd::{
    KeyId, MAX_QKD_KEY_IDS, MAX_QKD_KEY_LEN, MIN_QKD_KEY_LEN, QkdMaterial, SEEN_KEY_IDS,
    SeenKeyIds, TextForm,
};
pub use secret::{Secret, SecretVec, ct_eq};
pub use sources::KeySources;
pub use transcript::{EpochContext, PeerIdentity};

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
//! ML-DSA-65 (FIPS 204) signatures authenticate the hybrid exchange — [`mldsa`]. The
//! [`schedule`] module decides, from an injected clock, when an epoch is due, which epochs may
//! still receive during a switch-over and when keys must be refused.
//!
//! All secrets live in [`Secret`] / [`SecretVec`]: zeroized on drop, redacted in `Debug`,
//! compared in constant time. keymix does no I/O and never reads the clock.
//!
//! The protocol, threat model and the combiner's exact byte layout are in `docs/design.md`.

pub mod combiner;
mod error;
pub mod labels;
pub mod mldsa;
pub mod mlkem;
mod qkd;
mod random;
pub mod schedule;
mod secret;
mod sources;
pub mod transcript;

pub use combiner::{ChainKey, EpochKeys, Psk, derive_epoch};
pub use error::Error;
pub use qkd::{MAX_QKD_KEY_IDS, MAX_QKD_KEY_LEN, MIN_QKD_KEY_LEN, QkdMaterial};
pub use schedule::{Received, Refusal, Role, RotationSchedule, ScheduleConfig};
pub use secret::{Secret, SecretVec, ct_eq};
pub use sources::KeySources;
pub use transcript::{EpochContext, PeerIdentity};

//! The epoch transcript hash: SHA-256 over everything public that an epoch's key must be bound to.
//!
//! ```text
//! th = SHA-256( "qgw v1 keymix transcript"
//!             ‖ u64be(epoch) ‖ u8(sources)
//!             ‖ lp(initiator identity) ‖ lp(responder identity)
//!             ‖ ek (1184 bytes)  ‖ ct (1088 bytes)
//!             ‖ u32be(#key IDs) ‖ lp(key ID 1) ‖ … )
//! lp(x) = u32be(len(x)) ‖ x
//! ```
//!
//! Binding the ML-KEM encapsulation key and ciphertext follows X-Wing (draft-connolly-cfrg-xwing-kem
//! §5.3, which binds the classical ciphertext and public key) and the KEM-combiner results of
//! Giacon, Heuer and Poettering ("KEM Combiners", PKC 2018): a combiner is IND-CCA if any one input
//! KEM is, provided the ciphertexts enter the key derivation. Identities, epoch and sources bind the
//! key to who, when and how, so a key can never be replayed into another pair, epoch or downgraded
//! source set. Every variable-length field is length-prefixed and fixed ones have fixed sizes, so
//! the encoding is injective.

use sha2::{Digest, Sha256};

use crate::mlkem::{Ciphertext, EncapsulationKey};
use crate::{Error, KeySources, QkdMaterial, labels};

/// Longest identity accepted (an X25519 key plus an ML-DSA key hash is 64 bytes).
pub const MAX_IDENTITY_LEN: usize = 256;

/// A peer's long-term identity as bound into the transcript. The hybrid protocol uses the
/// WireGuard static X25519 public key followed by SHA-256 of the ML-DSA-65 verifying key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    bytes: Vec<u8>,
}

impl PeerIdentity {
    /// Wraps 1..=256 public bytes.
    pub fn new(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.is_empty() || bytes.len() > MAX_IDENTITY_LEN {
            return Err(Error::InvalidLength {
                what: "peer identity (at most 256 bytes, not empty)",
                expected: MAX_IDENTITY_LEN,
                actual: bytes.len(),
            });
        }
        Ok(Self {
            bytes: bytes.to_vec(),
        })
    }

    /// The identity bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The public inputs of one epoch, in the roles of the exchange that made it (the initiator sent
/// `ek`, the responder answered with `ct`), so both peers build the same transcript.
#[derive(Clone, Copy, Debug)]
pub struct EpochContext<'a> {
    /// Epoch number, starting at 1 (0 is the genesis chain key).
    pub epoch: u64,
    /// The exchange's initiator (sent the encapsulation key and, with QKD, the key IDs).
    pub initiator: &'a PeerIdentity,
    /// The exchange's responder (sent the ciphertext).
    pub responder: &'a PeerIdentity,
    /// The initiator's ephemeral ML-KEM-768 encapsulation key.
    pub mlkem_ek: &'a EncapsulationKey,
    /// The responder's ML-KEM-768 ciphertext.
    pub mlkem_ct: &'a Ciphertext,
}

/// The transcript hash of an epoch (public).
pub fn transcript_hash(
    context: &EpochContext<'_>,
    sources: KeySources,
    qkd: Option<&QkdMaterial>,
) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(labels::TRANSCRIPT);
    hash.update(context.epoch.to_be_bytes());
    hash.update([sources.bits()]);
    update_prefixed(&mut hash, context.initiator.as_bytes());
    update_prefixed(&mut hash, context.responder.as_bytes());
    hash.update(context.mlkem_ek.as_bytes());
    hash.update(context.mlkem_ct.as_bytes());
    let key_ids = qkd.map(QkdMaterial::key_ids).unwrap_or_default();
    hash.update(u32_len(key_ids.len()).to_be_bytes());
    for id in key_ids {
        update_prefixed(&mut hash, id.text().as_bytes());
    }
    hash.finalize().into()
}

fn update_prefixed(hash: &mut Sha256, bytes: &[u8]) {
    hash.update(u32_len(bytes.len()).to_be_bytes());
    hash.update(bytes);
}

/// Lengths here are bounded far below `u32::MAX` by the constructors above.
pub(crate) fn u32_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

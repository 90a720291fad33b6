//! A QKD contribution to one epoch: the key ID(s) the master SAE got from its KME with ETSI GS QKD
//! 014 `enc_keys` (§5.2) and the slave fetched with `dec_keys` (§5.3), and the key bytes.
//!
//! The IDs are public (they travel to the peer in the clear and are bound into the transcript);
//! the key bytes are a [`SecretVec`].

use core::fmt;

use crate::{Error, SecretVec};

mod key_id;
mod seen;

pub use key_id::{KeyId, TextForm};
pub use seen::SeenKeyIds;

// The one set of QKD limits: keymix bounds the transcript and the combiner input with them, the
// hybrid wire format sizes its Init with them, and qkd-link's ETSI 014 parser refuses larger keys.

/// Fewest key bytes accepted: 256 bits, so a Grover-equipped attacker still faces 2^128 work.
pub const MIN_QKD_KEY_LEN: usize = 32;
/// Most key bytes accepted per epoch (8192 bits; ETSI 014 KMEs commonly cap `max_key_size` lower).
pub const MAX_QKD_KEY_LEN: usize = 1024;
/// Most key IDs per epoch (a large key may be assembled from several KME keys).
pub const MAX_QKD_KEY_IDS: usize = 8;
/// Key IDs remembered per peer (and per prefetch pool) to refuse a reused key.
pub const SEEN_KEY_IDS: usize = 4096;

/// The key ID(s) and concatenated key bytes from the KME for one epoch.
pub struct QkdMaterial {
    key_ids: Vec<KeyId>,
    key: SecretVec,
}

impl QkdMaterial {
    /// Validates and wraps a QKD contribution: 1..=8 distinct key IDs and 32..=1024 key bytes.
    pub fn new(key_ids: Vec<KeyId>, key: SecretVec) -> Result<Self, Error> {
        if key_ids.is_empty() || key_ids.len() > MAX_QKD_KEY_IDS {
            return Err(Error::InvalidQkdMaterial("need 1 to 8 key IDs"));
        }
        let distinct = key_ids
            .iter()
            .enumerate()
            .all(|(i, a)| key_ids[..i].iter().all(|b| a != b));
        if !distinct {
            return Err(Error::InvalidQkdMaterial("key IDs must be distinct"));
        }
        if !(MIN_QKD_KEY_LEN..=MAX_QKD_KEY_LEN).contains(&key.len()) {
            return Err(Error::InvalidQkdMaterial(
                "key must be 32 to 1024 bytes (256 to 8192 bits)",
            ));
        }
        Ok(Self { key_ids, key })
    }

    /// The key IDs, in the order their keys are concatenated.
    pub fn key_ids(&self) -> &[KeyId] {
        &self.key_ids
    }

    /// The key bytes.
    pub fn key(&self) -> &SecretVec {
        &self.key
    }
}

impl fmt::Debug for QkdMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QkdMaterial")
            .field("key_ids", &self.key_ids)
            .field("key", &self.key)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(len: usize) -> SecretVec {
        SecretVec::new(vec![0x55; len])
    }

    fn id(n: u8) -> KeyId {
        KeyId::from_random_bytes([n; 16])
    }

    #[test]
    fn accepts_a_uuid_and_a_256_bit_key() {
        let ids = vec![KeyId::parse("bc490419-7d60-487f-adc1-4ddcc177c139").expect("uuid")];
        let material = QkdMaterial::new(ids, key(32)).expect("valid");
        assert_eq!(material.key_ids().len(), 1);
        assert!(
            !format!("{material:?}").contains("85"),
            "no key bytes in Debug"
        );
    }

    #[test]
    fn rejects_bad_shapes() {
        let one = || vec![id(1)];
        assert!(QkdMaterial::new(vec![], key(32)).is_err());
        assert!(QkdMaterial::new((0..9).map(id).collect(), key(32)).is_err());
        assert!(QkdMaterial::new((0..8).map(id).collect(), key(32)).is_ok());
        assert!(QkdMaterial::new(vec![id(1), id(1)], key(32)).is_err());
        assert!(QkdMaterial::new(one(), key(31)).is_err());
        assert!(QkdMaterial::new(one(), key(1025)).is_err());
        assert!(QkdMaterial::new(one(), key(1024)).is_ok());
    }
}

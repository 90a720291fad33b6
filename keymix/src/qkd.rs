//! A QKD contribution to one epoch: the key ID(s) the master SAE got from its KME with ETSI GS QKD
//! 014 `enc_keys` (§5.2) and the slave fetched with `dec_keys` (§5.3), and the key bytes.
//!
//! The IDs are public (they travel to the peer in the clear and are bound into the transcript);
//! the key bytes are a [`SecretVec`].

use core::fmt;

use crate::{Error, SecretVec};

/// Fewest key bytes accepted: 256 bits, so a Grover-equipped attacker still faces 2^128 work.
pub const MIN_QKD_KEY_LEN: usize = 32;
/// Most key bytes accepted per epoch (8192 bits; ETSI 014 KMEs commonly cap `max_key_size` lower).
pub const MAX_QKD_KEY_LEN: usize = 1024;
/// Most key IDs per epoch (a large key may be assembled from several KME keys).
pub const MAX_QKD_KEY_IDS: usize = 8;
/// Longest key ID accepted (ETSI 014 §6.3 uses UUIDs, 36 characters; leave room for vendors).
pub const MAX_QKD_KEY_ID_LEN: usize = 128;

/// The key ID(s) and concatenated key bytes from the KME for one epoch.
pub struct QkdMaterial {
    key_ids: Vec<String>,
    key: SecretVec,
}

impl QkdMaterial {
    /// Validates and wraps a QKD contribution. IDs must be 1..=128 printable ASCII characters
    /// (ETSI 014 key IDs are UUIDs), there must be 1..=8 of them, and the key 32..=1024 bytes.
    pub fn new(key_ids: Vec<String>, key: SecretVec) -> Result<Self, Error> {
        if key_ids.is_empty() || key_ids.len() > MAX_QKD_KEY_IDS {
            return Err(Error::InvalidQkdMaterial("need 1 to 8 key IDs"));
        }
        let id_ok = |id: &String| {
            (1..=MAX_QKD_KEY_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
        };
        if !key_ids.iter().all(id_ok) {
            return Err(Error::InvalidQkdMaterial(
                "key IDs must be 1 to 128 printable ASCII characters",
            ));
        }
        if !(MIN_QKD_KEY_LEN..=MAX_QKD_KEY_LEN).contains(&key.len()) {
            return Err(Error::InvalidQkdMaterial(
                "key must be 32 to 1024 bytes (256 to 8192 bits)",
            ));
        }
        Ok(Self { key_ids, key })
    }

    /// The key IDs, in the order their keys are concatenated.
    pub fn key_ids(&self) -> &[String] {
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

    #[test]
    fn accepts_a_uuid_and_a_256_bit_key() {
        let ids = vec!["bc490419-7d60-487f-adc1-4ddcc177c139".to_string()];
        let material = QkdMaterial::new(ids, key(32)).expect("valid");
        assert_eq!(material.key_ids().len(), 1);
        assert!(
            !format!("{material:?}").contains("85"),
            "no key bytes in Debug"
        );
    }

    #[test]
    fn rejects_bad_shapes() {
        let id = || vec!["id".to_string()];
        assert!(QkdMaterial::new(vec![], key(32)).is_err());
        assert!(QkdMaterial::new(vec!["x".into(); 9], key(32)).is_err());
        assert!(QkdMaterial::new(vec!["has space".into()], key(32)).is_err());
        assert!(QkdMaterial::new(vec![String::new()], key(32)).is_err());
        assert!(QkdMaterial::new(vec!["x".repeat(129)], key(32)).is_err());
        assert!(QkdMaterial::new(id(), key(31)).is_err());
        assert!(QkdMaterial::new(id(), key(1025)).is_err());
        assert!(QkdMaterial::new(id(), key(1024)).is_ok());
    }
}

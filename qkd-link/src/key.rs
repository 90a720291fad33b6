//! QKD key material as delivered by a KME (ETSI GS QKD 014 §6.3, "Key container").
//!
//! A [`QkdKey`] owns its secret bytes: zeroized on drop, redacted in `Debug`, no `Clone`, no
//! `Display`, no `Serialize`. The bytes are read through [`QkdKey::expose`] only, so every place a
//! key leaves its container can be found with one search. Moving a key out of the prefetch pool
//! hands over the only copy: a key handed out once is gone.

use core::fmt;

use zeroize::Zeroizing;

use crate::ids::KeyId;

/// One key: its ID (public, sent to the peer SAE) and its secret bytes.
pub struct QkdKey {
    id: KeyId,
    secret: Zeroizing<Vec<u8>>,
}

impl QkdKey {
    /// Wraps key bytes that are already in a zeroizing buffer.
    pub fn new(id: KeyId, secret: Zeroizing<Vec<u8>>) -> Self {
        Self { id, secret }
    }

    /// The key ID, which the master sends to the slave SAE.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The secret bytes. Copy them only into another zeroizing container.
    pub fn expose(&self) -> &[u8] {
        &self.secret
    }

    /// Key length in bits (ETSI sizes are in bits, §6.1).
    pub fn len_bits(&self) -> usize {
        self.secret.len() * 8
    }
}

impl fmt::Debug for QkdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QkdKey")
            .field("id", &self.id)
            .field("bits", &self.len_bits())
            .field("key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = QkdKey::new(
            KeyId::from_random_bytes([1; 16]),
            Zeroizing::new(vec![0xAB; 32]),
        );
        let text = format!("{key:?}");
        assert!(text.contains("<redacted>"));
        assert!(text.contains("bits: 256"));
        assert!(!text.to_lowercase().contains("ab, ab"));
        assert!(!text.contains("171"));
        assert_eq!(key.expose().len(), 32);
    }
}

//! The keys a peer pair derives from its WireGuard static keys (docs/protocol.md §3): `K_pair`,
//! the MAC key that makes forged hybrid datagrams cheap to drop, and `pair_id`, which locates the
//! peer without trial MACs; and each side's transcript identity.

use core::fmt;

use keymix::PeerIdentity;
use keymix::mldsa::VerifyingKey;
use sha2::{Digest, Sha256};
use x25519_dalek::StaticSecret;

use keymix::labels;

use super::constants::MAC_LEN;
use crate::proto::crypto;
use crate::proto::secret::Secret;

/// `K_pair` and `pair_id` of one peer pair.
pub struct PairKeys {
    mac_key: Secret<32>,
    pair_id: [u8; 8],
}

impl PairKeys {
    /// Derives both from `DH(S_priv, S_peer_pub)`, which is the same on both sides. `None` when
    /// the peer's public key is a low-order point (the DH result would be all zero).
    pub fn derive(local_private: &StaticSecret, peer_public: &[u8; 32]) -> Option<Self> {
        let shared = crypto::dh(local_private, peer_public).ok()?;
        let mac_key = Secret::new(crypto::hash(&[labels::HYBRID_PAIR_KEY, shared.expose()]));
        let id_hash = crypto::hash(&[labels::HYBRID_PAIR_ID, shared.expose()]);
        let mut pair_id = [0u8; 8];
        pair_id.copy_from_slice(&id_hash[..8]);
        Some(Self { mac_key, pair_id })
    }

    /// The 8-byte locator carried in every fragment header.
    pub fn pair_id(&self) -> &[u8; 8] {
        &self.pair_id
    }

    /// Keyed BLAKE2s-128 over `parts`.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        crypto::mac(self.mac_key.expose(), parts)
    }
}

impl fmt::Debug for PairKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PairKeys {{ pair_id: {:02x?}, mac_key: <redacted> }}",
            self.pair_id
        )
    }
}

/// A side's transcript identity `S_pub ‖ SHA-256(vk)` (64 bytes, §3).
pub fn identity(static_public: &[u8; 32], verifying_key: &VerifyingKey) -> PeerIdentity {
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(static_public);
    bytes[32..].copy_from_slice(&Sha256::digest(verifying_key.as_bytes()));
    PeerIdentity::new(&bytes).unwrap_or_else(|_| unreachable!("64 bytes is a valid identity"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use x25519_dalek::PublicKey;

    #[test]
    fn both_sides_derive_the_same_pair_keys_and_others_do_not() {
        let a = StaticSecret::from([1u8; 32]);
        let b = StaticSecret::from([2u8; 32]);
        let c = StaticSecret::from([3u8; 32]);
        let pub_of = |s: &StaticSecret| PublicKey::from(s).to_bytes();
        let ab = PairKeys::derive(&a, &pub_of(&b)).expect("valid");
        let ba = PairKeys::derive(&b, &pub_of(&a)).expect("valid");
        let ac = PairKeys::derive(&a, &pub_of(&c)).expect("valid");
        assert_eq!(ab.pair_id(), ba.pair_id());
        assert_eq!(ab.mac(&[b"x"]), ba.mac(&[b"x"]));
        assert_ne!(ab.pair_id(), ac.pair_id());
        assert_ne!(ab.mac(&[b"x"]), ac.mac(&[b"x"]));
        assert!(format!("{ab:?}").contains("<redacted>"));
    }

    #[test]
    fn low_order_peer_keys_are_refused() {
        assert!(PairKeys::derive(&StaticSecret::from([1u8; 32]), &[0u8; 32]).is_none());
    }
}

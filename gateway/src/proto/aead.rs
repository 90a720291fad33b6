//! The data-path AEAD (whitepaper §5.4.6: `AEAD(T_send, counter, P, ε)`), behind one small trait so
//! the backend is chosen in one place, by measurement (`benches/aead.rs`, docs/gateway-decisions.md).
//!
//! Both backends seal and open in place in the caller's buffer, allocate nothing and take `&self`,
//! so one key can be used from several threads at once.

use chacha20poly1305::aead::{AeadInOut, KeyInit};

use super::constants::{KEY_LEN, TAG_LEN};
use super::crypto::nonce;
use super::secret::Secret;
use crate::error::DropReason;

/// ChaCha20-Poly1305 with WireGuard's nonce (32 zero bits || 64-bit LE counter) and empty AAD.
pub trait DataAead: Send + Sync + Sized {
    /// Expands `key`.
    fn new(key: &Secret<KEY_LEN>) -> Self;
    /// Seals `buf` in place, returns the tag.
    fn seal(&self, counter: u64, buf: &mut [u8]) -> [u8; TAG_LEN];
    /// Opens `buf` in place if `tag` verifies; on failure `buf`'s contents are unspecified.
    fn open(&self, counter: u64, buf: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<(), DropReason>;
}

/// The backend the data path uses (chosen by `benches/aead.rs`; see docs/gateway-decisions.md).
pub type DataCipher = RingChaCha;

/// `ring`'s ChaCha20-Poly1305 (assembly, SIMD).
pub struct RingChaCha(ring::aead::LessSafeKey);

impl std::fmt::Debug for RingChaCha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RingChaCha(<redacted>)")
    }
}

impl DataAead for RingChaCha {
    fn new(key: &Secret<KEY_LEN>) -> Self {
        let Ok(k) = ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, key.expose())
        else {
            unreachable!("ChaCha20-Poly1305 takes exactly 32-byte keys")
        };
        Self(ring::aead::LessSafeKey::new(k))
    }

    fn seal(&self, counter: u64, buf: &mut [u8]) -> [u8; TAG_LEN] {
        let n = ring::aead::Nonce::assume_unique_for_key(nonce(counter));
        match self
            .0
            .seal_in_place_separate_tag(n, ring::aead::Aad::empty(), buf)
        {
            Ok(tag) => {
                let mut t = [0u8; TAG_LEN];
                t.copy_from_slice(tag.as_ref());
                t
            }
            Err(_) => unreachable!("packets are far below ChaCha20's 256 GiB limit"),
        }
    }

    fn open(&self, counter: u64, buf: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<(), DropReason> {
        let n = ring::aead::Nonce::assume_unique_for_key(nonce(counter));
        let tag = ring::aead::Tag::from(*tag);
        self.0
            .open_in_place_separate_tag(n, ring::aead::Aad::empty(), tag, buf, 0..)
            .map(|_| ())
            .map_err(|_| DropReason::DecryptFailed)
    }
}

/// RustCrypto's portable ChaCha20-Poly1305 (kept as the reference the tests cross-check against).
pub struct RustCryptoChaCha(chacha20poly1305::ChaCha20Poly1305);

impl std::fmt::Debug for RustCryptoChaCha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RustCryptoChaCha(<redacted>)")
    }
}

impl DataAead for RustCryptoChaCha {
    fn new(key: &Secret<KEY_LEN>) -> Self {
        Self(chacha20poly1305::ChaCha20Poly1305::new(key.expose().into()))
    }

    fn seal(&self, counter: u64, buf: &mut [u8]) -> [u8; TAG_LEN] {
        match self
            .0
            .encrypt_inout_detached(&nonce(counter).into(), &[], buf.into())
        {
            Ok(tag) => tag.into(),
            Err(_) => unreachable!("packets are far below ChaCha20's 256 GiB limit"),
        }
    }

    fn open(&self, counter: u64, buf: &mut [u8], tag: &[u8; TAG_LEN]) -> Result<(), DropReason> {
        self.0
            .decrypt_inout_detached(&nonce(counter).into(), &[], buf.into(), &(*tag).into())
            .map_err(|_| DropReason::DecryptFailed)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 8439 §2.8.2 AEAD test vector, adapted: WireGuard uses empty AAD, so only the
    /// cross-backend agreement and round trips are checked here, over arbitrary inputs.
    #[test]
    fn backends_agree_and_round_trip() {
        let key = Secret::new([0x80u8; 32]);
        let (r, c) = (RingChaCha::new(&key), RustCryptoChaCha::new(&key));
        for len in [0usize, 1, 15, 16, 17, 64, 1420, 1500] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let (mut a, mut b) = (plain.clone(), plain.clone());
            let (ta, tb) = (r.seal(len as u64, &mut a), c.seal(len as u64, &mut b));
            assert_eq!((&a, ta), (&b, tb), "len {len}");
            c.open(len as u64, &mut a, &ta).unwrap();
            r.open(len as u64, &mut b, &tb).unwrap();
            assert_eq!((&a, &b), (&plain, &plain));
        }
    }

    /// The empty plaintext (a keepalive) yields just the tag, and a wrong counter fails.
    #[test]
    fn keepalive_tag_depends_on_counter() {
        let key = Secret::new([1u8; 32]);
        let r = RingChaCha::new(&key);
        let t0 = r.seal(0, &mut []);
        assert_ne!(t0, r.seal(1, &mut []));
        assert!(r.open(0, &mut [], &t0).is_ok());
        assert_eq!(r.open(1, &mut [], &t0), Err(DropReason::DecryptFailed));
    }

    proptest! {
        #[test]
        fn any_flip_is_rejected(data in proptest::collection::vec(any::<u8>(), 1..200), at in any::<usize>()) {
            let r = RingChaCha::new(&Secret::new([9u8; 32]));
            let mut buf = data.clone();
            let tag = r.seal(3, &mut buf);
            let i = at % buf.len();
            buf[i] ^= 1;
            prop_assert!(r.open(3, &mut buf, &tag).is_err());
        }
    }
}

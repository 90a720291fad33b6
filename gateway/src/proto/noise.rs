//! The Noise symmetric state `(C, H)` of WireGuard's handshake and the operations each token of
//! `Noise_IKpsk2` performs on it (whitepaper §5.4, §5.4.2–§5.4.3; Noise spec §5.2 "SymmetricState").
//!
//! `C` (chaining key) is secret; `H` (transcript hash) is public but is also wiped on drop.

use x25519_dalek::StaticSecret;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::constants::{CONSTRUCTION, IDENTIFIER, KEY_LEN, TAG_LEN};
use super::crypto::{aead_open, aead_seal, dh, hash, kdf1, kdf2, kdf3};
use super::secret::{Psk, Secret};
use crate::error::DropReason;

/// `(C, H)` after the pre-message: `C = HASH(CONSTRUCTION)`, `H = HASH(HASH(C || IDENTIFIER) ||
/// S_r_pub)` where `S_r_pub` is the responder's static public key.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SymmetricState {
    ck: Secret<KEY_LEN>,
    h: [u8; KEY_LEN],
}

impl Clone for SymmetricState {
    /// An explicit copy of the chaining key (a handshake keeps its state to finish later).
    fn clone(&self) -> Self {
        Self {
            ck: self.ck.duplicate(),
            h: self.h,
        }
    }
}

impl std::fmt::Debug for SymmetricState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymmetricState(<redacted>)")
    }
}

impl SymmetricState {
    /// Initial state for a handshake towards `responder_static` (§5.4.2 first three lines).
    pub fn new(responder_static: &[u8; KEY_LEN]) -> Self {
        let ck = hash(&[CONSTRUCTION]);
        let h0 = hash(&[&ck, IDENTIFIER]);
        let h = hash(&[&h0, responder_static]);
        Self {
            ck: Secret::new(ck),
            h,
        }
    }

    /// `H = HASH(H || data)`.
    pub fn mix_hash(&mut self, data: &[u8]) {
        self.h = hash(&[&self.h, data]);
    }

    /// Token `e`: `C = KDF1(C, E_pub)`, `H = HASH(H || E_pub)`.
    pub fn mix_ephemeral(&mut self, e_pub: &[u8; KEY_LEN]) {
        self.ck = kdf1(self.ck.expose(), e_pub);
        self.mix_hash(e_pub);
    }

    /// Tokens `es`/`ss` before a payload: `(C, κ) = KDF2(C, DH(..))`; returns `κ`.
    pub fn mix_dh_key(
        &mut self,
        private: &StaticSecret,
        public: &[u8; KEY_LEN],
    ) -> Result<Secret<KEY_LEN>, DropReason> {
        let shared = dh(private, public)?;
        Ok(self.mix_key2(&shared))
    }

    /// `(C, κ) = KDF2(C, input)`; returns `κ`.
    pub fn mix_key2(&mut self, input: &Secret<KEY_LEN>) -> Secret<KEY_LEN> {
        let (ck, k) = kdf2(self.ck.expose(), input.expose());
        self.ck = ck;
        k
    }

    /// Tokens `ee`/`se` in the response: `C = KDF1(C, DH(..))`.
    pub fn mix_dh(
        &mut self,
        private: &StaticSecret,
        public: &[u8; KEY_LEN],
    ) -> Result<(), DropReason> {
        let shared = dh(private, public)?;
        self.ck = kdf1(self.ck.expose(), shared.expose());
        Ok(())
    }

    /// Token `psk`: `(C, τ, κ) = KDF3(C, Q)`, `H = HASH(H || τ)`; returns `κ`.
    pub fn mix_psk(&mut self, psk: &Psk) -> Secret<KEY_LEN> {
        let (ck, tau, k) = kdf3(self.ck.expose(), psk.expose());
        self.ck = ck;
        self.mix_hash(tau.expose());
        k
    }

    /// `msg = AEAD(κ, 0, plain, H)`, `H = HASH(H || msg)`: seals `buf` in place, returns the tag.
    pub fn encrypt_and_hash(&mut self, key: &Secret<KEY_LEN>, buf: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = aead_seal(key, 0, &self.h, buf);
        self.h = hash(&[&self.h, buf, &tag]);
        tag
    }

    /// Inverse of [`Self::encrypt_and_hash`]: `sealed` is ciphertext || tag; opens into `out`.
    pub fn decrypt_and_hash(
        &mut self,
        key: &Secret<KEY_LEN>,
        sealed: &[u8],
        out: &mut [u8],
    ) -> Result<(), DropReason> {
        let (ct, tag) = sealed
            .split_at_checked(out.len())
            .ok_or(DropReason::Malformed)?;
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| DropReason::Malformed)?;
        out.copy_from_slice(ct);
        aead_open(key, 0, &self.h, out, tag)?;
        self.h = hash(&[&self.h, sealed]);
        Ok(())
    }

    /// Transport keys (§5.4.5): `(T_1, T_2) = KDF2(C, ε)`; the initiator sends with `T_1`.
    pub fn split(&self) -> (Secret<KEY_LEN>, Secret<KEY_LEN>) {
        kdf2(self.ck.expose(), &[])
    }

    /// The current transcript hash `H` (tests and the hybrid layer's channel binding).
    pub fn transcript(&self) -> &[u8; KEY_LEN] {
        &self.h
    }
}

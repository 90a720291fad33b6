//! The hybrid combiner: one epoch's WireGuard preshared key from ML-KEM-768, an optional QKD key and
//! the previous epoch's chain key, with HKDF-SHA-256 (RFC 5869).
//!
//! ```text
//! prk        = HKDF-Extract(salt = chain[n-1],
//!                           IKM  = "qgw v1 keymix ikm" ‖ u8(sources) ‖ K_mlkem (32)
//!                                  ‖ u32be(len(K_qkd)) ‖ K_qkd)          -- K_qkd empty without QKD
//! psk[n]     = HKDF-Expand(prk, "qgw v1 keymix psk"   ‖ th, 32)
//! chain[n]   = HKDF-Expand(prk, "qgw v1 keymix chain" ‖ th, 32)
//! chain[0]   = HKDF-Extract(salt = "qgw v1 keymix genesis", IKM = 0x00 | 0x01 ‖ static PSK)
//! ```
//! `th` is the [transcript hash](crate::transcript) over identities, epoch, sources, the ML-KEM
//! encapsulation key and ciphertext and the QKD key IDs.
//!
//! Why this shape (the literature it follows):
//! * Secret inputs are concatenated, fixed-length or length-prefixed, into one KDF input, as in
//!   draft-ietf-tls-hybrid-design §3.2 ("concatenation" combiner) and X-Wing
//!   (draft-connolly-cfrg-xwing-kem §5.3). HKDF-Extract is a dual PRF (Bellare, "New proofs for
//!   NMAC and HMAC"; Bhargavan et al. on TLS 1.3's key schedule), so `prk` is pseudorandom if the
//!   salt (the chain key) OR the IKM's ML-KEM secret OR its QKD key is unknown to the attacker.
//! * Binding ciphertexts and keys through `th` (Giacon–Heuer–Poettering, "KEM Combiners", PKC
//!   2018) keeps the combination IND-CCA when only one component is.
//! * The `sources` byte in both the IKM and `th`, and the explicit QKD length, make an epoch without
//!   QKD derive a different key from one with it, whatever the QKD key's value (no downgrade by
//!   omission, no confusion of "absent" with "empty").
//! * The chain key is a ratchet (like Signal's root key or Rosenpass' chaining key): `psk[n]` and
//!   `chain[n]` are independent HKDF-Expand outputs, so a leaked PSK reveals nothing about the next
//!   epoch, and a leaked chain key alone does not reveal the next epoch while its ML-KEM secret or
//!   QKD key stays unknown.
//! * WireGuard's Noise_IKpsk2 then mixes `psk[n]` with its X25519 results (`psk` token,
//!   whitepaper §5.4.3), which is how X25519 joins the three-way hybrid.

use core::fmt;

use hkdf::Hkdf;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::mlkem::SharedSecret;
use crate::transcript::{EpochContext, transcript_hash, u32_len};
use crate::{Error, KeySources, QkdMaterial, Secret, labels};

/// Length of the PSK and chain keys.
pub const KEY_LEN: usize = 32;
/// Length of the public tags ([`ChainKey::tag`], [`EpochKeys::confirmation`]).
pub const TAG_LEN: usize = 16;

/// The WireGuard preshared key of one epoch (fills Noise_IKpsk2's `psk` slot).
pub type Psk = Secret<KEY_LEN>;

/// The ratchet state between epochs: the chain key of the epoch it belongs to.
pub struct ChainKey {
    epoch: u64,
    key: Secret<KEY_LEN>,
}

/// The domain-separation labels a derivation uses; a parameter only so tests can show that
/// changing any label changes the output.
#[derive(Clone, Copy)]
pub(crate) struct Labels {
    pub(crate) ikm: &'static [u8],
    pub(crate) psk: &'static [u8],
    pub(crate) chain: &'static [u8],
}

pub(crate) const LABELS: Labels = Labels {
    ikm: labels::IKM,
    psk: labels::PSK,
    chain: labels::CHAIN,
};

/// Everything one epoch derives.
#[derive(Debug)]
pub struct EpochKeys {
    /// The epoch number.
    pub epoch: u64,
    /// The preshared key for this epoch's WireGuard handshake.
    pub psk: Psk,
    /// The chain key the next epoch's derivation starts from.
    pub chain: ChainKey,
    /// The key sources actually used.
    pub sources: KeySources,
    /// The transcript hash (public): what the hybrid protocol signs and the audit log records.
    pub transcript_hash: [u8; 32],
}

impl ChainKey {
    /// The chain key before the first epoch. A static preshared key, if the peers share one, is
    /// mixed in here, so it protects every later epoch as a fourth, optional secret.
    pub fn genesis(static_psk: Option<&Secret<KEY_LEN>>) -> Self {
        let mut ikm = Vec::with_capacity(1 + KEY_LEN);
        match static_psk {
            Some(psk) => {
                ikm.push(1);
                ikm.extend_from_slice(psk.expose());
            }
            None => ikm.push(0),
        }
        let ikm = crate::SecretVec::new(ikm);
        let (prk, _) = Hkdf::<Sha256>::extract(Some(labels::GENESIS), ikm.expose());
        let mut key: [u8; KEY_LEN] = prk.into();
        Self {
            epoch: 0,
            key: Secret::from_mut(&mut key),
        }
    }

    /// Rebuilds a chain key from stored bytes (e.g. a known-answer vector).
    pub fn from_secret(epoch: u64, key: Secret<KEY_LEN>) -> Self {
        Self { epoch, key }
    }

    /// The epoch this chain key closes.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The key bytes (for known-answer tests).
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        self.key.expose()
    }

    /// A public tag naming this chain key: `HMAC-SHA-256(chain, "qgw v1 chain tag")[..16]`. A peer
    /// sends it so the other side can check both hold the same ratchet state; HMAC is a PRF, so
    /// the tag reveals nothing about the key.
    pub fn tag(&self) -> [u8; TAG_LEN] {
        hmac_tag(self.key.expose(), &[labels::CHAIN_TAG])
    }
}

impl EpochKeys {
    /// The key-confirmation tag `HMAC-SHA-256(psk, "qgw v1 confirm" ‖ th)[..16]`: equal on both
    /// sides exactly when they derived the same PSK for the same transcript.
    pub fn confirmation(&self) -> [u8; TAG_LEN] {
        hmac_tag(self.psk.expose(), &[labels::CONFIRM, &self.transcript_hash])
    }
}

fn hmac_tag(key: &[u8; KEY_LEN], parts: &[&[u8]]) -> [u8; TAG_LEN] {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    for part in parts {
        mac.update(part);
    }
    let full: [u8; 32] = mac.finalize().into_bytes().into();
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&full[..TAG_LEN]);
    tag
}

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainKey {{ epoch: {}, key: <redacted> }}", self.epoch)
    }
}

/// Derives epoch `context.epoch` from the previous chain key, the ML-KEM shared secret and the
/// optional QKD material. `sources` must state what is supplied: ML-KEM always, QKD exactly when
/// `qkd` is `Some`. The epoch must follow `previous` directly.
pub fn derive_epoch(
    previous: &ChainKey,
    context: &EpochContext<'_>,
    sources: KeySources,
    mlkem_shared: &SharedSecret,
    qkd: Option<&QkdMaterial>,
) -> Result<EpochKeys, Error> {
    derive_epoch_with(LABELS, previous, context, sources, mlkem_shared, qkd)
}

pub(crate) fn derive_epoch_with(
    labels: Labels,
    previous: &ChainKey,
    context: &EpochContext<'_>,
    sources: KeySources,
    mlkem_shared: &SharedSecret,
    qkd: Option<&QkdMaterial>,
) -> Result<EpochKeys, Error> {
    if sources.has_qkd() != qkd.is_some() {
        return Err(Error::SourceMismatch {
            declared: sources.to_string(),
            reason: if qkd.is_some() {
                "QKD material supplied but not declared"
            } else {
                "QKD declared but no QKD material supplied"
            },
        });
    }
    if Some(context.epoch) != previous.epoch.checked_add(1) {
        return Err(Error::EpochOutOfOrder {
            previous: previous.epoch,
            next: context.epoch,
        });
    }
    let th = transcript_hash(context, sources, qkd);

    let qkd_key: &[u8] = qkd.map(|m| m.key().expose()).unwrap_or_default();
    let mut ikm = Vec::with_capacity(labels.ikm.len() + 1 + KEY_LEN + 4 + qkd_key.len());
    ikm.extend_from_slice(labels.ikm);
    ikm.push(sources.bits());
    ikm.extend_from_slice(mlkem_shared.expose());
    ikm.extend_from_slice(&u32_len(qkd_key.len()).to_be_bytes());
    ikm.extend_from_slice(qkd_key);
    let ikm = crate::SecretVec::new(ikm);

    let (_, hkdf) = Hkdf::<Sha256>::extract(Some(previous.key.expose()), ikm.expose());
    let psk = expand(&hkdf, labels.psk, &th);
    let chain = ChainKey {
        epoch: context.epoch,
        key: expand(&hkdf, labels.chain, &th),
    };
    Ok(EpochKeys {
        epoch: context.epoch,
        psk,
        chain,
        sources,
        transcript_hash: th,
    })
}

fn expand(hkdf: &Hkdf<Sha256>, label: &[u8], th: &[u8; 32]) -> Secret<KEY_LEN> {
    let mut out = [0u8; KEY_LEN];
    // 32 bytes is far below HKDF-SHA-256's 255·32-byte limit, so expand cannot fail.
    let expanded = hkdf.expand_multi_info(&[label, th], &mut out);
    debug_assert!(expanded.is_ok());
    Secret::from_mut(&mut out)
}

#[cfg(test)]
mod tests;

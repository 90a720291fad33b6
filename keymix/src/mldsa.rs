//! ML-DSA-65 (FIPS 204) behind small typed wrappers over `libcrux-ml-dsa`.
//!
//! * [`SigningKey`] is secret: it keeps the 32-byte seed `ξ` it was expanded from (FIPS 204
//!   Algorithm 6, `ML-DSA.KeyGen_internal`) so that key files hold 32 bytes, and the expanded key;
//!   both are zeroized on drop and redacted in `Debug`.
//! * [`VerifyingKey`] and [`Signature`] are public and parsed from peer bytes through checked
//!   constructors (length only: FIPS 204 `pkDecode`/`sigDecode` run inside verification, and a
//!   malformed encoding fails verification rather than panicking).
//! * Signing is the "pure" external interface of FIPS 204 Algorithm 2 (`ML-DSA.Sign`) with a
//!   context string (≤ 255 bytes) for domain separation, hedged by default (fresh `rnd`, §3.4
//!   recommends it against fault and side-channel attacks), deterministic for test vectors.

use core::fmt;

use libcrux_ml_dsa::ml_dsa_65;
use zeroize::Zeroize;

use crate::entropy::os_random;
use crate::{Error, Secret};

/// Verifying (public) key size in bytes (FIPS 204 Table 2, ML-DSA-65).
pub const VERIFYING_KEY_LEN: usize = 1952;
/// Expanded signing key size in bytes (FIPS 204 Table 2).
pub const SIGNING_KEY_LEN: usize = 4032;
/// Signature size in bytes (FIPS 204 Table 2).
pub const SIGNATURE_LEN: usize = 3309;
/// Key-generation seed `ξ` (FIPS 204 Algorithm 1).
pub const SEED_LEN: usize = 32;
/// Per-signature randomness `rnd` (FIPS 204 Algorithm 2).
pub const SIGNING_RANDOMNESS_LEN: usize = 32;
/// Longest context string FIPS 204 §5.2 allows.
pub const MAX_CONTEXT_LEN: usize = 255;
/// How often hedged signing retries when libcrux's bounded rejection sampling gives up (the
/// probability of one give-up is below 2^-128 per attempt; this bound only keeps the loop finite).
const SIGNING_ATTEMPTS: usize = 4;

/// A secret ML-DSA-65 signing key.
pub struct SigningKey {
    seed: Option<Secret<SEED_LEN>>,
    expanded: ml_dsa_65::MLDSA65SigningKey,
    verifying: VerifyingKey,
}

/// A public ML-DSA-65 verifying key.
#[derive(Clone)]
pub struct VerifyingKey {
    inner: ml_dsa_65::MLDSA65VerificationKey,
}

/// A public ML-DSA-65 signature.
#[derive(Clone)]
pub struct Signature {
    inner: ml_dsa_65::MLDSA65Signature,
}

impl SigningKey {
    /// Generates a key from a fresh OS seed.
    pub fn generate() -> Result<Self, Error> {
        let seed = Secret::new(os_random::<SEED_LEN>()?);
        Ok(Self::from_seed(seed))
    }

    /// `ML-DSA.KeyGen_internal(ξ)` (FIPS 204 Algorithm 6). Deterministic: the same seed always
    /// gives the same key, which is how key files are stored.
    pub fn from_seed(seed: Secret<SEED_LEN>) -> Self {
        let mut pair = ml_dsa_65::generate_key_pair(*seed.expose());
        let verifying = VerifyingKey {
            inner: pair.verification_key.clone(),
        };
        let expanded = pair.signing_key.clone();
        pair.signing_key.as_mut_slice().zeroize();
        Self {
            seed: Some(seed),
            expanded,
            verifying,
        }
    }

    /// Loads an expanded signing key (`skEncode` output) with its verifying key. Only the ACVP
    /// sigGen vectors need this: they publish expanded keys, not seeds.
    pub fn from_expanded_bytes(signing: &[u8], verifying: VerifyingKey) -> Result<Self, Error> {
        let mut array: [u8; SIGNING_KEY_LEN] =
            signing.try_into().map_err(|_| Error::InvalidLength {
                what: "ML-DSA-65 signing key",
                expected: SIGNING_KEY_LEN,
                actual: signing.len(),
            })?;
        let expanded = ml_dsa_65::MLDSA65SigningKey::new(array);
        array.zeroize();
        Ok(Self {
            seed: None,
            expanded,
            verifying,
        })
    }

    /// The seed this key was generated from, for writing a key file; `None` for keys loaded in
    /// expanded form.
    pub fn seed(&self) -> Option<&Secret<SEED_LEN>> {
        self.seed.as_ref()
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// Hedged `ML-DSA.Sign(sk, M, ctx)` (FIPS 204 Algorithm 2) with fresh `rnd`.
    pub fn sign(&self, message: &[u8], context: &[u8]) -> Result<Signature, Error> {
        check_context(context)?;
        let mut last = Error::BadSignature;
        for _ in 0..SIGNING_ATTEMPTS {
            let rnd = Secret::new(os_random::<SIGNING_RANDOMNESS_LEN>()?);
            match self.sign_with_randomness(message, context, &rnd) {
                Ok(signature) => return Ok(signature),
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    /// `ML-DSA.Sign` with caller-chosen `rnd`; all-zero `rnd` is the deterministic variant.
    pub fn sign_with_randomness(
        &self,
        message: &[u8],
        context: &[u8],
        rnd: &Secret<SIGNING_RANDOMNESS_LEN>,
    ) -> Result<Signature, Error> {
        check_context(context)?;
        ml_dsa_65::sign(&self.expanded, message, context, *rnd.expose())
            .map(|inner| Signature { inner })
            .map_err(|error| match error {
                libcrux_ml_dsa::SigningError::ContextTooLongError => {
                    Error::ContextTooLong(context.len())
                }
                libcrux_ml_dsa::SigningError::RejectionSamplingError => Error::BadSignature,
            })
    }
}

impl VerifyingKey {
    /// Parses a peer's verifying key (length check; decoding happens inside verification).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let array: [u8; VERIFYING_KEY_LEN] =
            bytes.try_into().map_err(|_| Error::InvalidLength {
                what: "ML-DSA-65 verifying key",
                expected: VERIFYING_KEY_LEN,
                actual: bytes.len(),
            })?;
        Ok(Self {
            inner: ml_dsa_65::MLDSA65VerificationKey::new(array),
        })
    }

    /// The encoded key.
    pub fn as_bytes(&self) -> &[u8; VERIFYING_KEY_LEN] {
        self.inner.as_ref()
    }

    /// `ML-DSA.Verify(pk, M, σ, ctx)` (FIPS 204 Algorithm 3).
    pub fn verify(
        &self,
        message: &[u8],
        context: &[u8],
        signature: &Signature,
    ) -> Result<(), Error> {
        check_context(context)?;
        ml_dsa_65::verify(&self.inner, message, context, &signature.inner)
            .map_err(|_| Error::BadSignature)
    }
}

impl PartialEq for VerifyingKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for VerifyingKey {}

impl Signature {
    /// Parses a peer's signature (length check; `sigDecode` runs inside verification).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let array: [u8; SIGNATURE_LEN] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "ML-DSA-65 signature",
            expected: SIGNATURE_LEN,
            actual: bytes.len(),
        })?;
        Ok(Self {
            inner: ml_dsa_65::MLDSA65Signature::new(array),
        })
    }

    /// The encoded signature.
    pub fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        self.inner.as_ref()
    }
}

fn check_context(context: &[u8]) -> Result<(), Error> {
    if context.len() > MAX_CONTEXT_LEN {
        return Err(Error::ContextTooLong(context.len()));
    }
    Ok(())
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        self.expanded.as_mut_slice().zeroize();
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MlDsa65SigningKey(<redacted>)")
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MlDsa65VerifyingKey({:02x?}…)", &self.as_bytes()[..8])
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MlDsa65Signature({:02x?}…)", &self.as_bytes()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: &[u8] = b"qgw test";

    #[test]
    fn sign_then_verify() {
        let key = SigningKey::generate().expect("os randomness");
        let signature = key.sign(b"transcript", CONTEXT).expect("signs");
        assert!(
            key.verifying_key()
                .verify(b"transcript", CONTEXT, &signature)
                .is_ok()
        );
    }

    #[test]
    fn wrong_message_context_or_key_fails() {
        let key = SigningKey::from_seed(Secret::new([1; SEED_LEN]));
        let other = SigningKey::from_seed(Secret::new([2; SEED_LEN]));
        let signature = key.sign(b"m", CONTEXT).expect("signs");
        let public = key.verifying_key();
        assert_eq!(
            public.verify(b"n", CONTEXT, &signature),
            Err(Error::BadSignature)
        );
        assert_eq!(
            public.verify(b"m", b"other", &signature),
            Err(Error::BadSignature)
        );
        let wrong_key = other.verifying_key();
        assert_eq!(
            wrong_key.verify(b"m", CONTEXT, &signature),
            Err(Error::BadSignature)
        );
        let mut bytes = *signature.as_bytes();
        bytes[10] ^= 0x80;
        let tampered = Signature::from_bytes(&bytes).expect("length is right");
        assert_eq!(
            public.verify(b"m", CONTEXT, &tampered),
            Err(Error::BadSignature)
        );
    }

    #[test]
    fn seed_determines_the_key_and_deterministic_signatures() {
        let a = SigningKey::from_seed(Secret::new([9; SEED_LEN]));
        let b = SigningKey::from_seed(Secret::new([9; SEED_LEN]));
        assert_eq!(a.verifying_key(), b.verifying_key());
        let zero = Secret::new([0; SIGNING_RANDOMNESS_LEN]);
        let sa = a.sign_with_randomness(b"m", CONTEXT, &zero).expect("signs");
        let sb = b.sign_with_randomness(b"m", CONTEXT, &zero).expect("signs");
        assert_eq!(sa.as_bytes(), sb.as_bytes());
    }

    #[test]
    fn context_longer_than_255_bytes_is_refused() {
        let key = SigningKey::from_seed(Secret::new([1; SEED_LEN]));
        assert_eq!(
            key.sign(b"m", &[0; 256]).err(),
            Some(Error::ContextTooLong(256))
        );
    }

    #[test]
    fn malformed_lengths_are_rejected() {
        assert!(VerifyingKey::from_bytes(&[0; 10]).is_err());
        assert!(Signature::from_bytes(&[0; SIGNATURE_LEN + 1]).is_err());
    }

    #[test]
    fn debug_redacts_the_signing_key() {
        let key = SigningKey::from_seed(Secret::new([1; SEED_LEN]));
        assert_eq!(format!("{key:?}"), "MlDsa65SigningKey(<redacted>)");
    }
}

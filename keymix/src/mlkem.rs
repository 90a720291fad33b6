//! ML-KEM-768 (FIPS 203) behind small typed wrappers over `libcrux-ml-kem`.
//!
//! * [`DecapsulationKey`] is secret: zeroized on drop, redacted `Debug`, never serialized.
//! * [`EncapsulationKey`] and [`Ciphertext`] are public and are parsed from peer bytes only through
//!   checked constructors: [`EncapsulationKey::from_bytes`] performs the FIPS 203 §7.2 input check
//!   (the "modulus check": every encoded coefficient is below q), [`Ciphertext::from_bytes`] the
//!   §7.3 length check.
//! * [`SharedSecret`] is the 32-byte `K` of FIPS 203 Algorithm 17/18, a [`Secret`].
//!
//! Seeded entry points ([`generate_from_seed`], [`EncapsulationKey::encapsulate_with_randomness`])
//! are FIPS 203's `ML-KEM.KeyGen_internal(d, z)` and `ML-KEM.Encaps_internal(ek, m)` and are what
//! the NIST ACVP vectors in `tests/vectors/` exercise. Production code uses [`generate`] and
//! [`EncapsulationKey::encapsulate`], which draw `d`, `z`, `m` from the OS.

use core::fmt;

use libcrux_ml_kem::mlkem768;
use zeroize::Zeroize;

use crate::entropy::os_random;
use crate::{Error, Secret};

/// Encapsulation key size in bytes (FIPS 203 Table 3, ML-KEM-768: 384·k + 32 with k = 3).
pub const ENCAPSULATION_KEY_LEN: usize = 1184;
/// Decapsulation key size in bytes (FIPS 203 Table 3: 768·k + 96).
pub const DECAPSULATION_KEY_LEN: usize = 2400;
/// Ciphertext size in bytes (FIPS 203 Table 3: 32·(du·k + dv) with du = 10, dv = 4).
pub const CIPHERTEXT_LEN: usize = 1088;
/// Shared secret size in bytes (FIPS 203 §2.3, `K`).
pub const SHARED_SECRET_LEN: usize = 32;
/// Key-generation seed `d ‖ z` (FIPS 203 Algorithm 16).
pub const KEYGEN_SEED_LEN: usize = 64;
/// Encapsulation randomness `m` (FIPS 203 Algorithm 17).
pub const ENCAPS_RANDOMNESS_LEN: usize = 32;

/// The ML-KEM shared secret `K`.
pub type SharedSecret = Secret<SHARED_SECRET_LEN>;

/// A public ML-KEM-768 encapsulation key that has passed the FIPS 203 §7.2 input check.
#[derive(Clone)]
pub struct EncapsulationKey {
    inner: mlkem768::MlKem768PublicKey,
}

/// A public ML-KEM-768 ciphertext.
#[derive(Clone)]
pub struct Ciphertext {
    inner: mlkem768::MlKem768Ciphertext,
}

/// A secret ML-KEM-768 decapsulation key. Zeroized on drop.
pub struct DecapsulationKey {
    inner: mlkem768::MlKem768PrivateKey,
}

/// Generates a key pair with fresh OS randomness.
pub fn generate() -> Result<(DecapsulationKey, EncapsulationKey), Error> {
    let seed = Secret::new(os_random::<KEYGEN_SEED_LEN>()?);
    Ok(generate_from_seed(&seed))
}

/// `ML-KEM.KeyGen_internal(d, z)` with `seed = d ‖ z` (FIPS 203 Algorithm 16).
pub fn generate_from_seed(seed: &Secret<KEYGEN_SEED_LEN>) -> (DecapsulationKey, EncapsulationKey) {
    let pair = mlkem768::generate_key_pair(*seed.expose());
    let (private, public) = pair.into_parts();
    (
        DecapsulationKey { inner: private },
        EncapsulationKey { inner: public },
    )
}

impl EncapsulationKey {
    /// Parses a peer's encapsulation key: exact length, then the FIPS 203 §7.2 modulus check.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let array: [u8; ENCAPSULATION_KEY_LEN] =
            bytes.try_into().map_err(|_| Error::InvalidLength {
                what: "ML-KEM-768 encapsulation key",
                expected: ENCAPSULATION_KEY_LEN,
                actual: bytes.len(),
            })?;
        let inner = mlkem768::MlKem768PublicKey::from(array);
        if !mlkem768::validate_public_key(&inner) {
            return Err(Error::InvalidEncapsulationKey);
        }
        Ok(Self { inner })
    }

    /// The encoded key, as sent on the wire.
    pub fn as_bytes(&self) -> &[u8; ENCAPSULATION_KEY_LEN] {
        self.inner.as_slice()
    }

    /// Encapsulates to this key with fresh OS randomness (FIPS 203 Algorithm 20).
    pub fn encapsulate(&self) -> Result<(Ciphertext, SharedSecret), Error> {
        let m = Secret::new(os_random::<ENCAPS_RANDOMNESS_LEN>()?);
        Ok(self.encapsulate_with_randomness(&m))
    }

    /// `ML-KEM.Encaps_internal(ek, m)` (FIPS 203 Algorithm 17): deterministic, for test vectors.
    pub fn encapsulate_with_randomness(
        &self,
        m: &Secret<ENCAPS_RANDOMNESS_LEN>,
    ) -> (Ciphertext, SharedSecret) {
        let (ciphertext, mut shared) = mlkem768::encapsulate(&self.inner, *m.expose());
        let shared = Secret::from_mut(&mut shared);
        (Ciphertext { inner: ciphertext }, shared)
    }
}

impl Ciphertext {
    /// Parses a peer's ciphertext (FIPS 203 §7.3: the only check is its length).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let array: [u8; CIPHERTEXT_LEN] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "ML-KEM-768 ciphertext",
            expected: CIPHERTEXT_LEN,
            actual: bytes.len(),
        })?;
        Ok(Self {
            inner: mlkem768::MlKem768Ciphertext::from(array),
        })
    }

    /// The encoded ciphertext, as sent on the wire.
    pub fn as_bytes(&self) -> &[u8; CIPHERTEXT_LEN] {
        self.inner.as_slice()
    }
}

impl DecapsulationKey {
    /// Loads an encoded decapsulation key (FIPS 203 §7.3 checks its length and, here, the embedded
    /// hash `H(ek)` by decapsulation's implicit-rejection design). Used for test vectors; gateways
    /// generate a fresh key per epoch and never store one.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let mut array: [u8; DECAPSULATION_KEY_LEN] =
            bytes.try_into().map_err(|_| Error::InvalidLength {
                what: "ML-KEM-768 decapsulation key",
                expected: DECAPSULATION_KEY_LEN,
                actual: bytes.len(),
            })?;
        let inner = mlkem768::MlKem768PrivateKey::from(&array);
        array.zeroize();
        Ok(Self { inner })
    }

    /// `ML-KEM.Decaps(dk, c)` (FIPS 203 Algorithm 21). Never fails: an invalid ciphertext yields
    /// the implicit-rejection secret, which simply will not match the peer's.
    pub fn decapsulate(&self, ciphertext: &Ciphertext) -> SharedSecret {
        let mut shared = mlkem768::decapsulate(&self.inner, &ciphertext.inner);
        Secret::from_mut(&mut shared)
    }

    /// The encoded key. Only for known-answer tests.
    pub fn expose_bytes(&self) -> &[u8; DECAPSULATION_KEY_LEN] {
        self.inner.as_slice()
    }
}

impl Drop for DecapsulationKey {
    fn drop(&mut self) {
        self.inner[0..].zeroize();
    }
}

impl fmt::Debug for DecapsulationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MlKem768DecapsulationKey(<redacted>)")
    }
}

impl fmt::Debug for EncapsulationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MlKem768EncapsulationKey({:02x?}…)",
            &self.as_bytes()[..8]
        )
    }
}

impl fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MlKem768Ciphertext({:02x?}…)", &self.as_bytes()[..8])
    }
}

impl PartialEq for EncapsulationKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for EncapsulationKey {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_agrees() {
        let (dk, ek) = generate().expect("os randomness");
        let (ct, ss_sender) = ek.encapsulate().expect("os randomness");
        let ss_receiver = dk.decapsulate(&ct);
        assert!(ss_sender.ct_eq(&ss_receiver));
    }

    #[test]
    fn tampered_ciphertext_yields_a_different_secret() {
        let (dk, ek) = generate_from_seed(&Secret::new([3; KEYGEN_SEED_LEN]));
        let (ct, ss) = ek.encapsulate_with_randomness(&Secret::new([4; 32]));
        let mut bytes = *ct.as_bytes();
        bytes[100] ^= 0x01;
        let tampered = Ciphertext::from_bytes(&bytes).expect("length is right");
        assert!(!dk.decapsulate(&tampered).ct_eq(&ss));
    }

    #[test]
    fn wrong_lengths_are_rejected() {
        assert_eq!(
            EncapsulationKey::from_bytes(&[0u8; 1183]).err(),
            Some(Error::InvalidLength {
                what: "ML-KEM-768 encapsulation key",
                expected: ENCAPSULATION_KEY_LEN,
                actual: 1183
            })
        );
        assert!(Ciphertext::from_bytes(&[0u8; 1089]).is_err());
        assert!(DecapsulationKey::from_bytes(&[]).is_err());
    }

    #[test]
    fn modulus_check_rejects_out_of_range_coefficients() {
        let (_dk, ek) = generate_from_seed(&Secret::new([5; KEYGEN_SEED_LEN]));
        let mut bytes = *ek.as_bytes();
        // The first 12-bit coefficient becomes 0xFFF = 4095 >= q = 3329.
        bytes[0] = 0xFF;
        bytes[1] |= 0x0F;
        assert_eq!(
            EncapsulationKey::from_bytes(&bytes).err(),
            Some(Error::InvalidEncapsulationKey)
        );
    }

    #[test]
    fn debug_redacts_the_private_key() {
        let (dk, _) = generate_from_seed(&Secret::new([6; KEYGEN_SEED_LEN]));
        assert_eq!(format!("{dk:?}"), "MlKem768DecapsulationKey(<redacted>)");
    }
}

//! Secret byte containers: zeroized on drop, redacted in `Debug`, no `Display`, no `Serialize`, no
//! implicit `Clone` (copies are made with [`Secret::duplicate`], so each is visible in review),
//! compared in constant time, read only through [`Secret::expose`].
//!
//! The gateway's WireGuard core uses this same type (`gateway::proto::secret` re-exports it).
//!
//! Every key, shared secret and chain value in keymix lives in one of these two types; public values
//! (encapsulation keys, ciphertexts, transcript hashes) use plain byte arrays or their own types so
//! the two can never be confused. Modelled on rosenpass `secret-memory` and rustls' `Tag`.

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A fixed-size secret of `N` bytes.
pub struct Secret<const N: usize> {
    bytes: [u8; N],
}

impl<const N: usize> Secret<N> {
    /// Takes ownership of `bytes`. The caller's copy is the caller's to wipe; prefer
    /// [`Secret::from_mut`] when the source is a buffer that should be wiped now.
    pub fn new(bytes: [u8; N]) -> Self {
        Self { bytes }
    }

    /// Copies `source` into a new secret and zeroizes `source`.
    pub fn from_mut(source: &mut [u8; N]) -> Self {
        let secret = Self { bytes: *source };
        source.zeroize();
        secret
    }

    /// All zero bytes (WireGuard's "no PSK" value `Q = 0^32`, a buffer to fill in place).
    pub fn zero() -> Self {
        Self { bytes: [0u8; N] }
    }

    /// An explicit copy, itself zeroized on drop (a key handed to two owners, e.g. the interface
    /// and its control socket).
    pub fn duplicate(&self) -> Self {
        Self { bytes: self.bytes }
    }

    /// Mutable access, for filling a secret in place (key derivation output, RNG).
    pub fn expose_mut(&mut self) -> &mut [u8; N] {
        &mut self.bytes
    }

    /// Copies a slice of exactly `N` bytes; `None` on any other length.
    pub fn from_slice(source: &[u8]) -> Option<Self> {
        let bytes: [u8; N] = source.try_into().ok()?;
        Some(Self { bytes })
    }

    /// The secret bytes. Every read of key material goes through this method, so a reviewer can
    /// find each place a secret leaves its container with one search.
    pub fn expose(&self) -> &[u8; N] {
        &self.bytes
    }

    /// Constant-time equality (`subtle`), for MACs, tags and keys.
    pub fn ct_eq(&self, other: &Self) -> bool {
        ct_eq(&self.bytes, &other.bytes)
    }
}

impl<const N: usize> Drop for Secret<N> {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl<const N: usize> ZeroizeOnDrop for Secret<N> {}

impl<const N: usize> Zeroize for Secret<N> {
    fn zeroize(&mut self) {
        self.bytes.zeroize();
    }
}

impl<const N: usize> PartialEq for Secret<N> {
    /// Constant-time, so comparing secrets does not leak where they differ.
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl<const N: usize> Eq for Secret<N> {}

impl<const N: usize> fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret<{N}>(<redacted>)")
    }
}

/// A secret of run-time length (QKD keys come in any size the KME is configured for).
pub struct SecretVec {
    bytes: Zeroizing<Vec<u8>>,
}

impl SecretVec {
    /// Takes ownership of `bytes`; they are zeroized when this value drops.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self {
            bytes: Zeroizing::new(bytes),
        }
    }

    /// Copies `source` into a new secret.
    pub fn from_slice(source: &[u8]) -> Self {
        Self::new(source.to_vec())
    }

    /// The secret bytes (see [`Secret::expose`]).
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Constant-time equality; lengths are compared in the clear (they are not secret).
    pub fn ct_eq(&self, other: &Self) -> bool {
        ct_eq(&self.bytes, &other.bytes)
    }
}

impl ZeroizeOnDrop for SecretVec {}

impl fmt::Debug for SecretVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretVec[{}](<redacted>)", self.bytes.len())
    }
}

/// Constant-time equality of two byte strings. Unequal lengths return `false` at once: lengths of
/// MACs, tags and keys are public.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_and_equality_are_by_value_and_zero_is_zero() {
        let a = Secret::new([7u8; 8]);
        let b = a.duplicate();
        assert_eq!(a, b);
        assert_ne!(a, Secret::new([7, 7, 7, 7, 7, 7, 7, 8]));
        assert_eq!(Secret::<4>::zero().expose(), &[0; 4]);
        let mut c = Secret::<4>::zero();
        c.expose_mut()[3] = 1;
        c.zeroize();
        assert_eq!(c, Secret::zero());
    }

    #[test]
    fn debug_never_prints_the_bytes() {
        let secret = Secret::new([0xAB; 32]);
        let shown = format!("{secret:?}");
        assert_eq!(shown, "Secret<32>(<redacted>)");
        assert!(!shown.to_lowercase().contains("ab, "));
        let vec = SecretVec::new(vec![0xCD; 40]);
        assert_eq!(format!("{vec:?}"), "SecretVec[40](<redacted>)");
    }

    #[test]
    fn from_mut_wipes_the_source() {
        let mut source = [7u8; 32];
        let secret = Secret::from_mut(&mut source);
        assert_eq!(source, [0u8; 32]);
        assert_eq!(secret.expose(), &[7u8; 32]);
    }

    #[test]
    fn constant_time_equality_is_equality() {
        assert!(Secret::new([1u8; 32]).ct_eq(&Secret::new([1u8; 32])));
        let mut other = [1u8; 32];
        other[31] ^= 1;
        assert!(!Secret::new([1u8; 32]).ct_eq(&Secret::new(other)));
        assert!(!ct_eq(&[1, 2, 3], &[1, 2]));
        assert!(SecretVec::from_slice(b"abc").ct_eq(&SecretVec::from_slice(b"abc")));
        assert!(!SecretVec::from_slice(b"abc").ct_eq(&SecretVec::from_slice(b"abd")));
    }

    #[test]
    fn from_slice_checks_length() {
        assert!(Secret::<32>::from_slice(&[0u8; 31]).is_none());
        assert!(Secret::<32>::from_slice(&[0u8; 32]).is_some());
    }
}

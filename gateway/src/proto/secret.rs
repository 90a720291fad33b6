//! The one secret type of the protocol core: zeroized on drop, redacted `Debug`, no `Display`,
//! read only through [`Secret::expose`]; and [`ct_eq`], the one constant-time comparison.
//!
//! Whitepaper §5.4 keys (static private keys, chaining keys, transport keys, the PSK `Q`) all
//! live in a `Secret<32>`. Public values (public keys, hashes, MACs on the wire) stay plain bytes.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// `N` secret bytes. Cloning is explicit and also zeroizes on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret<const N: usize>([u8; N]);

impl<const N: usize> Secret<N> {
    /// Takes ownership of `bytes` (the caller's copy on the stack is the caller's to wipe).
    pub fn new(bytes: [u8; N]) -> Self {
        Self(bytes)
    }

    /// All zero bytes: the whitepaper's "no PSK" value `Q = 0^32` (§5.4).
    pub fn zero() -> Self {
        Self([0u8; N])
    }

    /// Reads the secret bytes. Every use is a place a secret leaves this type; keep them few.
    pub fn expose(&self) -> &[u8; N] {
        &self.0
    }

    /// Mutable access, for filling a secret in place (key derivation output, RNG).
    pub fn expose_mut(&mut self) -> &mut [u8; N] {
        &mut self.0
    }
}

impl<const N: usize> fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret<{N}>(<redacted>)")
    }
}

impl<const N: usize> PartialEq for Secret<N> {
    /// Constant-time, so a comparison of secrets does not leak where they differ.
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl<const N: usize> Eq for Secret<N> {}

/// The preshared key `Q` of §5.4 (a 32-byte secret; all-zero when a peer has none).
pub type Psk = Secret<32>;

/// Constant-time equality of two byte strings (MACs, tags, cookies). Different lengths are unequal;
/// the length itself is not secret.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new([0xAB; 32]);
        let text = format!("{s:?}");
        assert!(!text.to_lowercase().contains("ab"), "{text}");
        assert!(text.contains("redacted"));
    }

    #[test]
    fn equality_is_by_value() {
        assert_eq!(Secret::new([1u8; 4]), Secret::new([1u8; 4]));
        assert_ne!(Secret::new([1u8; 4]), Secret::new([1, 1, 1, 2]));
        assert!(!ct_eq(&[1, 2], &[1, 2, 3]));
        assert!(ct_eq(&[], &[]));
    }

    #[test]
    fn zero_is_all_zero() {
        assert_eq!(Secret::<32>::zero().expose(), &[0u8; 32]);
    }
}

//! The one secret type of the protocol core, shared with keymix ([`keymix::Secret`]): zeroized
//! on drop, redacted `Debug`, no `Display`, copied only by `duplicate`, read only through
//! `expose`; and [`ct_eq`], the one constant-time comparison.
//!
//! Whitepaper §5.4 keys (static private keys, chaining keys, transport keys, the PSK `Q`) all
//! live in a `Secret<32>`. Public values (public keys, hashes, MACs on the wire) stay plain bytes.

pub use keymix::{Secret, ct_eq};

/// The preshared key `Q` of §5.4 (a 32-byte secret; all-zero when a peer has none).
pub type Psk = Secret<32>;

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

//! Every domain-separation label keymix uses, in one place and versioned (`qgw v1`).
//!
//! Changing any byte here changes every derived key: bump the version in all of them together and
//! regenerate `tests/vectors/combiner.json`. Labels are distinct, none is a prefix of another, and
//! each is followed by fixed-length or length-prefixed data, so no two derivations share an input.

/// Prefix of the transcript hash input (see [`crate::transcript`]).
pub const TRANSCRIPT: &[u8] = b"qgw v1 keymix transcript";
/// Prefix of the HKDF-Extract input keying material (see [`crate::combiner`]).
pub const IKM: &[u8] = b"qgw v1 keymix ikm";
/// HKDF-Expand `info` prefix for the epoch's WireGuard preshared key.
pub const PSK: &[u8] = b"qgw v1 keymix psk";
/// HKDF-Expand `info` prefix for the ratchet's next chain key.
pub const CHAIN: &[u8] = b"qgw v1 keymix chain";
/// HKDF-Extract salt of the genesis chain key (epoch 0).
pub const GENESIS: &[u8] = b"qgw v1 keymix genesis";

/// HMAC message of a chain key's public tag (proves which chain key a peer holds).
pub const CHAIN_TAG: &[u8] = b"qgw v1 chain tag";
/// HMAC message prefix of an epoch's key-confirmation tag.
pub const CONFIRM: &[u8] = b"qgw v1 confirm";

/// The full set, for tests that check the labels are pairwise prefix-free.
pub const ALL: [&[u8]; 7] = [TRANSCRIPT, IKM, PSK, CHAIN, GENESIS, CHAIN_TAG, CONFIRM];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_versioned_and_prefix_free() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(a.starts_with(b"qgw v1 "));
            for (j, b) in ALL.iter().enumerate() {
                if i != j {
                    assert!(!b.starts_with(a), "{:?} is a prefix of {:?}", a, b);
                }
            }
        }
    }
}

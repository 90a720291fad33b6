//! Every domain-separation label of qgw, in one place and versioned (`qgw v1`): keymix's
//! derivations (docs/design.md §3), the hybrid exchange's keys, transcripts and signatures
//! (docs/protocol.md §11) and the audit log's hashes and signatures (docs/audit.md §2).
//!
//! Changing any byte here changes every derived key or signature: bump the version in all of them
//! together and regenerate `tests/vectors/combiner.json`. Within each group labels are distinct and
//! none is a prefix of another, and each is followed by fixed-length or length-prefixed data, so
//! no two derivations share an input.

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

/// BLAKE2s-256 input prefix of the hybrid pair's MAC key `K_pair` (protocol.md §3).
pub const HYBRID_PAIR_KEY: &[u8] = b"qgw v1 hybrid pair key";
/// BLAKE2s-256 input prefix of the hybrid pair's locator `pair_id` (protocol.md §3).
pub const HYBRID_PAIR_ID: &[u8] = b"qgw v1 hybrid pair id";
/// Prefix of the Init transcript `T_I` (protocol.md §5.1).
pub const HYBRID_INIT: &[u8] = b"qgw v1 hybrid init";
/// Prefix of a Response's signed message (protocol.md §5.2).
pub const HYBRID_RESPONSE: &[u8] = b"qgw v1 hybrid response";
/// Prefix of a Reject's signed message (protocol.md §5.4).
pub const HYBRID_REJECT: &[u8] = b"qgw v1 hybrid reject";
/// ML-DSA-65 context string of every hybrid signature (FIPS 204 §5.2 `ctx`; a separate input of
/// the signature, so it need not be prefix-free with the messages above).
pub const HYBRID_SIGNATURE_CONTEXT: &[u8] = b"qgw v1 hybrid";

/// Prefix of every audit record's hash input (audit.md §2).
pub const AUDIT_RECORD: &[u8] = b"qgw v1 audit record";
/// Prefix of every audit checkpoint's signed message, and its ML-DSA-65 context string.
pub const AUDIT_CHECKPOINT: &[u8] = b"qgw v1 audit checkpoint";

/// Every label that prefixes hashed or MAC'd input, for the test that they are pairwise
/// prefix-free (the signature context is a separate input and not among them).
pub const ALL: [&[u8]; 14] = [
    TRANSCRIPT,
    IKM,
    PSK,
    CHAIN,
    GENESIS,
    CHAIN_TAG,
    CONFIRM,
    HYBRID_PAIR_KEY,
    HYBRID_PAIR_ID,
    HYBRID_INIT,
    HYBRID_RESPONSE,
    HYBRID_REJECT,
    AUDIT_RECORD,
    AUDIT_CHECKPOINT,
];

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

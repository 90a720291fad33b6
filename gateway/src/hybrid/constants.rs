//! Constants of the hybrid key agreement, each with its source (docs/protocol.md section).

use std::time::Duration;

/// First byte of every hybrid datagram (§4). WireGuard's types are `u32` 1..=4, so a stock
/// WireGuard peer drops these as unknown.
pub const MESSAGE_TYPE: u8 = 0x51;
/// Protocol version (§4).
pub const VERSION: u8 = 1;
/// Fragment header: type, version, kind, index, count, 3 reserved, pair_id, exchange_id (§4).
pub const HEADER_LEN: usize = 24;
/// Keyed BLAKE2s-128 MAC over header and payload (§4).
pub const MAC_LEN: usize = 16;
/// Largest datagram: 1280 (IPv6 minimum MTU) − 40 (IPv6 header) − 8 (UDP header) (§4).
pub const MAX_DATAGRAM: usize = 1232;
/// Payload of every fragment but the last (§4).
pub const FRAGMENT_PAYLOAD: usize = MAX_DATAGRAM - HEADER_LEN - MAC_LEN;
/// Most fragments per message (§4).
pub const MAX_FRAGMENTS: usize = 8;
/// Largest reassembled message body.
pub const MAX_MESSAGE: usize = MAX_FRAGMENTS * FRAGMENT_PAYLOAD;
/// Smallest valid datagram: header, one payload byte, MAC.
pub const MIN_DATAGRAM: usize = HEADER_LEN + 1 + MAC_LEN;
/// Longest QKD key ID on the wire (§5.1; ETSI 014 key IDs are 36-character UUIDs).
pub const MAX_KEY_ID_LEN: usize = 64;
/// Most QKD key IDs per epoch (§5.1; keymix's limit).
pub const MAX_KEY_IDS: usize = keymix::MAX_QKD_KEY_IDS;

/// Retransmit an unanswered Init after this (WireGuard REKEY_TIMEOUT, §6.1 step 3).
pub const REKEY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most jitter added to each retransmission (§6.1 step 3, as WireGuard).
pub const REKEY_JITTER_MAX: Duration = Duration::from_millis(333);
/// Give an exchange up after this (WireGuard REKEY_ATTEMPT_TIME, §6.1 step 3).
pub const REKEY_ATTEMPT_TIME: Duration = Duration::from_secs(90);
/// Longest wait for the KME (§6.1 step 2, §6.2 step 4, §7).
pub const QKD_TIMEOUT: Duration = Duration::from_secs(2);
/// Incomplete reassemblies are dropped after this (§4 step 5).
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Init admission: tokens per second per peer (§7).
pub const INIT_RATE_PER_SECOND: u32 = 2;
/// Init admission: burst (§7).
pub const INIT_BURST: u32 = 4;
/// EpochRequests the master honours: at most one per this interval (§5.3, §6.1).
pub const EPOCH_REQUEST_INTERVAL: Duration = Duration::from_secs(1);
/// QKD key IDs remembered per peer to refuse reuse (§6.2 step 3).
pub const SEEN_KEY_IDS: usize = 4096;
/// Default and limits of `rekey_after_seconds` (§8).
pub const DEFAULT_REKEY_AFTER: Duration = Duration::from_secs(120);

/// Versioned labels (§11).
pub mod labels {
    /// `K_pair` derivation.
    pub const PAIR_KEY: &[u8] = b"qgw v1 hybrid pair key";
    /// `pair_id` derivation.
    pub const PAIR_ID: &[u8] = b"qgw v1 hybrid pair id";
    /// Prefix of `T_I`.
    pub const INIT: &[u8] = b"qgw v1 hybrid init";
    /// Prefix of `T_R`.
    pub const RESPONSE: &[u8] = b"qgw v1 hybrid response";
    /// Prefix of a Reject's signed message.
    pub const REJECT: &[u8] = b"qgw v1 hybrid reject";
    /// ML-DSA-65 context string of every hybrid signature.
    pub const SIGNATURE_CONTEXT: &[u8] = b"qgw v1 hybrid";
}

const _: () = assert!(FRAGMENT_PAYLOAD == 1192);
const _: () = assert!(MAX_MESSAGE >= 4569 + (MAX_KEY_IDS - 1) * (1 + MAX_KEY_ID_LEN));

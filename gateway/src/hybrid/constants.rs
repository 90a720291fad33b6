//! Constants of the hybrid key agreement, each with its source (docs/protocol.md section). Timers
//! shared with WireGuard (REKEY_TIMEOUT, its jitter, REKEY_ATTEMPT_TIME) are WireGuard's own
//! ([`crate::proto::constants`]); labels are in [`keymix::labels`]; QKD limits in keymix.

use std::time::Duration;

use keymix::KeyId;

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
/// Length of a QKD key ID on the wire (§5.1): the canonical text of an ETSI 014 UUID key ID.
pub const KEY_ID_LEN: usize = KeyId::TEXT_LEN;
/// Most QKD key IDs per epoch (§5.1; keymix's limit).
pub const MAX_KEY_IDS: usize = keymix::MAX_QKD_KEY_IDS;

/// Longest wait for the KME (§6.1 step 2, §6.2 step 4, §7).
pub const QKD_TIMEOUT: Duration = Duration::from_secs(2);
/// The KME client's TCP + TLS connect timeout: a refused or unreachable KME is tried twice
/// (100–200 ms apart) within [`QKD_TIMEOUT`].
pub const KME_CONNECT_TIMEOUT: Duration = Duration::from_millis(800);
/// The KME client's deadline for one request, connect to last body byte: well within
/// [`QKD_TIMEOUT`], so a slow KME gives a timeout the exchange can still act on.
pub const KME_REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);
/// Attempts of one KME request (a `dec_keys` that may have reached the KME is never repeated).
pub const KME_ATTEMPTS: u32 = 2;
/// Incomplete reassemblies are dropped after this (§4 step 5): as long as the master retransmits
/// an exchange (byte for byte, so fragments of its transmissions may be combined).
pub const REASSEMBLY_TIMEOUT: Duration = crate::proto::constants::REKEY_ATTEMPT_TIME;
/// Signature verifications admitted per second per peer, at either role (§7).
pub const VERIFY_RATE_PER_SECOND: u32 = 2;
/// Burst of admitted signature verifications (§7).
pub const VERIFY_BURST: u32 = 4;
/// EpochRequests sent or acted on: at most one per this interval (§5.3, §6.1); also the most
/// often the slave re-sends an exact answer from its cache (§6.2 step 1).
pub const EPOCH_REQUEST_INTERVAL: Duration = Duration::from_secs(1);
/// A receiver refuses timestamps older than its own start by more than this (§7: replay
/// defence across a restart); also the clock step after which the master starts its exchange
/// over with a fresh timestamp (§6.1 step 3). Two sites' clocks may disagree by this much.
pub const CLOCK_SKEW_TOLERANCE: Duration = Duration::from_secs(60);
/// A request for an epoch is only acted on this long after the last epoch was installed, unless
/// the slave says it has another epoch than the master (§6.1 step 1): the handshake of the
/// newest epoch gets this long to complete. Equal to the shortest rotation allowed.
pub const REQUESTED_EPOCH_MIN_AGE: Duration = crate::proto::constants::REKEY_TIMEOUT;
/// Default of `rekey_after_seconds` (§8): WireGuard's REKEY_AFTER_TIME.
pub const DEFAULT_REKEY_AFTER: Duration = crate::proto::constants::REKEY_AFTER_TIME;

const _: () = assert!(FRAGMENT_PAYLOAD == 1192);
// The largest Init: one key ID (4569 bytes), the other seven, a source tag on each (§5.1).
const _: () = assert!(MAX_MESSAGE >= 4569 + (MAX_KEY_IDS - 1) * (1 + KEY_ID_LEN) + MAX_KEY_IDS);

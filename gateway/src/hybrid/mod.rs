//! The hybrid key agreement (docs/protocol.md): an ML-KEM-768 exchange, signed with ML-DSA-65
//! and optionally carrying ETSI 014 QKD key IDs, that makes each epoch's WireGuard PSK through
//! keymix before every WireGuard handshake.
//!
//! Sans-IO in the crate's one style (see [`crate::proto::peer`]): [`HybridPeer`] takes `now`,
//! fragments and KME results in (`handle_*`), runs its timers in `handle_timeout`, and hands
//! back datagrams written into the caller's buffer (`poll_transmit`), KME requests
//! (`poll_qkd_request`), the PSK to install (`poll_psk`) and facts for logs and the audit log
//! (`poll_event`). It never reads a clock, touches a socket or waits for the KME.
//!
//! | file | concern | protocol.md |
//! |---|---|---|
//! | `constants.rs` | sizes and timers of the exchange | §4, §7 |
//! | `wire.rs` | fragment header, MAC, fragmentation | §4 |
//! | `body.rs` | Init / Response / EpochRequest / Reject bodies, transcripts | §5 |
//! | `pair.rs` | `K_pair`, `pair_id`, identities | §3 |
//! | `reassembly.rs` | bounded reassembly that replays cannot disturb | §4 step 5 |
//! | `freshness.rs` | timestamp replay defence, across restarts and clock steps | §5.3, §6.2, §7 |
//! | `outbox.rs` | what the peer hands back, bounded | §6 |
//! | `shared.rs` | the state both roles share: keys, ratchet, signatures, installs | §6, §9 |
//! | `peer.rs` | the public per-peer machine, dispatching to its role | §6 |
//! | `sources.rs` | several QKD sources per peer: `require`, tags, combining their keys | §6.3 |
//! | `master.rs`, `master/answers.rs`, `slave.rs`, `slave/keys.rs` | each role's state and processing | §6.1, §6.2, §6.3 |

mod body;
pub mod constants;
mod freshness;
mod master;
mod outbox;
mod pair;
mod peer;
mod reassembly;
mod shared;
mod slave;
mod sources;
mod stats;
pub mod wire;

#[cfg(test)]
mod dos_tests;
#[cfg(test)]
mod sources_tests;
#[cfg(test)]
mod test_pair;
#[cfg(test)]
mod tests;

pub use body::{RejectReason, RequestReason};
pub use outbox::{Prefetched, QkdOp, QkdRequest, RequestId};
pub use pair::{PairKeys, identity};
pub use peer::{HybridPeer, HybridSettings, PeerKeys};
pub use sources::{MAX_KMES, MAX_SOURCES, QkdSources, Require, SourceIndex};
pub use stats::{HybridStats, SourceResult, SourceStats};

use keymix::{KeyId, KeySources};

use crate::proto::psk::PskId;

/// Which side of the pair runs the exchange (§2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Calls `enc_keys` and initiates every exchange.
    Master,
    /// Calls `dec_keys` and answers.
    Slave,
}

impl Role {
    /// `master` or `slave` (status, audit log).
    pub fn label(self) -> &'static str {
        match self {
            Self::Master => "master",
            Self::Slave => "slave",
        }
    }
}

/// `qkd.policy` (§8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkdPolicy {
    /// No epoch without a fresh QKD key; fail closed when the KME cannot deliver.
    Required,
    /// QKD when available, X25519 + ML-KEM otherwise (reported).
    Preferred,
    /// No KME.
    Off,
}

/// Why a KME request failed, as the state machine needs to know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkdFailure {
    /// The KME is unreachable, slow, or has no key (503).
    Unavailable,
    /// The KME does not know the key ID (or it was already delivered).
    NotFound,
}

/// What a KME request yields: the key material (IDs and bytes), or why there is none.
pub type QkdResult = Result<keymix::QkdMaterial, QkdFailure>;

/// Why a hybrid datagram or message was dropped; each is a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HybridDrop {
    /// Wrong size, unknown type/kind/version, bad fragment numbering, trailing bytes.
    Malformed,
    /// `pair_id` names no hybrid peer.
    UnknownPair,
    /// The fragment MAC did not verify.
    BadMac,
    /// A message this side does not expect now (no exchange in flight, a stale exchange id, an
    /// EpochRequest in more than one fragment).
    Unexpected,
    /// Init admission or EpochRequest rate exceeded.
    RateLimited,
    /// A timestamp not newer than the last accepted one.
    Replay,
    /// A timestamp too far from this side's wall clock: older than the message can be, or
    /// further in the future than CLOCK_SKEW_TOLERANCE (a replay after a restart, or two clocks
    /// that disagree).
    Stale,
    /// The ML-DSA-65 signature did not verify.
    BadSignature,
    /// The ML-KEM encapsulation key failed the FIPS 203 modulus check.
    BadEncapsulationKey,
    /// A Response's key confirmation did not match (different keys at the two sides).
    BadConfirm,
    /// Fields that must echo the Init (epoch, sources) do not.
    EpochMismatch,
    /// More outgoing datagrams were queued than the driver took (never in normal operation).
    QueueFull,
    /// A message only this side's own role sends (§2): both sides are configured with the same
    /// role, or one of our own messages was reflected back to us.
    RoleConflict,
}

impl HybridDrop {
    /// Every reason, for metrics.
    pub const ALL: [Self; 13] = [
        Self::Malformed,
        Self::UnknownPair,
        Self::BadMac,
        Self::Unexpected,
        Self::RateLimited,
        Self::Replay,
        Self::Stale,
        Self::BadSignature,
        Self::BadEncapsulationKey,
        Self::BadConfirm,
        Self::EpochMismatch,
        Self::QueueFull,
        Self::RoleConflict,
    ];

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownPair => "unknown_pair",
            Self::BadMac => "bad_mac",
            Self::Unexpected => "unexpected",
            Self::RateLimited => "rate_limited",
            Self::Replay => "replay",
            Self::Stale => "stale",
            Self::BadSignature => "bad_signature",
            Self::BadEncapsulationKey => "bad_encapsulation_key",
            Self::BadConfirm => "bad_confirm",
            Self::EpochMismatch => "epoch_mismatch",
            Self::QueueFull => "queue_full",
            Self::RoleConflict => "role_conflict",
        }
    }
}

/// What became of an admitted hybrid datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// A fragment kept for reassembly, a duplicate, or a message that changed nothing but an
    /// answer from the cache.
    Pending,
    /// A complete message, authenticated and fresh, was acted on: the peer sent it just now, so
    /// where it came from is where the peer is (roaming, as WireGuard roams only on
    /// authenticated packets: whitepaper §2.1).
    FromPeer,
}

/// A fact about an epoch, for status, metrics and the audit log (never key bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochInfo {
    /// Epoch number (starts again at 1 when the ratchet is reset, §9).
    pub epoch: u64,
    /// The id of the PSK installed for it (unique per installed key).
    pub psk_id: PskId,
    /// Sources used.
    pub sources: KeySources,
    /// QKD key IDs (empty without QKD).
    pub key_ids: Vec<KeyId>,
    /// keymix transcript hash (public).
    pub transcript_hash: [u8; 32],
    /// keymix key-confirmation tag (public: the Response carries it, §5.2). Equal at both sides
    /// exactly when both derived the same PSK.
    pub confirmation: [u8; 16],
}

/// Things that happened, for logs, metrics and the audit trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HybridEvent {
    /// A new epoch's PSK was installed.
    EpochInstalled(EpochInfo),
    /// Under `preferred`, an epoch is made without QKD.
    Fallback {
        /// The epoch.
        epoch: u64,
    },
    /// Under `required`, no epoch could be made because the KME gave no key.
    QkdBlocked {
        /// The epoch that could not be made.
        epoch: u64,
    },
    /// The slave refused an Init (sent or received).
    Rejected {
        /// The epoch.
        epoch: u64,
        /// Why.
        reason: RejectReason,
        /// Whether this side sent it.
        sent: bool,
    },
    /// The slave's signed Response carried a key confirmation that does not match: the two
    /// sides derived different keys (their KMEs gave different bytes for the QKD key).
    KeyMismatch {
        /// The epoch.
        epoch: u64,
        /// The QKD key IDs the exchange used (empty without QKD).
        key_ids: Vec<KeyId>,
    },
    /// An exchange got no answer for REKEY_ATTEMPT_TIME.
    ExchangeAbandoned {
        /// The epoch.
        epoch: u64,
    },
}

/// Fuzzing entry point: every parser of hybrid bytes on arbitrary input (the fragment header and
/// each message body as if it had passed the MAC). Must never panic.
#[doc(hidden)]
pub fn fuzz_parsers(data: &[u8]) {
    // black_box: an unused pure parse is optimized away whole, and the fuzzer would run nothing.
    use std::hint::black_box;
    let _ = black_box(wire::parse(data));
    let _ = black_box(body::Init::decode(data));
    let _ = black_box(body::Response::decode(data));
    let _ = black_box(body::EpochRequest::decode(data));
    let _ = black_box(body::Reject::decode(data));
}

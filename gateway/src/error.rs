//! The gateway crate's errors: [`Error`] for everything that stops an operation, and [`DropReason`],
//! the cheap `Copy` reason a datagram or packet was dropped (counted per reason, never logged with
//! its contents).

use thiserror::Error;

/// Why an incoming datagram or outgoing packet was dropped. Untrusted input only ever produces one
/// of these; the daemon counts them by [`DropReason::index`] without allocating.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum DropReason {
    /// Wrong length, unknown type or non-zero reserved bytes.
    #[error("malformed message")]
    Malformed,
    /// mac1 did not verify: not addressed to us or corrupted.
    #[error("invalid mac1")]
    InvalidMac1,
    /// Under load and mac2 missing or wrong; a cookie reply was sent instead.
    #[error("cookie required")]
    CookieRequired,
    /// An AEAD tag did not verify.
    #[error("decryption failed")]
    DecryptFailed,
    /// A DH with a low-order public key.
    #[error("low-order public key")]
    LowOrderPoint,
    /// The initiator's static key is not a configured peer.
    #[error("unknown peer")]
    UnknownPeer,
    /// The receiver index matches no session or handshake.
    #[error("unknown receiver index")]
    UnknownIndex,
    /// A handshake initiation whose timestamp is not newer than the last one (replay).
    #[error("stale handshake timestamp")]
    StaleTimestamp,
    /// Initiations from this peer arrive faster than the allowed rate.
    #[error("handshake rate limited")]
    RateLimited,
    /// A transport counter already seen or too old for the replay window.
    #[error("replayed counter")]
    Replay,
    /// A session key past `REJECT_AFTER_TIME` or `REJECT_AFTER_MESSAGES`.
    #[error("session expired")]
    SessionExpired,
    /// A response or cookie reply for which no handshake is in flight.
    #[error("unexpected message")]
    Unexpected,
    /// No session to send with: the packet waited for a handshake that did not complete in time
    /// (the staging queue overflowed, or the handshake gave up).
    #[error("no session")]
    NoSession,
    /// A decrypted packet's source address is not in the peer's allowed IPs.
    #[error("source not allowed")]
    SourceNotAllowed,
    /// The output buffer is too small for the result.
    #[error("buffer too small")]
    BufferTooSmall,
    /// A hybrid peer's handshake before the key agreement installed a PSK (never a session
    /// without ML-KEM).
    #[error("no hybrid key yet")]
    NoHybridKey,
    /// A packet from the TUN device whose destination no peer's allowed IPs cover (e.g. the
    /// kernel's IPv6 router solicitations on the tunnel interface). Not an authentication failure.
    #[error("no route to a peer")]
    NoRoute,
    /// A hybrid datagram whose `pair_id` names no hybrid peer (docs/protocol.md §4 step 2).
    #[error("unknown hybrid pair")]
    UnknownPair,
    /// A packet whose outer header says Congestion Experienced while the inner one is not
    /// ECN-capable: its sender cannot be told, so it is dropped (RFC 6040 §4.2).
    #[error("congestion experienced on a non-ECN packet")]
    EcnNotEct,
}

impl DropReason {
    /// Every reason, in [`DropReason::index`] order (for counter arrays and metrics labels).
    pub const ALL: [DropReason; 19] = [
        Self::Malformed,
        Self::InvalidMac1,
        Self::CookieRequired,
        Self::DecryptFailed,
        Self::LowOrderPoint,
        Self::UnknownPeer,
        Self::UnknownIndex,
        Self::StaleTimestamp,
        Self::RateLimited,
        Self::Replay,
        Self::SessionExpired,
        Self::Unexpected,
        Self::NoSession,
        Self::SourceNotAllowed,
        Self::BufferTooSmall,
        Self::NoHybridKey,
        Self::NoRoute,
        Self::UnknownPair,
        Self::EcnNotEct,
    ];

    /// `counts` (indexed by [`DropReason::index`]) by label, for status, metrics and the ops view.
    pub fn by_label(counts: &[u64; Self::ALL.len()]) -> std::collections::BTreeMap<String, u64> {
        (Self::ALL.iter())
            .map(|r| (r.label().to_owned(), counts[r.index()]))
            .collect()
    }

    /// Position in [`DropReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Stable snake_case label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::InvalidMac1 => "invalid_mac1",
            Self::CookieRequired => "cookie_required",
            Self::DecryptFailed => "decrypt_failed",
            Self::LowOrderPoint => "low_order_point",
            Self::UnknownPeer => "unknown_peer",
            Self::UnknownIndex => "unknown_index",
            Self::StaleTimestamp => "stale_timestamp",
            Self::RateLimited => "rate_limited",
            Self::Replay => "replay",
            Self::SessionExpired => "session_expired",
            Self::Unexpected => "unexpected",
            Self::NoSession => "no_session",
            Self::SourceNotAllowed => "source_not_allowed",
            Self::BufferTooSmall => "buffer_too_small",
            Self::NoHybridKey => "no_hybrid_key",
            Self::NoRoute => "no_route",
            Self::UnknownPair => "unknown_pair",
            Self::EcnNotEct => "ecn_not_ect",
        }
    }
}

/// Errors that stop an operation of the gateway (configuration, keys, I/O).
#[non_exhaustive]
#[derive(Debug, Error)]
pub enum Error {
    /// A datagram was rejected; see [`DropReason`].
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(#[from] DropReason),
    /// A key in the wrong format (Base64 of 32 bytes expected).
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// Two peers with the same public key, or a peer with our own key.
    #[error("duplicate peer public key")]
    DuplicatePeer,
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_match_all_order_and_labels_are_unique() {
        let mut labels = std::collections::HashSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(labels.insert(r.label()));
        }
    }
}

//! What a [`super::Node`] tells its driver happened: lifecycle events for the log, hybrid
//! key-agreement facts for the log and metrics, and records for the audit log (docs/audit.md §3).
//! Never per packet, never key material.

use super::PeerId;
use crate::audit::AuditEvent;
use crate::hybrid::HybridEvent;
use crate::proto::peer::Event;

/// An event of the node, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A WireGuard session lifecycle event of `peer` (confirmed, gave up, keys zeroed).
    Session {
        /// The peer.
        peer: PeerId,
        /// What happened.
        event: Event,
    },
    /// A hybrid key-agreement fact about `peer` (epoch installed, fallback, blocked, refused).
    Hybrid {
        /// The peer.
        peer: PeerId,
        /// What happened.
        event: HybridEvent,
    },
    /// A record for the audit log.
    Audit(AuditEvent),
}

//! What the daemon writes to its log about the node's events: one line per lifecycle event, never
//! per packet, never key material (key IDs are public). The audit log gets its records from the
//! audit thread; these lines are for the operator reading the journal.

use tracing::{debug, error, info, warn};

use crate::audit::AuditEvent;
use crate::hybrid::HybridEvent;
use crate::node::{Node, NodeEvent};
use crate::proto::peer::Event;

/// Logs one event of `node`.
pub fn event(node: &Node, e: &NodeEvent) {
    match e {
        NodeEvent::Session { peer, event } => session(node.peer_name(*peer), event),
        NodeEvent::Hybrid { peer, event } => hybrid(node.peer_name(*peer), event),
        NodeEvent::Audit(record) => audit(record),
    }
}

fn session(peer: &str, e: &Event) {
    match e {
        Event::SessionConfirmed {
            epoch,
            psk_id,
            initiator,
        } => {
            // `epoch` is WireGuard's session number; the hybrid epoch is in the `epoch_in_use`
            // audit record and `qgw status`.
            let psk_id = psk_id.map_or(0, |id| id.get());
            info!(
                peer,
                session = epoch,
                psk_id,
                initiator,
                "session confirmed"
            )
        }
        Event::HandshakeGaveUp => warn!(peer, "handshake gave up"),
        Event::KeysZeroed => info!(peer, "keys zeroed"),
        Event::EpochNeeded => debug!(peer, "hybrid epoch needed"),
    }
}

fn hybrid(peer: &str, e: &HybridEvent) {
    match e {
        HybridEvent::EpochInstalled(info) => {
            let ids: Vec<String> = info.key_ids.iter().map(ToString::to_string).collect();
            info!(
                peer,
                epoch = info.epoch,
                sources = info.sources.label(),
                qkd_key_ids = ?ids,
                "hybrid epoch installed"
            )
        }
        HybridEvent::Fallback { epoch } => warn!(
            peer,
            epoch, "QKD unavailable: epoch falls back to x25519+mlkem (policy preferred)"
        ),
        HybridEvent::QkdBlocked { epoch } => warn!(
            peer,
            epoch, "QKD unavailable: no new epoch (policy required)"
        ),
        HybridEvent::Rejected {
            epoch,
            reason,
            sent,
        } => warn!(peer, epoch, ?reason, sent, "hybrid exchange rejected"),
        HybridEvent::KeyMismatch { epoch, key_ids } => {
            let ids: Vec<String> = key_ids.iter().map(ToString::to_string).collect();
            error!(
                peer,
                epoch,
                qkd_key_ids = ?ids,
                "the two sites derived different keys (their KMEs disagree on the QKD key): epoch abandoned, trying again"
            )
        }
        HybridEvent::ExchangeAbandoned { epoch } => {
            warn!(peer, epoch, "hybrid exchange got no answer; starting over")
        }
    }
}

/// The log line of an audit record (epochs are already logged as hybrid events).
fn audit(e: &AuditEvent) {
    match e {
        AuditEvent::PeerUp { peer } => info!(peer, "peer up"),
        AuditEvent::PeerDown { peer, reason } => warn!(peer, reason, "peer down"),
        AuditEvent::PolicyTransition { peer, from, to } => info!(
            peer,
            from = from.map_or("startup", |f| f.label()),
            to = to.label(),
            "policy state"
        ),
        AuditEvent::FailClosedEnter { peer, reason } => {
            warn!(peer, reason, "fail-closed: traffic to this peer is refused")
        }
        AuditEvent::FailClosedExit { peer } => info!(peer, "fail-closed ended"),
        AuditEvent::AuthFailure {
            peer,
            reason,
            count,
            ..
        } => warn!(
            peer = peer.as_deref().unwrap_or("-"),
            reason, count, "authentication failures"
        ),
        _ => {}
    }
}

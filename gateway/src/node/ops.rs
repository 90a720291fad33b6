//! The node's operations evaluation (docs/audit.md §3, docs/operations.md): every
//! [`EVALUATE_EVERY`] each peer is classified (usable session, policy state) from a cheap snapshot,
//! and what changed becomes audit records, as do aggregated authentication failures.

use std::time::{Duration, Instant};

use super::{Node, NodeEvent};
use crate::error::DropReason;
use crate::hybrid::QkdPolicy;
use crate::ops::watch::{HybridSnapshot, INTERFACE_AUTH_REASONS};
use crate::ops::{AuthCounter, PeerSnapshot};

/// How often peers are re-classified (policy state, up/down): often enough that an audit record's
/// time is within this of the real transition, rarely enough to cost nothing on the data path.
pub const EVALUATE_EVERY: Duration = Duration::from_millis(250);

/// When the next evaluation is due, and the interface's authentication-failure reports.
#[derive(Debug)]
pub(super) struct OpsClock {
    next: Instant,
    interface_auth: AuthCounter,
}

impl OpsClock {
    /// The first evaluation is due at once.
    pub(super) fn new(now: Instant) -> Self {
        Self {
            next: now,
            interface_auth: AuthCounter::default(),
        }
    }

    pub(super) fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    pub(super) fn next(&self) -> Instant {
        self.next
    }
}

impl Node {
    /// Re-classifies every peer and reports what changed as audit records.
    pub(super) fn evaluate(&mut self, now: Instant) {
        self.ops.next = now + EVALUATE_EVERY;
        let mut records = Vec::new();
        for id in self.peers.ids() {
            let Some(slot) = self.peers.get_mut(id) else {
                continue;
            };
            let snapshot = PeerSnapshot {
                usable: slot.wg.has_usable_session(now),
                hybrid: slot.hybrid.as_ref().map(|h| HybridSnapshot {
                    qkd_configured: h.policy() != QkdPolicy::Off,
                    current_has_qkd: (slot.wg.current_psk_id())
                        .and_then(|id| h.epoch_of(id))
                        .map(|(info, _)| info.sources.has_qkd()),
                    drops: h.stats().drops_by_label(),
                }),
            };
            slot.watch
                .evaluate(now, &slot.name, &snapshot, &mut records);
        }
        let drops = DropReason::by_label(&self.drops);
        let auth = &mut self.ops.interface_auth;
        auth.report(now, &drops, &INTERFACE_AUTH_REASONS, None, &mut records);
        for record in records {
            self.emit(NodeEvent::Audit(record));
        }
    }
}

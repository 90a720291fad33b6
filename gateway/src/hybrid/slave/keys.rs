//! The slave's KME answers (docs/protocol.md §6.2 step 4, §6.3): one request per source the Init
//! names, each resolved at that source's KME; the keys are joined in source order, and the first
//! source that fails ends the exchange with a signed Reject.

use std::time::Instant;

use super::super::body::RejectReason;
use super::super::outbox::RequestId;
use super::super::shared::Shared;
use super::super::sources;
use super::super::{QkdFailure, QkdResult, SourceResult};
use super::SlaveState;

impl SlaveState {
    /// A KME's answer for the pending Init's key IDs of one source (§6.2 step 4). Every source
    /// named must deliver exactly its key IDs; the first that does not ends the exchange with a
    /// Reject.
    pub(in super::super) fn handle_qkd(
        &mut self,
        s: &mut Shared,
        now: Instant,
        request: RequestId,
        result: QkdResult,
    ) {
        let Some(pending) = self.pending.as_mut() else {
            return;
        };
        let Some((_, source, key_ids)) = pending.asked.iter().find(|(id, ..)| *id == request)
        else {
            return;
        };
        let source = *source;
        if pending.delivered.iter().any(|(d, _)| *d == source) {
            return;
        }
        s.stats.source(source, SourceResult::of(&result));
        let reason = match result {
            Ok(material) if material.key_ids() == key_ids.as_slice() => {
                pending.delivered.push((source, material));
                if pending.delivered.len() < pending.asked.len() {
                    return;
                }
                None
            }
            Ok(_) | Err(QkdFailure::NotFound) => Some(RejectReason::QkdRefused),
            Err(QkdFailure::Unavailable) => Some(RejectReason::QkdUnavailable),
        };
        let Some(mut pending) = self.pending.take() else {
            return;
        };
        if let Some(reason) = reason {
            self.send_reject(s, pending.answering, reason);
            return;
        }
        // In source order, which is the Init's order (its tags do not decrease).
        pending.delivered.sort_by_key(|(source, _)| *source);
        let parts = std::mem::take(&mut pending.delivered);
        match sources::concat(parts.into_iter().map(|(_, m)| m).collect()) {
            Ok(material) if material.key_ids() == pending.key_ids.as_slice() => {
                self.respond(s, now, *pending, Some(material));
            }
            _ => self.send_reject(s, pending.answering, RejectReason::QkdRefused),
        }
    }
}

//! [`PeerWatch`]: one peer's operational state and the events the audit log records about it;
//! [`AuthCounter`]: authentication failures reported as aggregated increases.
//!
//! Sans-IO: the node hands them events and snapshots with `now`; they never read a clock or a
//! socket. Everything they keep is bounded by the number of reason labels.
//!
//! Authentication failures arrive as cumulative drop counters, not one call per forged datagram:
//! [`AuthCounter::report`] reports the increase since the last report at most once per
//! [`AUTH_REPORT_INTERVAL`] per reason, so a flood of forgeries costs one audit record per
//! interval and reason, with its count, instead of filling the disk.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::policy::PolicyState;
use crate::audit::AuditEvent;
use crate::hybrid::{HybridEvent, Role};

/// Shortest time between two authentication-failure reports for the same (peer, reason).
pub const AUTH_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Interface drop reasons that mean "someone sent us something that failed authentication".
pub const INTERFACE_AUTH_REASONS: [&str; 5] = [
    "invalid_mac1",
    "decrypt_failed",
    "unknown_peer",
    "stale_timestamp",
    "low_order_point",
];

/// Hybrid drop reasons that mean an authentication failure of a hybrid message.
pub const HYBRID_AUTH_REASONS: [&str; 5] =
    ["bad_mac", "bad_signature", "replay", "stale", "bad_confirm"];

/// What the node knows about one peer right now (cheap to build at every evaluation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerSnapshot {
    /// A session that may send exists.
    pub usable: bool,
    /// `Some` for hybrid peers.
    pub hybrid: Option<HybridSnapshot>,
}

/// The hybrid part of a [`PeerSnapshot`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HybridSnapshot {
    /// The peer's policy asks for QKD (`required` or `preferred`).
    pub qkd_configured: bool,
    /// Whether the epoch in force used QKD (`None`: no epoch yet).
    pub current_has_qkd: Option<bool>,
    /// Cumulative hybrid drops by reason label.
    pub drops: BTreeMap<String, u64>,
}

/// What metrics and status show about one peer beyond the protocol counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerOpsView {
    /// Policy state (hybrid peers only).
    pub policy_state: Option<PolicyState>,
    /// Whether QKD is configured for it.
    pub qkd_configured: bool,
    /// Installed epochs by key-source combination.
    pub epochs_by_source: BTreeMap<String, u64>,
    /// Hybrid exchange failures by reason (`hybrid_abandoned`, `hybrid_rejected`).
    pub hybrid_failures: BTreeMap<String, u64>,
}

/// One peer's operational state.
#[derive(Debug, Default)]
pub struct PeerWatch {
    up: bool,
    state: Option<PolicyState>,
    view: PeerOpsView,
    /// The last epoch attempt was blocked by the QKD policy (cleared by an installed epoch).
    qkd_blocked: bool,
    /// A fail-closed entry was reported and its exit not yet.
    fail_closed_entered: bool,
    auth: AuthCounter,
}

impl PeerWatch {
    /// A hybrid event of this peer, named `name` (in `role`); returns what to audit.
    pub fn on_hybrid_event(
        &mut self,
        name: &str,
        role: Role,
        event: &HybridEvent,
    ) -> Option<AuditEvent> {
        let bump =
            |m: &mut BTreeMap<String, u64>, k: &str| *m.entry(k.to_owned()).or_insert(0) += 1;
        match event {
            HybridEvent::EpochInstalled(info) => {
                self.qkd_blocked = false;
                bump(&mut self.view.epochs_by_source, info.sources.label());
                return Some(AuditEvent::epoch_installed(name, role, info));
            }
            HybridEvent::QkdBlocked { .. } => self.qkd_blocked = true,
            HybridEvent::Rejected { .. } => bump(&mut self.view.hybrid_failures, "hybrid_rejected"),
            HybridEvent::ExchangeAbandoned { .. } => {
                bump(&mut self.view.hybrid_failures, "hybrid_abandoned")
            }
            HybridEvent::KeyMismatch { epoch, key_ids } => {
                bump(&mut self.view.hybrid_failures, "hybrid_key_mismatch");
                return Some(AuditEvent::KeyMismatch {
                    peer: name.to_owned(),
                    epoch: *epoch,
                    qkd_key_ids: key_ids.clone(),
                });
            }
            HybridEvent::Fallback { .. } => {}
        }
        None
    }

    /// Re-evaluates this peer (`name`, `snap`) at `now`; appends what changed to `out`.
    pub fn evaluate(
        &mut self,
        now: Instant,
        name: &str,
        snap: &PeerSnapshot,
        out: &mut Vec<AuditEvent>,
    ) {
        let blocked = self.qkd_blocked;
        let down_reason = || match blocked {
            true => "qkd_unavailable".to_owned(),
            false => "keys_expired".to_owned(),
        };
        if snap.usable != self.up {
            out.push(match snap.usable {
                true => AuditEvent::PeerUp { peer: name.into() },
                false => AuditEvent::PeerDown {
                    peer: name.into(),
                    reason: down_reason(),
                },
            });
        }
        self.up = snap.usable;
        let Some(h) = &snap.hybrid else {
            return;
        };
        let state = PolicyState::classify(snap.usable, h.qkd_configured, h.current_has_qkd);
        if self.state != Some(state) {
            out.push(AuditEvent::PolicyTransition {
                peer: name.into(),
                from: self.state,
                to: state,
            });
            // Entry is news only for a peer that had keys: at startup every peer passes
            // through fail-closed before its first session, and that is no outage.
            if state == PolicyState::FailClosed && self.state.is_some() {
                self.fail_closed_entered = true;
                out.push(AuditEvent::FailClosedEnter {
                    peer: name.into(),
                    reason: down_reason(),
                });
            } else if std::mem::take(&mut self.fail_closed_entered) {
                out.push(AuditEvent::FailClosedExit { peer: name.into() });
            }
        }
        self.state = Some(state);
        self.view.policy_state = Some(state);
        self.view.qkd_configured = h.qkd_configured;
        self.auth
            .report(now, &h.drops, &HYBRID_AUTH_REASONS, Some(name), out);
    }

    /// What metrics and status show about this peer.
    pub fn view(&self) -> &PeerOpsView {
        &self.view
    }

    /// Whether the peer had a usable session at the last evaluation.
    pub fn is_up(&self) -> bool {
        self.up
    }
}

/// Cumulative counters reported as increases, at most once per interval per reason.
#[derive(Debug, Default)]
pub struct AuthCounter {
    reported: BTreeMap<String, u64>,
    last_report: BTreeMap<String, Instant>,
}

impl AuthCounter {
    /// Appends an `auth_failure` record to `out` for each of `reasons` whose count in `current`
    /// grew since the last report, if that was at least [`AUTH_REPORT_INTERVAL`] ago.
    pub fn report(
        &mut self,
        now: Instant,
        current: &BTreeMap<String, u64>,
        reasons: &[&str],
        peer: Option<&str>,
        out: &mut Vec<AuditEvent>,
    ) {
        for reason in reasons {
            let total = current.get(*reason).copied().unwrap_or(0);
            let done = self.reported.get(*reason).copied().unwrap_or(0);
            let due = self
                .last_report
                .get(*reason)
                .is_none_or(|t| now.saturating_duration_since(*t) >= AUTH_REPORT_INTERVAL);
            if total > done && due {
                out.push(AuditEvent::AuthFailure {
                    peer: peer.map(str::to_owned),
                    reason: (*reason).to_owned(),
                    source: None,
                    count: total - done,
                });
                self.reported.insert((*reason).to_owned(), total);
                self.last_report.insert((*reason).to_owned(), now);
            }
        }
    }
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;

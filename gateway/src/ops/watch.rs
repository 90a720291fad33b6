//! [`Watch`]: per-peer operational state and the events the audit log records.
//!
//! Sans-IO: the daemon hands it events and snapshots with `now`; it never reads a clock or a
//! socket. Everything it keeps is bounded by the number of peers and of reason labels.
//!
//! Authentication failures arrive as cumulative drop counters, not one call per forged datagram:
//! [`Watch::evaluate`] reports the increase since the last report at most once per
//! [`AUTH_REPORT_INTERVAL`] per (peer, reason), so a flood of forgeries costs one audit record per
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
pub const HYBRID_AUTH_REASONS: [&str; 4] = ["bad_mac", "bad_signature", "replay", "bad_confirm"];

/// What the daemon knows about one peer right now (cheap to build every loop turn).
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

#[derive(Debug, Default)]
struct PeerWatch {
    up: bool,
    state: Option<PolicyState>,
    view: PeerOpsView,
    /// The last epoch attempt was blocked by the QKD policy (cleared by an installed epoch).
    qkd_blocked: bool,
    /// A fail-closed entry was reported and its exit not yet.
    fail_closed_entered: bool,
    auth: AuthCounter,
}

/// Cumulative counters reported as increases, at most once per interval per reason.
#[derive(Debug, Default)]
struct AuthCounter {
    reported: BTreeMap<String, u64>,
    last_report: BTreeMap<String, Instant>,
}

impl AuthCounter {
    fn report(
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

/// Every peer of one interface, by interface peer id.
#[derive(Debug, Default)]
pub struct Watch {
    peers: Vec<PeerWatch>,
    interface_auth: AuthCounter,
}

impl Watch {
    /// An empty tracker; peers appear as ids are used.
    pub fn new() -> Self {
        Self::default()
    }

    fn peer(&mut self, id: usize) -> &mut PeerWatch {
        if self.peers.len() <= id {
            self.peers.resize_with(id + 1, PeerWatch::default);
        }
        &mut self.peers[id]
    }

    /// A hybrid event of peer `id` named `name` (in `role`); returns what to audit.
    pub fn on_hybrid_event(
        &mut self,
        id: usize,
        name: &str,
        role: Role,
        event: &HybridEvent,
    ) -> Option<AuditEvent> {
        let p = self.peer(id);
        let bump =
            |m: &mut BTreeMap<String, u64>, k: &str| *m.entry(k.to_owned()).or_insert(0) += 1;
        match event {
            HybridEvent::EpochInstalled(info) => {
                p.qkd_blocked = false;
                bump(&mut p.view.epochs_by_source, info.sources.label());
                return Some(AuditEvent::epoch_installed(name, role, info));
            }
            HybridEvent::QkdBlocked { .. } => p.qkd_blocked = true,
            HybridEvent::Rejected { .. } => bump(&mut p.view.hybrid_failures, "hybrid_rejected"),
            HybridEvent::ExchangeAbandoned { .. } => {
                bump(&mut p.view.hybrid_failures, "hybrid_abandoned")
            }
            HybridEvent::Fallback { .. } => {}
        }
        None
    }

    /// Re-evaluates every peer (`names[id]`, `snapshots[id]`) and the interface drop counters;
    /// appends what changed to `out`.
    pub fn evaluate(
        &mut self,
        now: Instant,
        names: &[String],
        snapshots: &[PeerSnapshot],
        interface_drops: &BTreeMap<String, u64>,
        out: &mut Vec<AuditEvent>,
    ) {
        for (id, snap) in snapshots.iter().enumerate() {
            let name = names.get(id).map_or("?", String::as_str);
            let p = self.peer(id);
            let blocked = p.qkd_blocked;
            let down_reason = || match blocked {
                true => "qkd_unavailable".to_owned(),
                false => "keys_expired".to_owned(),
            };
            if snap.usable != p.up {
                out.push(match snap.usable {
                    true => AuditEvent::PeerUp { peer: name.into() },
                    false => AuditEvent::PeerDown {
                        peer: name.into(),
                        reason: down_reason(),
                    },
                });
            }
            let Some(h) = &snap.hybrid else {
                p.up = snap.usable;
                continue;
            };
            let state = PolicyState::classify(snap.usable, h.qkd_configured, h.current_has_qkd);
            if p.state != Some(state) {
                out.push(AuditEvent::PolicyTransition {
                    peer: name.into(),
                    from: p.state,
                    to: state,
                });
                // Entry is news only for a peer that had keys: at startup every peer passes
                // through fail-closed before its first session, and that is no outage.
                if state == PolicyState::FailClosed && p.state.is_some() {
                    p.fail_closed_entered = true;
                    out.push(AuditEvent::FailClosedEnter {
                        peer: name.into(),
                        reason: down_reason(),
                    });
                } else if std::mem::take(&mut p.fail_closed_entered) {
                    out.push(AuditEvent::FailClosedExit { peer: name.into() });
                }
            }
            p.up = snap.usable;
            p.state = Some(state);
            p.view.policy_state = Some(state);
            p.view.qkd_configured = h.qkd_configured;
            p.auth
                .report(now, &h.drops, &HYBRID_AUTH_REASONS, Some(name), out);
        }
        self.interface_auth
            .report(now, interface_drops, &INTERFACE_AUTH_REASONS, None, out);
    }

    /// What metrics and status show about peer `id`.
    pub fn view(&self, id: usize) -> PeerOpsView {
        self.peers
            .get(id)
            .map(|p| p.view.clone())
            .unwrap_or_default()
    }

    /// Whether every peer evaluated so far has a usable session (readiness).
    pub fn all_up(&self) -> bool {
        self.peers.iter().all(|p| p.up)
    }

    /// Names of peers without a usable session, for the readiness answer.
    pub fn down_peers<'a>(&self, names: &'a [String]) -> Vec<&'a str> {
        (self.peers.iter().enumerate())
            .filter(|(_, p)| !p.up)
            .filter_map(|(id, _)| names.get(id).map(String::as_str))
            .collect()
    }
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;

//! Operations view of the tunnel: what an SRE graphs and what the security officer's audit trail
//! records, derived from the protocol layers without reaching into them.
//!
//! [`watch::Watch`] is a sans-IO tracker fed by the daemon once per event-loop turn: WireGuard
//! [`crate::proto::peer::Event`]s, [`crate::hybrid::HybridEvent`]s, and a cheap per-peer snapshot
//! (does a usable session exist, which sources the epoch in force has, cumulative drop counters).
//! From them it keeps per-peer counters (epochs by key-source combination, handshake failures by
//! reason), classifies each peer's [`policy::PolicyState`], and yields [`crate::audit::AuditEvent`]s on
//! every change: peer up/down, policy transitions, fail-closed entry/exit, epochs and aggregated
//! authentication failures. The daemon writes those to the audit log (`docs/audit.md`); the
//! metrics endpoint exports the counters and states (`docs/operations.md`).

pub mod policy;
pub mod watch;

pub use policy::PolicyState;
pub use watch::{PeerOpsView, PeerSnapshot, Watch};

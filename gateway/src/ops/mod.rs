//! Operations view of the tunnel: what an SRE graphs and what the security officer's audit trail
//! records, derived from the protocol layers without reaching into them.
//!
//! Each peer of the [`crate::node::Node`] carries a sans-IO [`watch::PeerWatch`], fed with
//! [`crate::hybrid::HybridEvent`]s and, at every evaluation, a cheap [`watch::PeerSnapshot`] (does
//! a usable session exist, which sources the epoch in force has, cumulative drop counters). From
//! them it keeps per-peer counters (epochs by key-source combination, exchange failures by
//! reason), classifies the peer's [`policy::PolicyState`], and yields [`crate::audit::AuditEvent`]s
//! on every change: peer up/down, policy transitions, fail-closed entry/exit, epochs and
//! aggregated authentication failures ([`watch::AuthCounter`], also for the interface's own
//! drops). The daemon writes those to the audit log (`docs/audit.md`); the metrics endpoint
//! exports the counters and states (`docs/operations.md`).

pub mod policy;
pub mod watch;

pub use policy::PolicyState;
pub use watch::{AuthCounter, PeerOpsView, PeerSnapshot, PeerWatch};

//! `qgw status`: a snapshot of one interface (what `wg show` prints, plus the key epoch and the drop
//! counters), sent as JSON over the status socket and rendered as text or JSON by the CLI.
//!
//! The JSON is a stable interface for monitoring: fields are only ever added. No key material is in
//! it, only public keys.

use std::collections::BTreeMap;
use std::time::Instant;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::DropReason;
use crate::proto::crypto::Entropy;
use crate::proto::interface::Interface;
use crate::proto::tai64n::WallClock;

/// One interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Interface name.
    pub interface: String,
    /// Our public key (Base64).
    pub public_key: String,
    /// Bound UDP port.
    pub listen_port: u16,
    /// Cookie replies sent (handshakes refused under load until the sender proves its address).
    pub cookie_replies_sent: u64,
    /// Datagrams and packets dropped, by reason label ([`DropReason::label`]).
    pub drops: BTreeMap<String, u64>,
    /// Peers in configuration order.
    pub peers: Vec<PeerStatus>,
    /// Build and uptime of the daemon.
    #[serde(default)]
    pub process: Option<ProcessStatus>,
    /// The KME client's counters (absent without a KME).
    #[serde(default)]
    pub qkd: Option<QkdStatus>,
    /// The audit log's counters (absent without `audit:`).
    #[serde(default)]
    pub audit: Option<AuditStatus>,
}

/// The daemon process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStatus {
    /// Crate version.
    pub version: String,
    /// Git commit it was built from (`unknown` outside a checkout).
    pub commit: String,
    /// Unix seconds when the daemon started.
    pub start_time_unix: u64,
    /// Seconds since then.
    pub uptime_seconds: u64,
}

/// The KME client (ETSI GS QKD 014) of this interface: a copy of [`qkd_link::MetricsSnapshot`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QkdStatus {
    /// HTTP requests completed or failed.
    pub requests: u64,
    /// Keys received.
    pub keys_fetched: u64,
    /// Bytes of key material received.
    pub key_bytes: u64,
    /// Errors by kind (`connect`, `timeout`, `tls`, `service_unavailable`, …).
    pub errors: BTreeMap<String, u64>,
    /// Request latency: `(upper bound in ms, cumulative count)`; the last bound is `None` (+Inf).
    pub latency_buckets: Vec<(Option<u64>, u64)>,
    /// Sum of all request latencies in microseconds.
    pub latency_sum_us: u64,
    /// Keys waiting in the prefetch buffer.
    pub prefetch_keys: u64,
    /// Whether the last request reached the KME (`None` before the first request).
    pub kme_reachable: Option<bool>,
}

impl QkdStatus {
    /// Copies the client's counters.
    pub fn from_snapshot(m: &qkd_link::MetricsSnapshot) -> Self {
        let bounds = qkd_link::metrics::LATENCY_BUCKETS_MS
            .iter()
            .map(|b| Some(*b));
        Self {
            requests: m.requests,
            keys_fetched: m.keys_fetched,
            key_bytes: m.key_bytes,
            errors: m
                .errors
                .iter()
                .map(|(k, n)| (k.as_str().to_owned(), *n))
                .collect(),
            latency_buckets: bounds.chain([None]).zip(m.latency_cumulative()).collect(),
            latency_sum_us: m.latency_sum_us,
            prefetch_keys: m.buffer_level,
            kme_reachable: (m.requests > 0).then_some(m.kme_reachable),
        }
    }
}

/// The audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditStatus {
    /// Where it is written.
    pub path: String,
    /// Records written since start.
    pub records: u64,
    /// Records that could not be written.
    pub write_errors: u64,
}

/// One peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Name from the configuration (`uapi-…` for peers added with `wg set`).
    pub name: String,
    /// Its public key (Base64).
    pub public_key: String,
    /// Current endpoint (learned from authenticated packets), if any.
    pub endpoint: Option<String>,
    /// Allowed IPs in CIDR form.
    pub allowed_ips: Vec<String>,
    /// Unix seconds of the last confirmed handshake; `None` before the first.
    pub latest_handshake_unix: Option<u64>,
    /// Transport bytes received (UDP payload, as `wg show transfer`).
    pub rx_bytes: u64,
    /// Transport bytes sent.
    pub tx_bytes: u64,
    /// Number of the session in force (counts handshakes; 0 before the first).
    pub key_epoch: u64,
    /// Persistent keepalive interval in seconds, if on.
    pub persistent_keepalive: Option<u64>,
    /// `off`: plain WireGuard; `master` / `slave`: the hybrid key agreement in that role.
    pub hybrid: String,
    /// The hybrid epoch in force (0 before the first, and for plain WireGuard peers).
    #[serde(default)]
    pub epoch: u64,
    /// Seconds since the current hybrid epoch was installed.
    #[serde(default)]
    pub epoch_age_seconds: Option<u64>,
    /// The secrets the current keys depend on: `x25519`, `mlkem`, `qkd`.
    #[serde(default)]
    pub key_sources: Vec<String>,
    /// The ETSI 014 key ID of the current epoch's QKD key (never the key).
    #[serde(default)]
    pub qkd_key_id: Option<String>,
    /// Hybrid datagrams or messages dropped, by reason (`bad_mac`, `replay`, `bad_signature`, …).
    #[serde(default)]
    pub hybrid_drops: BTreeMap<String, u64>,
    /// ML-DSA-65 verifications performed (forged traffic must not drive this up).
    #[serde(default)]
    pub pq_signature_verifications: u64,
    /// ML-KEM-768 operations performed.
    #[serde(default)]
    pub pq_kem_operations: u64,
    /// Hybrid exchanges refused (Reject sent or received), by reason (`qkd_refused`, …).
    #[serde(default)]
    pub hybrid_rejects: BTreeMap<String, u64>,
    /// Transport packets received (keepalives included).
    #[serde(default)]
    pub rx_packets: u64,
    /// Transport packets sent (keepalives included).
    #[serde(default)]
    pub tx_packets: u64,
    /// Handshakes completed.
    #[serde(default)]
    pub handshakes: u64,
    /// Handshake failures by reason: `timeout` (an attempt retransmitted), `gave_up`,
    /// `hybrid_abandoned`, `hybrid_rejected`.
    #[serde(default)]
    pub handshake_failures: BTreeMap<String, u64>,
    /// Whether a session that may send exists now.
    #[serde(default)]
    pub session_usable: bool,
    /// `normal`, `fallback` or `fail_closed` (hybrid peers; see [`crate::ops::PolicyState`]).
    #[serde(default)]
    pub policy_state: Option<String>,
    /// Whether the peer's policy asks for QKD.
    #[serde(default)]
    pub qkd_configured: bool,
    /// Hybrid epochs installed since start, by key-source combination.
    #[serde(default)]
    pub epochs_by_source: BTreeMap<String, u64>,
}

/// What the hybrid layer reports about one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HybridView {
    /// `master` or `slave`.
    pub role: &'static str,
    /// Current epoch (0: none yet).
    pub epoch: u64,
    /// Seconds since it was installed.
    pub age_seconds: Option<u64>,
    /// Sources of the current epoch.
    pub key_sources: Vec<String>,
    /// QKD key ID of the current epoch.
    pub qkd_key_id: Option<String>,
    /// Drops by reason label.
    pub drops: BTreeMap<String, u64>,
    /// ML-DSA-65 verifications performed.
    pub signature_verifications: u64,
    /// ML-KEM-768 operations performed.
    pub kem_operations: u64,
    /// Rejects by reason label.
    pub rejects: BTreeMap<String, u64>,
}

/// Base64 as `wg` prints keys.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Status {
    /// Collects the status of `ifc` at `now`; `names[i]` names peer `i`.
    #[allow(clippy::too_many_arguments)]
    pub fn collect<R: Entropy>(
        now: Instant,
        name: &str,
        listen_port: u16,
        ifc: &Interface<R>,
        names: &[String],
        clock: &WallClock,
        hybrid: &dyn Fn(usize) -> Option<HybridView>,
    ) -> Self {
        let drops = DropReason::by_label(ifc.drops());
        let routes = ifc.routes().entries();
        let peers = (0..ifc.peer_count())
            .filter_map(|id| {
                let p = ifc.peer(id)?;
                let st = p.stats();
                let h = hybrid(id);
                let key_sources = match &h {
                    Some(h) => h.key_sources.clone(),
                    None if st.last_handshake.is_some() => vec!["x25519".to_owned()],
                    None => Vec::new(),
                };
                Some(PeerStatus {
                    name: names.get(id).cloned().unwrap_or_default(),
                    public_key: b64(p.public_key()),
                    endpoint: p.endpoint().map(|e| e.to_string()),
                    allowed_ips: routes
                        .iter()
                        .filter(|(_, _, v)| *v == id)
                        .map(|(ip, len, _)| format!("{ip}/{len}"))
                        .collect(),
                    latest_handshake_unix: st.last_handshake.map(|t| clock.unix(t).as_secs()),
                    rx_bytes: st.rx_bytes,
                    tx_bytes: st.tx_bytes,
                    key_epoch: st.epoch,
                    persistent_keepalive: p.persistent_keepalive().map(|d| d.as_secs()),
                    hybrid: h.as_ref().map_or("off", |h| h.role).to_owned(),
                    epoch: h.as_ref().map_or(0, |h| h.epoch),
                    epoch_age_seconds: h.as_ref().and_then(|h| h.age_seconds),
                    key_sources,
                    qkd_key_id: h.as_ref().and_then(|h| h.qkd_key_id.clone()),
                    hybrid_drops: h.as_ref().map(|h| h.drops.clone()).unwrap_or_default(),
                    pq_signature_verifications: h.as_ref().map_or(0, |h| h.signature_verifications),
                    pq_kem_operations: h.as_ref().map_or(0, |h| h.kem_operations),
                    hybrid_rejects: h.as_ref().map(|h| h.rejects.clone()).unwrap_or_default(),
                    rx_packets: st.rx_packets,
                    tx_packets: st.tx_packets,
                    handshakes: st.handshakes,
                    handshake_failures: [
                        ("timeout", st.handshake_timeouts),
                        ("gave_up", st.handshake_gave_up),
                    ]
                    .into_iter()
                    .map(|(k, n)| (k.to_owned(), n))
                    .collect(),
                    session_usable: p.has_usable_session(now),
                    policy_state: None,
                    qkd_configured: false,
                    epochs_by_source: BTreeMap::new(),
                })
            })
            .collect();
        Self {
            interface: name.to_owned(),
            public_key: b64(ifc.public_key()),
            listen_port,
            cookie_replies_sent: ifc.drops()[DropReason::CookieRequired.index()],
            drops,
            peers,
            process: None,
            qkd: None,
            audit: None,
        }
    }

    /// Adds what the ops tracker knows to peer `id` (policy state, epochs by source, hybrid
    /// exchange failures).
    pub fn annotate_peer(&mut self, id: usize, view: &crate::ops::PeerOpsView) {
        let Some(p) = self.peers.get_mut(id) else {
            return;
        };
        p.policy_state = view.policy_state.map(|s| s.label().to_owned());
        p.qkd_configured = view.qkd_configured;
        p.epochs_by_source = view.epochs_by_source.clone();
        for (reason, n) in &view.hybrid_failures {
            p.handshake_failures.insert(reason.clone(), *n);
        }
    }

    /// Peers whose traffic would not pass now (no usable session): readiness fails while any.
    pub fn peers_not_ready(&self) -> Vec<&str> {
        (self.peers.iter())
            .filter(|p| !p.session_usable)
            .map(|p| p.name.as_str())
            .collect()
    }

    /// `wg show`-like text; `now_unix` turns handshake times into ages.
    pub fn render(&self, now_unix: u64) -> String {
        let mut s = format!(
            "interface: {}\n  public key: {}\n  listening port: {}\n",
            self.interface, self.public_key, self.listen_port
        );
        let dropped: u64 = self.drops.values().sum();
        s += &format!(
            "  dropped: {dropped} (cookie replies sent: {})\n",
            self.cookie_replies_sent
        );
        for p in &self.peers {
            s += &format!("\npeer: {} ({})\n", p.name, p.public_key);
            if let Some(e) = &p.endpoint {
                s += &format!("  endpoint: {e}\n");
            }
            let ips = if p.allowed_ips.is_empty() {
                "(none)".to_owned()
            } else {
                p.allowed_ips.join(", ")
            };
            s += &format!("  allowed ips: {ips}\n");
            if let Some(t) = p.latest_handshake_unix {
                s += &format!(
                    "  latest handshake: {} seconds ago\n",
                    now_unix.saturating_sub(t)
                );
            }
            s += &format!(
                "  transfer: {} B received, {} B sent\n  key epoch: {}\n  hybrid: {}\n",
                p.rx_bytes, p.tx_bytes, p.key_epoch, p.hybrid
            );
            if p.hybrid != "off" {
                s += &format!(
                    "  hybrid epoch: {} ({} s old), key sources: {}\n",
                    p.epoch,
                    p.epoch_age_seconds
                        .map_or("-".to_owned(), |a| a.to_string()),
                    p.key_sources.join("+")
                );
                if let Some(id) = &p.qkd_key_id {
                    s += &format!("  qkd key id: {id}\n");
                }
            }
            if let Some(k) = p.persistent_keepalive {
                s += &format!("  persistent keepalive: every {k} seconds\n");
            }
        }
        s
    }
}

/// Seconds since the Unix epoch now (CLI side).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A [`WallClock`] anchored now (daemon start).
pub fn wall_clock_now() -> WallClock {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    WallClock::new(Instant::now(), unix)
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;

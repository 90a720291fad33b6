//! `qgw status`: a snapshot of one interface (what `wg show` prints, plus the key epoch and the drop
//! counters), published by the node (`crate::node::Node::snapshot`) and completed by the daemon,
//! sent as JSON over the status socket and rendered as text or JSON by the CLI.
//!
//! The JSON is a stable interface for monitoring: fields are only ever added. No key material is in
//! it, only public keys.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

pub use super::status_classes::ClassStatus;
pub use super::status_sources::{KmeStatus, SourceStatus};

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
    /// The first KME client's counters (absent without a KME; every KME is in `kmes`).
    #[serde(default)]
    pub qkd: Option<QkdStatus>,
    /// Each KME of this site, in `qkd:` order, with its client's counters.
    #[serde(default)]
    pub kmes: Vec<KmeStatus>,
    /// The audit log's counters (absent without `audit:`).
    #[serde(default)]
    pub audit: Option<AuditStatus>,
    /// Control connections the daemon closed, by socket (`status`, `uapi`, `metrics`) and reason
    /// (`evicted`, `timeout`, `too_large`; `crate::control::conn::Dropped`).
    #[serde(default)]
    pub control_dropped: BTreeMap<String, BTreeMap<String, u64>>,
    /// The segmentation offloads in use (`interface.offload`), set by the daemon.
    #[serde(default)]
    pub offloads: Option<OffloadStatus>,
}

/// The data path: its TUN and UDP offloads and the threads that seal and open packets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffloadStatus {
    /// In use: `tun_vnet_hdr`, `tun_tso`, `tun_uso`, `udp_gso`, `udp_gro` (empty: none).
    pub in_use: Vec<String>,
    /// TUN super-packets refused, by reason (a kernel bug or a mismatch of the header size).
    pub tun_refused: BTreeMap<String, u64>,
    /// Sealed datagrams the UDP socket refused (send buffer full): lost as on a congested link.
    pub udp_send_dropped: u64,
    /// TUN super-packets (TSO/USO) cut into tunnel-MTU packets.
    #[serde(default)]
    pub tun_segmented: u64,
    /// Super-packets of coalesced TCP segments written to TUN.
    #[serde(default)]
    pub tun_coalesced: u64,
    /// UDP receives that held several coalesced datagrams (`UDP_GRO`).
    #[serde(default)]
    pub udp_coalesced: u64,
    /// Threads that seal and open packets, the packet thread included (`interface.threads`).
    #[serde(default)]
    pub crypto_threads: usize,
    /// Batches whose cipher work was shared among those threads.
    #[serde(default)]
    pub crypto_shared_batches: u64,
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
    /// `hybrid_abandoned`, `hybrid_rejected`, `hybrid_key_mismatch`.
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
    /// The peer's QKD sources, in order (hybrid peers with QKD; docs/protocol.md §6.3).
    #[serde(default)]
    pub qkd_sources: Vec<SourceStatus>,
    /// The four traffic classes at the peer's egress, in priority order (empty for a peer with
    /// neither `egress_rate` nor `outer_dscp`).
    #[serde(default)]
    pub classes: Vec<ClassStatus>,
}

/// Base64 as `wg` prints keys.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Status {
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
        if let Some(o) = &self.offloads {
            let in_use = if o.in_use.is_empty() {
                "none".to_owned()
            } else {
                o.in_use.join(" ")
            };
            s += &format!("  offloads: {in_use}\n");
            s += &format!(
                "  crypto threads: {} (batches shared: {})\n",
                o.crypto_threads, o.crypto_shared_batches
            );
        }
        let control: u64 = self.control_dropped.values().flat_map(|r| r.values()).sum();
        if control > 0 {
            s += &format!("  control connections dropped: {control}\n");
        }
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
                s += &super::status_sources::render(&p.qkd_sources);
            }
            if let Some(k) = p.persistent_keepalive {
                s += &format!("  persistent keepalive: every {k} seconds\n");
            }
            s += &super::status_classes::render(&p.classes);
        }
        s
    }
}

/// Whether `request`, as read from the status socket, asks for the status: `status`, with any
/// surrounding whitespace (`qgw status` sends `status\n\n`). Anything else is answered with an
/// error.
pub fn asks_for_status(request: &[u8]) -> bool {
    std::str::from_utf8(request).is_ok_and(|r| r.trim() == "status")
}

/// Seconds since the Unix epoch now (CLI side).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json_and_renders_like_wg_show() {
        let peer = serde_json::json!({
            "name": "site-b", "public_key": "AAAA", "endpoint": "10.0.0.2:51820",
            "allowed_ips": ["10.1.0.0/16"], "latest_handshake_unix": 1000, "rx_bytes": 1,
            "tx_bytes": 2, "key_epoch": 3, "persistent_keepalive": 25, "hybrid": "master",
            "epoch": 4, "epoch_age_seconds": 5, "key_sources": ["x25519", "mlkem", "qkd"],
            "qkd_key_id": "bc490419-7d60-487f-adc1-4ddcc177c139",
            "classes": [{"name": "telemonitoring", "packets": 1204, "bytes": 317440,
                "drops": 0, "queue_delay_p99_ms": 0.3}]
        });
        let st = Status {
            interface: "qgw0".into(),
            listen_port: 51820,
            peers: vec![serde_json::from_value(peer).unwrap()],
            ..Status::default()
        };
        let json = serde_json::to_string(&st).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), st);
        let text = st.render(1010);
        for line in [
            "peer: site-b (AAAA)",
            "  latest handshake: 10 seconds ago",
            "  hybrid epoch: 4 (5 s old), key sources: x25519+mlkem+qkd",
            "  qkd key id: bc490419-7d60-487f-adc1-4ddcc177c139",
            "  persistent keepalive: every 25 seconds",
            "  class telemonitoring: 1204 packets, 317440 B, 0 drops, queue p99 0.3 ms",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert_eq!(st.peers_not_ready(), ["site-b"], "no usable session");
    }

    #[test]
    fn only_status_asks_for_the_status() {
        for yes in [&b"status\n\n"[..], b"status", b" status\r\n"] {
            assert!(asks_for_status(yes), "{yes:?}");
        }
        for no in [
            &b"get=1\n\n"[..],
            b"",
            b"\n",
            b"status\nx\n\n",
            b"stat\xffus",
        ] {
            assert!(!asks_for_status(no), "{no:?}");
        }
    }
}

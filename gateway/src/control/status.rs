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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    pub fn collect<R: Entropy>(
        name: &str,
        listen_port: u16,
        ifc: &Interface<R>,
        names: &[String],
        clock: &WallClock,
        hybrid: &dyn Fn(usize) -> Option<HybridView>,
    ) -> Self {
        let drops = DropReason::ALL
            .iter()
            .map(|r| (r.label().to_owned(), ifc.drops()[r.index()]))
            .collect();
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
        }
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::proto::interface::PeerSpec;
    use crate::proto::secret::Secret;

    struct Fixed(u8);
    impl Entropy for Fixed {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 = self.0.wrapping_mul(31).wrapping_add(7);
                *b = self.0;
            }
        }
    }

    #[test]
    fn collects_peers_and_round_trips_through_json() {
        let clock = wall_clock_now();
        let mut ifc = Interface::new(Secret::new([7; 32]), clock, Fixed(1), 1420, 512);
        let other = crate::proto::handshake::StaticKeys::new(Secret::new([9; 32]));
        ifc.add_peer(PeerSpec {
            public_key: *other.public(),
            psk: None,
            endpoint: Some("10.0.0.2:51820".parse().unwrap()),
            allowed_ips: vec![("10.1.0.0".parse().unwrap(), 16)],
            persistent_keepalive: Some(std::time::Duration::from_secs(25)),
        })
        .unwrap();
        let st = Status::collect("qgw0", 51820, &ifc, &["site-b".into()], &clock, &|_| None);
        let p = &st.peers[0];
        assert_eq!(p.name, "site-b");
        assert_eq!(p.endpoint.as_deref(), Some("10.0.0.2:51820"));
        assert_eq!(p.allowed_ips, ["10.1.0.0/16"]);
        assert_eq!((p.latest_handshake_unix, p.key_epoch), (None, 0));
        assert_eq!(st.drops.len(), DropReason::ALL.len());
        let json = serde_json::to_string(&st).unwrap();
        for field in [
            "\"peers\"",
            "\"latest_handshake_unix\"",
            "\"rx_bytes\"",
            "\"tx_bytes\"",
        ] {
            assert!(json.contains(field), "{json}");
        }
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), st);
        let text = st.render(unix_now());
        assert!(
            text.contains("peer: site-b") && text.contains("every 25 seconds"),
            "{text}"
        );
    }
}

//! What the node publishes for the control plane: a [`Status`] (what `wg show` prints, plus
//! the hybrid epoch, key sources, policy state and drop counters), built on the packet thread and
//! read by the control thread, so no control client ever touches the node. No key material is in
//! it, only public keys and key IDs.

use std::collections::BTreeMap;
use std::time::Instant;

use super::Node;
use super::peers::PeerSlot;
use crate::control::status::{ClassStatus, PeerStatus, SourceStatus, Status, b64};

use crate::error::DropReason;
use crate::hybrid::QkdPolicy;
use crate::proto::tai64n::WallClock;

impl Node {
    /// The node's part of the status at `now`; the driver adds the interface name, port, process,
    /// KME and audit fields.
    pub fn snapshot(&self, now: Instant) -> Status {
        let routes = self.routes.entries();
        let peers = self
            .peers
            .iter()
            .map(|(id, slot)| {
                let allowed_ips = (routes.iter())
                    .filter(|(_, _, owner)| *owner == id)
                    .map(|(ip, len, _)| format!("{ip}/{len}"))
                    .collect();
                peer_status(now, &self.clock, slot, allowed_ips)
            })
            .collect();
        Status {
            public_key: b64(self.keys.public()),
            cookie_replies_sent: self.cookie_replies_sent,
            drops: DropReason::by_label(&self.drops),
            peers,
            ..Status::default()
        }
    }
}

fn peer_status(
    now: Instant,
    clock: &WallClock,
    slot: &PeerSlot,
    allowed_ips: Vec<String>,
) -> PeerStatus {
    let p = &slot.wg;
    let st = p.stats();
    let h = slot.hybrid.as_ref();
    // The epoch of the session carrying traffic, not the newest installed one.
    let current = h.zip(p.current_psk_id()).and_then(|(h, id)| h.epoch_of(id));
    let key_sources = match (h, current) {
        (Some(_), Some((info, _))) => info
            .sources
            .names()
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        (Some(_), None) => Vec::new(),
        (None, _) if st.last_handshake.is_some() => vec!["x25519".to_owned()],
        (None, _) => Vec::new(),
    };
    let view = slot.watch.view();
    let mut handshake_failures: BTreeMap<String, u64> = [
        ("timeout".to_owned(), st.handshake_timeouts),
        ("gave_up".to_owned(), st.handshake_gave_up),
    ]
    .into_iter()
    .collect();
    handshake_failures.extend(view.hybrid_failures.clone());
    let stats = h.map(|h| h.stats());
    let qkd_sources = match stats {
        Some(stats) if h.is_some_and(|h| h.policy() != QkdPolicy::Off) => {
            (slot.qkd_sources.iter().zip(&stats.sources))
                .map(|(source, s)| SourceStatus {
                    kme: source.kme_name.clone(),
                    peer_sae_id: source.peer_sae_id.as_str().to_owned(),
                    last: s.last.map(|r| r.label().to_owned()),
                    delivered: s.delivered,
                    failed: s.failed,
                })
                .collect()
        }
        _ => Vec::new(),
    };
    PeerStatus {
        name: slot.name.clone(),
        public_key: b64(p.public_key()),
        endpoint: p.endpoint().map(|e| e.to_string()),
        allowed_ips,
        latest_handshake_unix: st.last_handshake.map(|t| clock.unix(t).as_secs()),
        rx_bytes: st.rx_bytes,
        tx_bytes: st.tx_bytes,
        key_epoch: st.epoch,
        persistent_keepalive: p.persistent_keepalive().map(|d| d.as_secs()),
        hybrid: h.map_or("off", |h| h.role().label()).to_owned(),
        epoch: current.map_or(0, |(info, _)| info.epoch),
        epoch_age_seconds: current.map(|(_, at)| now.saturating_duration_since(at).as_secs()),
        key_sources,
        qkd_key_id: current.and_then(|(info, _)| info.key_ids.first().map(|id| id.to_string())),
        hybrid_drops: stats.map(|s| s.drops_by_label()).unwrap_or_default(),
        pq_signature_verifications: stats.map_or(0, |s| s.signature_verifications),
        pq_kem_operations: stats.map_or(0, |s| s.kem_operations),
        hybrid_rejects: stats
            .map(|s| {
                s.rejects
                    .iter()
                    .map(|(r, n)| ((*r).to_owned(), *n))
                    .collect()
            })
            .unwrap_or_default(),
        rx_packets: st.rx_packets,
        tx_packets: st.tx_packets,
        handshakes: st.handshakes,
        handshake_failures,
        session_usable: p.has_usable_session(now),
        policy_state: view.policy_state.map(|s| s.label().to_owned()),
        qkd_configured: view.qkd_configured,
        epochs_by_source: view.epochs_by_source.clone(),
        qkd_sources,
        classes: (slot.egress.as_ref())
            .map(|e| e.stats(now).iter().map(ClassStatus::from).collect())
            .unwrap_or_default(),
    }
}

//! The link between a peer's WireGuard state and its hybrid key agreement (docs/protocol.md §2,
//! §6.1 step 5, §8), in one place: after every input that touched a peer, the node moves what one
//! side produced to the other, and what is meant for the outside to its own queues.
//!
//! | from | what | to |
//! |---|---|---|
//! | WireGuard | `EpochNeeded` (wants a handshake, has no fresh hybrid PSK) | hybrid: `request_epoch` |
//! | WireGuard | `SessionConfirmed` keyed by hybrid PSK `n` | hybrid: the ratchet moves on; the log; an `epoch_in_use` audit record |
//! | WireGuard | `HandshakeGaveUp` | staged packets dropped; the log |
//! | hybrid | a PSK to install (the master: with "handshake now") | WireGuard: `install_hybrid_psk` |
//! | hybrid | a KME request for one source | the node's KME queue, with that source's KME and the peer's SAE ID |
//! | hybrid | an event | the operations view (audit records), the node's event queue |

use std::time::Instant;

use super::kme::{KmeOp, KmeRequest};
use super::{Node, NodeEvent, PeerId};
use crate::audit::AuditEvent;
use crate::hybrid::{QkdFailure, QkdOp};
use crate::proto::peer::Event;

/// Most events kept for the driver (the oldest go beyond; the driver drains every loop turn).
const MAX_EVENTS: usize = 4096;

impl Node {
    /// Moves everything peer `id` produced to where it goes, until nothing is left.
    pub(super) fn settle(&mut self, now: Instant, id: PeerId) {
        // Each pass can only make the other side produce something once: three suffice.
        for _ in 0..3 {
            let moved = self.settle_wireguard(now, id) | self.settle_hybrid(now, id);
            if !moved {
                return;
            }
        }
    }

    fn settle_wireguard(&mut self, now: Instant, id: PeerId) -> bool {
        let mut moved = false;
        while let Some(slot) = self.peers.get_mut(id)
            && let Some(event) = slot.wg.poll_event()
        {
            moved = true;
            match event {
                Event::EpochNeeded => {
                    if let Some(h) = slot.hybrid.as_mut() {
                        h.request_epoch(now);
                    }
                    continue; // internal: the hybrid layer reports what it does about it
                }
                Event::SessionConfirmed {
                    psk_id: Some(psk), ..
                } => {
                    if let Some(h) = slot.hybrid.as_mut() {
                        h.on_session_confirmed(psk);
                    }
                    let in_use = (slot.hybrid.as_ref()).and_then(|h| h.epoch_of(psk));
                    if let Some((info, _)) = in_use {
                        let record = AuditEvent::EpochInUse {
                            peer: slot.name.clone(),
                            epoch: info.epoch,
                            qkd_key_ids: info.key_ids.clone(),
                        };
                        self.emit(NodeEvent::Audit(record));
                    }
                }
                Event::HandshakeGaveUp => {
                    // The staged packets will not leave: they are lost for lack of a session.
                    let lost = slot.staged.len() as u64;
                    slot.staged.clear();
                    self.drops[crate::error::DropReason::NoSession.index()] += lost;
                }
                Event::SessionConfirmed { .. } | Event::KeysZeroed => {}
            }
            self.emit(NodeEvent::Session { peer: id, event });
        }
        moved
    }

    fn settle_hybrid(&mut self, now: Instant, id: PeerId) -> bool {
        let Some(slot) = self.peers.get_mut(id) else {
            return false;
        };
        let Some(hybrid) = slot.hybrid.as_mut() else {
            return false;
        };
        let mut moved = false;
        while let Some(install) = hybrid.poll_psk() {
            moved = true;
            slot.wg
                .install_hybrid_psk(now, install.psk, install.handshake_now);
        }
        while let Some(request) = hybrid.poll_qkd_request() {
            moved = true;
            let source = slot.qkd_sources.get(request.source.get());
            let (kme, op) = match (request.op, source) {
                (QkdOp::Fetch { prefetched }, Some(s)) => {
                    let slave = s.peer_sae_id.clone();
                    (s.kme, KmeOp::Fetch { slave, prefetched })
                }
                (QkdOp::Resolve { key_ids }, Some(s)) => {
                    let master = s.peer_sae_id.clone();
                    (s.kme, KmeOp::Resolve { master, key_ids })
                }
                // No such source (configuration refuses QKD without one): no key, at once.
                (_, None) => {
                    hybrid.handle_qkd_result(now, request.id, Err(QkdFailure::Unavailable));
                    continue;
                }
            };
            self.kme_requests.push_back(KmeRequest {
                peer: id,
                id: request.id,
                kme,
                op,
            });
        }
        let role = hybrid.role();
        let mut facts = Vec::new();
        while let Some(event) = hybrid.poll_event() {
            moved = true;
            if let Some(record) = slot.watch.on_hybrid_event(&slot.name, role, &event) {
                facts.push(NodeEvent::Audit(record));
            }
            facts.push(NodeEvent::Hybrid { peer: id, event });
        }
        for e in facts {
            self.emit(e);
        }
        moved
    }

    /// Queues an event for the driver.
    pub(super) fn emit(&mut self, event: NodeEvent) {
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

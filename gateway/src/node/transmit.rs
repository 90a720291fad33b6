//! Everything a node sends besides sealed tunnel packets, one datagram per call into the
//! caller's buffer: cookie replies (whitepaper §5.4.7), then per peer, round robin, its hybrid
//! fragments (docs/protocol.md §4), packets staged while it had no session, its handshake
//! response, initiation or keepalive (§5.4, §6), and what its egress scheduler releases.

use std::time::Instant;

use super::Node;
use super::peers::PeerSlot;
use crate::error::DropReason;
use crate::proto::constants::{COOKIE_REPLY_LEN, TRANSPORT_HEADER_LEN};
use crate::proto::peer::Transmit;

impl Node {
    /// Writes the next datagram to send into `buf` (at least MTU + 32 bytes, and at least
    /// 1232 for hybrid fragments) and says where it goes. Call until it returns `None`.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if let Some((to, reply)) = self.cookie_replies.pop_front() {
            buf.get_mut(..COOKIE_REPLY_LEN)?.copy_from_slice(&reply);
            self.cookie_replies_sent += 1;
            return Some(Transmit {
                len: COOKIE_REPLY_LEN,
                to,
                tos: 0,
            });
        }
        let n = self.peers.len();
        for _ in 0..n {
            let id = self.peers.id_at(self.cursor % n)?;
            if let Some(t) = self.poll_peer_transmit(now, id, buf) {
                return Some(t);
            }
            self.cursor = (self.cursor + 1) % n;
        }
        None
    }

    fn poll_peer_transmit(
        &mut self,
        now: Instant,
        id: super::PeerId,
        buf: &mut [u8],
    ) -> Option<Transmit> {
        let (t, events, lost) = self.with_peer(id, |slot, cx| {
            // Hybrid fragments, then staged data (it also confirms a new session, so no keepalive
            // is needed), then WireGuard's own messages.
            let mut lost = Vec::new();
            let t = hybrid_transmit(slot, buf)
                .or_else(|| staged_transmit(slot, now, buf, &mut lost))
                .or_else(|| slot.wg.poll_transmit(now, cx, buf));
            (t, slot.wg.has_events(), lost)
        })?;
        for reason in lost {
            self.count(reason);
        }
        if events {
            self.settle(now, id);
        }
        // Then what its egress scheduler releases (the daemon takes those in batches first,
        // with `poll_egress`; the simulation takes them here).
        t.or_else(|| self.egress_transmit(now, id, buf))
    }
}

/// The next hybrid fragment, to the peer's endpoint (WireGuard's, which authenticated hybrid
/// messages also move). Without one the fragment is dropped: the exchange retransmits.
fn hybrid_transmit(slot: &mut PeerSlot, buf: &mut [u8]) -> Option<Transmit> {
    let hybrid = slot.hybrid.as_mut()?;
    loop {
        let len = hybrid.poll_transmit(buf)?;
        if let Some(to) = slot.wg.endpoint() {
            return Some(Transmit { len, to, tos: 0 });
        }
    }
}

/// The oldest staged packet, sealed, once a session may send. A packet that cannot be sealed
/// after all is dropped and its reason pushed to `lost`, so none goes uncounted.
fn staged_transmit(
    slot: &mut PeerSlot,
    now: Instant,
    buf: &mut [u8],
    lost: &mut Vec<DropReason>,
) -> Option<Transmit> {
    while slot.wg.has_usable_session(now) {
        let packet = slot.staged.pop_front()?;
        let start = TRANSPORT_HEADER_LEN;
        let Some(room) = buf.get_mut(start..start + packet.len()) else {
            lost.push(DropReason::BufferTooSmall);
            continue;
        };
        room.copy_from_slice(&packet);
        match slot.wg.encapsulate(now, buf, packet.len()) {
            Ok(t) => return Some(t),
            Err(reason) => lost.push(reason),
        }
    }
    None
}

//! One packet from the tunnel (whitepaper §2 cryptokey routing, §5.4.6 transport messages): route
//! it by destination to a peer and seal it in place; without a session, stage it and want a
//! handshake (a hybrid peer asks its key agreement for an epoch instead). A staged packet is not a
//! drop; one that never leaves (the queue overflows, or the handshake gives up) is counted as
//! `no_session` when it is discarded.
//!
//! The data path may leave the encryption for later ([`Node::frame_tun_packet`]), to run a whole
//! batch's on several cores; the counter, timers and statistics are settled here, in order.

use std::time::Instant;

use super::Node;
use super::egress::Admitted;
use crate::error::DropReason;
use crate::proto::constants::TRANSPORT_HEADER_LEN;
use crate::proto::peer::Transmit;
use crate::proto::session::Sealing;

impl Node {
    /// Seals the IP packet at `buf[16..16 + len]` for the peer its destination routes to, in place:
    /// `buf` needs 16 bytes of headroom and 16 + 15 of tailroom (header, padding, tag). Without a
    /// usable session the packet is staged (bounded) and `Err(NoSession)` returned (not counted:
    /// [`Node::poll_transmit`] sends it once a session is confirmed); every other refusal is
    /// counted.
    /// `Ok(None)`: the peer's egress scheduler took the packet (`egress.rs`); it leaves through
    /// [`Node::poll_transmit`] or [`Node::poll_egress`].
    pub fn handle_tun_packet(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        len: usize,
    ) -> Result<Option<Transmit>, DropReason> {
        let Some((t, sealing)) = self.frame_tun_packet(now, buf, len)? else {
            return Ok(None);
        };
        sealing.seal(buf);
        Ok(Some(t))
    }

    /// [`Node::handle_tun_packet`] but for the encryption, which [`Sealing::seal`] must do on
    /// `buf` before the datagram leaves, on any thread. Datagrams to one peer leave in the order
    /// they were framed. `Ok(None)`: the peer's egress scheduler took the packet.
    pub fn frame_tun_packet(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        len: usize,
    ) -> Result<Option<(Transmit, Sealing)>, DropReason> {
        match self.route_and_frame(now, buf, len) {
            Err(DropReason::NoSession) => Err(DropReason::NoSession),
            Err(reason) => Err(self.count(reason)),
            Ok(t) => Ok(t),
        }
    }

    fn route_and_frame(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        len: usize,
    ) -> Result<Option<(Transmit, Sealing)>, DropReason> {
        let start = TRANSPORT_HEADER_LEN;
        let packet = buf
            .get(start..start + len)
            .ok_or(DropReason::BufferTooSmall)?;
        let info = crate::proto::ip::parse(packet).ok_or(DropReason::Malformed)?;
        let id = self.routes.lookup(info.dst).ok_or(DropReason::NoRoute)?;
        let slot = self.peers.get_mut(id).ok_or(DropReason::NoRoute)?;
        if let Admitted::Queued = slot.admit(now, &self.classes, packet) {
            return Ok(None);
        }
        let sealed = slot.wg.frame(now, buf, len).map(|(mut t, sealing)| {
            t.tos = slot.outer_tos(&self.classes, None, &buf[start..start + len]);
            (t, sealing)
        });
        let displaced =
            matches!(sealed, Err(DropReason::NoSession)) && slot.stage(&buf[start..start + len]);
        if displaced {
            self.drops[DropReason::NoSession.index()] += 1;
        }
        let Some(slot) = self.peers.get_mut(id) else {
            return sealed.map(Some);
        };
        if slot.wg.has_events() {
            self.settle(now, id);
        }
        sealed.map(Some)
    }
}

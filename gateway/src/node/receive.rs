//! One datagram from the network (whitepaper §5.4 message dispatch, §5.3 cookies under load;
//! docs/protocol.md §4 for hybrid datagrams): dispatch by type, find the peer, hand it the message.
//! Transport data is opened in place; every refusal is counted by reason.
//!
//! The data path may open a batch's transport messages on several cores: [`Node::begin_transport`]
//! finds the session and checks the counter, [`PendingTransport::open`] decrypts (any thread),
//! and [`Node::finish_transport`], called in arrival order, records the counter and moves the
//! peer's state exactly as one message at a time would ([`Node::handle_datagram`] is all three).

use std::net::SocketAddr;
use std::ops::Range;
use std::time::Instant;

use zerocopy::FromBytes;

use super::{MAX_COOKIE_REPLIES, Node, PeerId};
use crate::error::DropReason;
use crate::hybrid::{HybridDrop, Progress, wire};
use crate::proto::constants::{COOKIE_REPLY_LEN, TRANSPORT_HEADER_LEN};
use crate::proto::cookie::verify_mac1;
use crate::proto::handshake::open_initiation;
use crate::proto::messages::{CookieReply, Initiation, MacProtected, Message};
use crate::proto::session::Opening;

/// What became of a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A decrypted IP packet from `peer`: write `buf[packet]` to the tunnel.
    Packet {
        /// Who sent it.
        peer: PeerId,
        /// Where it is in the caller's buffer.
        packet: Range<usize>,
    },
    /// Accepted with nothing to deliver (handshake, cookie, keepalive, hybrid fragment); any
    /// answer waits for [`Node::poll_transmit`].
    Accepted,
    /// Refused, and counted under this reason.
    Dropped(Dropped),
}

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// At the interface (WireGuard messages, and hybrid datagrams no peer could take).
    Interface(DropReason),
    /// By a hybrid peer (counted in its hybrid statistics).
    Hybrid(PeerId, HybridDrop),
}

/// A transport message whose session may take it and whose counter is fresh, waiting for its
/// decryption ([`Node::begin_transport`]).
#[derive(Debug)]
pub struct PendingTransport {
    peer: PeerId,
    receiver: u32,
    from: SocketAddr,
    opening: Opening,
}

impl PendingTransport {
    /// Decrypts `datagram`, the whole message as received, in place; any thread may call it.
    pub fn open(&self, datagram: &mut [u8]) -> Result<usize, DropReason> {
        let sealed = datagram
            .get_mut(TRANSPORT_HEADER_LEN..)
            .ok_or(DropReason::Malformed)?;
        self.opening.open(sealed)
    }
}

impl Node {
    /// Handles one datagram from `from`. A transport message is opened in place: the returned
    /// [`Received::Packet`] is a range of `buf`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, buf: &mut [u8]) -> Received {
        if wire::is_hybrid(buf) {
            return self.hybrid_datagram(now, from, buf);
        }
        match self.begin_transport(now, from, buf) {
            Some(Ok(pending)) => {
                let opened = pending.open(buf);
                return self.finish_transport(now, pending, opened, buf);
            }
            Some(Err(dropped)) => return Received::Dropped(dropped),
            None => {}
        }
        match self.dispatch(now, from, buf) {
            Ok(()) => Received::Accepted,
            Err(reason) => Received::Dropped(Dropped::Interface(self.count(reason))),
        }
    }

    /// The first third of [`Node::handle_datagram`] for a transport message (`None`: `datagram` is
    /// anything else, for `handle_datagram`). Refusals are counted; nothing else changes.
    pub fn begin_transport(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Option<Result<PendingTransport, Dropped>> {
        let Ok(Message::Transport(h, _)) = Message::parse(datagram) else {
            return None;
        };
        let (receiver, counter) = (h.receiver.get(), h.counter.get());
        let begun = self.owner(receiver).and_then(|peer| {
            let slot = self.peers.get(peer).ok_or(DropReason::UnknownIndex)?;
            let opening = slot.wg.begin_decapsulate(now, receiver, counter)?;
            Ok(PendingTransport {
                peer,
                receiver,
                from,
                opening,
            })
        });
        Some(begun.map_err(|reason| Dropped::Interface(self.count(reason))))
    }

    /// The last third: `opened` is what [`PendingTransport::open`] made of `datagram`. Call in
    /// arrival order; the returned [`Received::Packet`] is a range of `datagram`.
    pub fn finish_transport(
        &mut self,
        now: Instant,
        pending: PendingTransport,
        opened: Result<usize, DropReason>,
        datagram: &[u8],
    ) -> Received {
        match self.finish(now, &pending, opened, datagram) {
            Ok(Some(packet)) => Received::Packet {
                peer: pending.peer,
                packet,
            },
            Ok(None) => Received::Accepted,
            Err(reason) => Received::Dropped(Dropped::Interface(self.count(reason))),
        }
    }

    fn finish(
        &mut self,
        now: Instant,
        pending: &PendingTransport,
        opened: Result<usize, DropReason>,
        datagram: &[u8],
    ) -> Result<Option<Range<usize>>, DropReason> {
        let id = pending.peer;
        let slot = self.peers.get_mut(id).ok_or(DropReason::UnknownIndex)?;
        let mut idx = self.indices.for_peer(id);
        let (receiver, from) = (pending.receiver, pending.from);
        let n = (slot.wg).finish_decapsulate(
            now,
            receiver,
            &pending.opening,
            opened,
            from,
            &mut idx,
        )?;
        if slot.wg.has_events() {
            self.settle(now, id);
        }
        if n == 0 {
            return Ok(None);
        }
        let start = TRANSPORT_HEADER_LEN;
        let plain = datagram
            .get(start..start + n)
            .ok_or(DropReason::Malformed)?;
        let info = crate::proto::ip::parse(plain).ok_or(DropReason::Malformed)?;
        if self.routes.lookup(info.src) != Some(id) {
            return Err(DropReason::SourceNotAllowed);
        }
        Ok(Some(start..start + info.len))
    }

    fn hybrid_datagram(&mut self, now: Instant, from: SocketAddr, buf: &[u8]) -> Received {
        let fragment = match wire::parse(buf) {
            Ok(f) => f,
            Err(_) => {
                return Received::Dropped(Dropped::Interface(self.count(DropReason::Malformed)));
            }
        };
        let Some(id) = self.peers.by_pair(&fragment.header.pair_id) else {
            let reason = self.count(DropReason::UnknownPair);
            return Received::Dropped(Dropped::Interface(reason));
        };
        let Some(slot) = self.peers.get_mut(id) else {
            return Received::Dropped(Dropped::Interface(self.count(DropReason::UnknownPair)));
        };
        let Some(hybrid) = slot.hybrid.as_mut() else {
            return Received::Dropped(Dropped::Interface(self.count(DropReason::UnknownPair)));
        };
        let result = hybrid.handle_fragment(now, &fragment);
        if result == Ok(Progress::FromPeer) {
            // Roaming on an authenticated, fresh message only (whitepaper §2.1): a replay or a
            // fragment from anywhere else moves nothing.
            slot.wg.observe_source(from);
        }
        self.settle(now, id);
        match result {
            Ok(_) => Received::Accepted,
            Err(reason) => Received::Dropped(Dropped::Hybrid(id, reason)),
        }
    }

    /// Handshake messages and cookie replies (transport data is taken by
    /// [`Node::begin_transport`]).
    fn dispatch(&mut self, now: Instant, from: SocketAddr, buf: &[u8]) -> Result<(), DropReason> {
        match Message::parse(buf)? {
            Message::Initiation(m) => self.on_initiation(now, from, m),
            Message::Response(m) => {
                self.screen(now, from, m)?;
                let id = self.owner(m.receiver.get())?;
                self.with_peer(id, |slot, cx| slot.wg.handle_response(now, m, from, cx))
                    .ok_or(DropReason::UnknownIndex)??;
                self.settle(now, id);
                Ok(())
            }
            Message::CookieReply(m) => {
                let id = self.owner(m.receiver.get())?;
                let slot = self.peers.get_mut(id).ok_or(DropReason::UnknownIndex)?;
                slot.wg.handle_cookie_reply(now, m)?;
                Ok(())
            }
            Message::Transport(..) => Err(DropReason::Malformed),
        }
    }

    fn owner(&self, index: u32) -> Result<PeerId, DropReason> {
        self.indices.lookup(index).ok_or(DropReason::UnknownIndex)
    }

    /// mac1 always; under load also mac2 (else a cookie reply is queued and the message refused
    /// as `CookieRequired`) and the per-source rate limit.
    fn screen<M: MacProtected>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        m: &M,
    ) -> Result<(), DropReason> {
        verify_mac1(m, &self.keys.mac1_key)?;
        if !self.load.record(now) {
            return Ok(());
        }
        if self
            .checker
            .verify_mac2(now, &mut *self.rng, m, from)
            .is_err()
        {
            // The message itself is not processed (and counted as such); a cookie answers it.
            if self.cookie_replies.len() < MAX_COOKIE_REPLIES {
                let mut bytes = [0u8; COOKIE_REPLY_LEN];
                if let Ok(reply) = CookieReply::mut_from_bytes(&mut bytes) {
                    self.checker.reply(now, &mut *self.rng, m, from, reply);
                    self.cookie_replies.push_back((from, bytes));
                }
            }
            return Err(DropReason::CookieRequired);
        }
        if !self.limiter.allow(now, from.ip()) {
            return Err(DropReason::RateLimited);
        }
        Ok(())
    }

    fn on_initiation(
        &mut self,
        now: Instant,
        from: SocketAddr,
        m: &Initiation,
    ) -> Result<(), DropReason> {
        self.screen(now, from, m)?;
        let opened = open_initiation(&self.keys, m)?;
        let id = self
            .peers
            .by_key(opened.initiator_static())
            .ok_or(DropReason::UnknownPeer)?;
        let answer = self.with_peer(id, |slot, cx| {
            let received = opened.finish(slot.wg.remote_keys())?;
            slot.wg.handle_initiation(now, received, from, cx)
        });
        answer.ok_or(DropReason::UnknownPeer)??;
        self.settle(now, id);
        Ok(())
    }
}

impl Node {
    /// Applies the outer header's ECN field (`outer_tos`, the datagram's TOS byte) to `packet`,
    /// a delivered inner packet, as a tunnel egress does (RFC 6040 §4.2): Congestion Experienced
    /// carries over to an ECN-capable packet; `false` (counted as `ecn_not_ect`) when the packet
    /// must be dropped instead.
    pub fn decapsulate_ecn(&mut self, outer_tos: u8, packet: &mut [u8]) -> bool {
        let outer = crate::classes::ecn::Ecn::from_bits(outer_tos);
        match crate::classes::ecn::decapsulate(outer, packet) {
            Ok(()) => true,
            Err(_) => {
                self.count(DropReason::EcnNotEct);
                false
            }
        }
    }
}

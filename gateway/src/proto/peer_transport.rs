//! A peer's data path (whitepaper §5.4.6 transport messages, §6.1–§6.2 rekey rules): sealing a
//! packet from the tunnel and opening one from the network, both in place in the caller's
//! buffer, without allocating.
//!
//! Each direction also comes in halves around the cipher work (see [`super::session`]):
//! [`Peer::frame`] then [`Sealing::seal`]; [`Peer::begin_decapsulate`], [`Opening::open`], then
//! [`Peer::finish_decapsulate`]. The stateful halves run in order on the packet thread; the cipher
//! halves may run on other cores. [`Peer::encapsulate`] and [`Peer::decapsulate`] are all three in
//! one call.

use std::net::SocketAddr;
use std::time::Instant;

use super::index::IndexTable;
use super::keyring::Slot;
use super::peer::{Peer, Transmit};
use super::session::{Opening, Sealing};
use super::timers::{rekey_on_receive, rekey_on_send};
use crate::error::DropReason;

impl Peer {
    /// Seals a packet from the tunnel: `buf[16..16 + plain_len]` holds the IP packet. Returns the
    /// datagram length and destination. Without a usable session a handshake is wanted and
    /// `NoSession` returned (the caller may hold the packet until [`super::Event::SessionConfirmed`]).
    pub fn encapsulate(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        plain_len: usize,
    ) -> Result<Transmit, DropReason> {
        let (t, sealing) = self.frame(now, buf, plain_len)?;
        sealing.seal(buf);
        Ok(t)
    }

    /// [`Peer::encapsulate`] but for the encryption: the counter is taken, the header and
    /// padding written, timers and statistics updated; [`Sealing::seal`] must follow, on `buf`.
    pub fn frame(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        plain_len: usize,
    ) -> Result<(Transmit, Sealing), DropReason> {
        let to = self.endpoint.get().ok_or(DropReason::NoSession)?;
        let Some(session) = self.keys.current().filter(|s| s.can_send(now)) else {
            self.want_handshake(now);
            return Err(DropReason::NoSession);
        };
        let sealing = session.send.frame(buf, plain_len, self.mtu)?;
        let len = sealing.message_len();
        let (age, sent) = (session.age(now), session.send.sent());
        if rekey_on_send(age, session.initiator(), sent, self.timers.rekey_after()) {
            self.want_handshake(now);
        }
        self.stats.tx_bytes += len as u64;
        self.stats.tx_packets += 1;
        self.timers.on_any_sent(now);
        self.want_keepalive = false;
        if plain_len > 0 {
            self.timers.on_data_sent(now);
        }
        Ok((Transmit { len, to, tos: 0 }, sealing))
    }

    /// Whether a current session exists (usable or not).
    pub fn has_session(&self) -> bool {
        self.keys.current().is_some()
    }

    /// Whether a session that may still send exists at `now` (false: traffic to this peer is
    /// refused until a handshake completes; for a hybrid peer that is the fail-closed state).
    pub fn has_usable_session(&self, now: Instant) -> bool {
        self.keys.current().is_some_and(|s| s.can_send(now))
    }

    /// Opens a transport message for one of this peer's sessions (`receiver` is its index).
    /// `sealed` is the ciphertext with tag; on success its first `n` bytes are the plaintext
    /// (`n == 0`: a keepalive). Only an authenticated, fresh message moves the endpoint.
    pub fn decapsulate(
        &mut self,
        now: Instant,
        receiver: u32,
        counter: u64,
        sealed: &mut [u8],
        from: SocketAddr,
        indices: &mut dyn IndexTable,
    ) -> Result<usize, DropReason> {
        let opening = self.begin_decapsulate(now, receiver, counter)?;
        let opened = opening.open(sealed);
        self.finish_decapsulate(now, receiver, &opening, opened, from, indices)
    }

    /// The first third of [`Peer::decapsulate`]: the session `receiver` names may still take a
    /// message and `counter` is fresh. Nothing changes until [`Peer::finish_decapsulate`].
    pub fn begin_decapsulate(
        &self,
        now: Instant,
        receiver: u32,
        counter: u64,
    ) -> Result<Opening, DropReason> {
        let session = self.keys.find(receiver).ok_or(DropReason::UnknownIndex)?;
        session.begin_receive(now, counter)
    }

    /// The last third: `opened` is what [`Opening::open`] made of the message. An authenticated,
    /// fresh message is recorded in the replay window, confirms a next session, moves the
    /// endpoint and the timers. Call in arrival order.
    pub fn finish_decapsulate(
        &mut self,
        now: Instant,
        receiver: u32,
        opening: &Opening,
        opened: Result<usize, DropReason>,
        from: SocketAddr,
        indices: &mut dyn IndexTable,
    ) -> Result<usize, DropReason> {
        let wire_len = opened.as_ref().map_or(0, |n| *n as u64) + 32;
        let (slot, session) = self
            .keys
            .find_mut(receiver)
            .ok_or(DropReason::UnknownIndex)?;
        let n = session.finish_receive(opening, opened)?;
        if slot == Slot::Next {
            self.keys.confirm_next(indices);
            self.confirmed(now);
        }
        self.endpoint.observe(from);
        self.stats.rx_bytes += wire_len;
        self.stats.rx_packets += 1;
        self.timers.on_any_received(now);
        if n > 0 {
            self.timers.on_data_received(now);
        }
        let rekey = self
            .keys
            .current()
            .is_some_and(|s| rekey_on_receive(s.age(now), s.initiator()));
        if slot == Slot::Current && rekey && self.pending.is_none() {
            self.want_handshake(now);
        }
        Ok(n)
    }
}

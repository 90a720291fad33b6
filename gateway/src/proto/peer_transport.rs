//! A peer's data path (whitepaper §5.4.6 transport messages, §6.1–§6.2 rekey rules): sealing a
//! packet from the tunnel and opening one from the network, both in place in the caller's
//! buffer, without allocating.

use std::net::SocketAddr;
use std::time::Instant;

use super::index::IndexTable;
use super::keyring::Slot;
use super::peer::{Peer, Transmit};
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
        let to = self.endpoint.get().ok_or(DropReason::NoSession)?;
        let Some(session) = self.keys.current().filter(|s| s.can_send(now)) else {
            self.want_handshake(now);
            return Err(DropReason::NoSession);
        };
        let len = session.send.seal(buf, plain_len, self.mtu)?;
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
        Ok(Transmit { len, to })
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
        let wire_len = sealed.len() as u64 + 16;
        let (slot, session) = self
            .keys
            .find_mut(receiver)
            .ok_or(DropReason::UnknownIndex)?;
        let n = session.receive(now, counter, sealed)?;
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

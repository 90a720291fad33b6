//! A peer's handshake messages (whitepaper §5.4.2 initiation, §5.4.3 response, §5.4.7 cookie
//! reply, §6.1 key confirmation): writing our initiation, answering the peer's, consuming its
//! response, and what a confirmed session changes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use zerocopy::FromBytes;

use super::constants::{
    INITIATION_LEN, INITIATION_RATE, REKEY_TIMEOUT_JITTER_MAX, RESPONSE_LEN, TIMESTAMP_LEN,
};
use super::handshake::{InitiationReceived, consume_response, create_initiation, create_response};
use super::messages::{CookieReply, Initiation, Response};
use super::peer::{Ctx, Event, Peer};
use super::session::Session;
use crate::error::DropReason;

impl Peer {
    /// Writes an initiation into `out` with the PSK [`super::psk::Keying`] names; `None` if no
    /// handshake may be made or `out` is too small.
    pub(super) fn write_initiation(
        &mut self,
        now: Instant,
        cx: &mut Ctx<'_>,
        out: &mut [u8],
        retry: bool,
    ) -> Option<usize> {
        let msg = Initiation::mut_from_bytes(out.get_mut(..INITIATION_LEN)?).ok()?;
        let psk = self.keying.for_next_handshake()?;
        let index = cx.indices.allocate(cx.rng);
        // Above the last one sent, even if the wall clock was set back since (the responder
        // refuses any timestamp not above the greatest it accepted).
        let ts = cx.clock.timestamp_after(now, self.last_timestamp_sent);
        match create_initiation(cx.keys, &self.remote, psk, index, &ts, cx.rng, msg) {
            Ok(sent) => {
                if let Some(old) = self.pending.replace(sent) {
                    cx.indices.release(old.local_index);
                }
            }
            Err(_) => {
                cx.indices.release(index);
                return None;
            }
        }
        self.cookies.stamp(now, msg, &self.remote.mac1_key);
        self.want_handshake = false;
        self.fresh_psk = false;
        self.last_initiation_sent = Some(now);
        self.last_timestamp_sent = Some(ts);
        let jitter_ms = u64::from(cx.rng.next_u32()) % REKEY_TIMEOUT_JITTER_MAX.as_millis() as u64;
        self.timers
            .on_initiation_sent(now, Duration::from_millis(jitter_ms), retry);
        self.timers.on_any_sent(now);
        self.stats.tx_bytes += INITIATION_LEN as u64;
        Some(INITIATION_LEN)
    }

    /// Handles an authenticated initiation from this peer (the caller verified mac1, mac2 under
    /// load, opened it and looked the peer up); the response waits for [`Peer::poll_transmit`].
    pub fn handle_initiation(
        &mut self,
        now: Instant,
        init: InitiationReceived,
        from: SocketAddr,
        cx: &mut Ctx<'_>,
    ) -> Result<(), DropReason> {
        let psk = self
            .keying
            .for_next_handshake()
            .ok_or(DropReason::NoHybridKey)?;
        if init.timestamp <= self.greatest_timestamp {
            return Err(DropReason::StaleTimestamp);
        }
        if self
            .last_initiation_received
            .is_some_and(|t| now.saturating_duration_since(t) < INITIATION_RATE)
        {
            return Err(DropReason::RateLimited);
        }
        let mut bytes = [0u8; RESPONSE_LEN];
        let msg = Response::mut_from_bytes(&mut bytes).map_err(|_| DropReason::BufferTooSmall)?;
        let timestamp: [u8; TIMESTAMP_LEN] = init.timestamp;
        let index = cx.indices.allocate(cx.rng);
        let keys = match create_response(init, &self.remote, psk, index, cx.rng, msg) {
            Ok(k) => k,
            Err(e) => {
                cx.indices.release(index);
                return Err(e);
            }
        };
        self.cookies.stamp(now, msg, &self.remote.mac1_key);
        self.greatest_timestamp = timestamp;
        self.last_initiation_received = Some(now);
        self.endpoint.observe(from);
        self.epochs += 1;
        let mut session = Session::new(keys, now, self.epochs);
        if let Some(after) = self.reject_after {
            session.set_reject_after(after);
        }
        self.keys.install_unconfirmed(session, cx.indices);
        self.timers.on_any_received(now);
        self.timers.on_any_sent(now);
        self.stats.rx_bytes += INITIATION_LEN as u64;
        self.stats.tx_bytes += RESPONSE_LEN as u64;
        self.response = Some((from, bytes));
        Ok(())
    }

    /// Handles a response (mac1 verified by the caller) addressed to our pending handshake.
    pub fn handle_response(
        &mut self,
        now: Instant,
        msg: &Response,
        from: SocketAddr,
        cx: &mut Ctx<'_>,
    ) -> Result<(), DropReason> {
        let pending = self.pending.as_ref().ok_or(DropReason::Unexpected)?;
        let keys = consume_response(pending, cx.keys, msg)?;
        self.pending = None;
        self.endpoint.observe(from);
        self.epochs += 1;
        let mut session = Session::new(keys, now, self.epochs);
        if let Some(after) = self.reject_after {
            session.set_reject_after(after);
        }
        self.keys.install_confirmed(session, cx.indices);
        self.confirmed(now);
        self.timers.on_any_received(now);
        self.stats.rx_bytes += RESPONSE_LEN as u64;
        // Confirm the session to the responder at once (a keepalive unless data goes first).
        self.want_keepalive = true;
        Ok(())
    }

    /// The current session was just confirmed (our response consumed, or the first packet under
    /// the session we answered): stop retrying, spend its hybrid PSK, tell the caller.
    pub(super) fn confirmed(&mut self, now: Instant) {
        self.want_handshake = false;
        self.retry_due = false;
        self.timers.on_handshake_complete(now);
        self.stats.last_handshake = Some(now);
        self.stats.handshakes += 1;
        if let Some(s) = self.keys.current() {
            if let Some(id) = s.psk_id() {
                self.keying.consumed(id);
            }
            self.stats.epoch = s.epoch();
            let e = Event::SessionConfirmed {
                epoch: s.epoch(),
                psk_id: s.psk_id(),
                initiator: s.initiator(),
            };
            self.events.push(e);
        }
    }

    /// Stores the cookie from a cookie reply to our last handshake message (§5.4.7).
    pub fn handle_cookie_reply(
        &mut self,
        now: Instant,
        reply: &CookieReply,
    ) -> Result<(), DropReason> {
        self.cookies.consume(now, reply, &self.remote.cookie_key)
    }

    /// Whether `index` is our index of a pending handshake (cookie replies and responses go here).
    pub fn owns_pending_index(&self, index: u32) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| p.local_index == index)
    }
}

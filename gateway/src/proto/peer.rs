//! The per-peer state machine (whitepaper §5.4 handshake, §6 timers): it ties the handshake,
//! sessions ([`super::keyring`] rotation), timers and cookies together for one remote peer.
//!
//! The PSK is per handshake: [`Peer::set_psk`] affects only handshakes started after it, and
//! [`Event::SessionConfirmed`] says which PSK keys what this peer sends from then on.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use zerocopy::FromBytes;

use super::constants::{
    INITIATION_LEN, INITIATION_RATE, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX, RESPONSE_LEN,
    TIMESTAMP_LEN,
};
use super::cookie::CookieJar;
use super::handshake::{
    InitiationReceived, InitiationSent, PskId, RemoteKeys, consume_response, create_initiation,
    create_response,
};
pub use super::index::IndexTable;
use super::keyring::{KeyRing, Slot};
use super::messages::{CookieReply, Initiation, Response};
use super::peer_io::EventQueue;
pub use super::peer_io::{Ctx, Event, PeerStats, Transmit};
use super::secret::Psk;
use super::session::Session;
use super::timers::{Timers, may_initiate, rekey_on_receive, rekey_on_send};
use crate::error::DropReason;

/// Who may start WireGuard handshakes with this peer (docs/protocol.md §2, §8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HandshakeGate {
    /// Plain WireGuard: handshakes on the standard timers with the configured (or no) PSK.
    #[default]
    Open,
    /// Hybrid master: initiates only with a hybrid PSK no confirmed session has used yet; whenever
    /// WireGuard wants a handshake otherwise it emits [`Event::EpochNeeded`] instead. Answers
    /// initiations only once a hybrid PSK is installed.
    HybridMaster,
    /// Hybrid slave: never initiates (it emits [`Event::EpochNeeded`]); answers initiations only
    /// once a hybrid PSK is installed.
    HybridSlave,
}

/// One remote peer.
#[derive(Debug)]
pub struct Peer {
    remote: RemoteKeys,
    psk: Psk,
    psk_id: PskId,
    gate: HandshakeGate,
    /// The installed PSK has not keyed a confirmed session yet.
    psk_fresh: bool,
    /// When [`Event::EpochNeeded`] was last emitted (at most one per REKEY_TIMEOUT).
    epoch_needed_at: Option<Instant>,
    /// Off-spec shorter REJECT_AFTER_TIME for new sessions (tests only).
    reject_after: Option<Duration>,
    mtu: usize,
    endpoint: Option<SocketAddr>,
    pending: Option<InitiationSent>,
    last_initiation_sent: Option<Instant>,
    last_initiation_received: Option<Instant>,
    greatest_timestamp: [u8; TIMESTAMP_LEN],
    want_handshake: bool,
    retry_due: bool,
    want_keepalive: bool,
    keys: KeyRing,
    epochs: u64,
    timers: Timers,
    cookies: CookieJar,
    stats: PeerStats,
    events: EventQueue,
}

impl Peer {
    /// A peer we know by its static public key (already checked against our key by
    /// [`RemoteKeys::new`]), with MTU `mtu` for padding and an optional persistent keepalive.
    pub fn new(remote: RemoteKeys, mtu: usize, persistent_keepalive: Option<Duration>) -> Self {
        Self {
            remote,
            psk: Psk::zero(),
            psk_id: 0,
            gate: HandshakeGate::Open,
            psk_fresh: false,
            epoch_needed_at: None,
            reject_after: None,
            mtu,
            endpoint: None,
            pending: None,
            last_initiation_sent: None,
            last_initiation_received: None,
            greatest_timestamp: [0; TIMESTAMP_LEN],
            want_handshake: false,
            retry_due: false,
            // A persistent keepalive is due at once: it brings the tunnel up after a (re)start.
            want_keepalive: persistent_keepalive.is_some_and(|d| !d.is_zero()),
            keys: KeyRing::default(),
            epochs: 0,
            timers: Timers::new(persistent_keepalive),
            cookies: CookieJar::default(),
            stats: PeerStats::default(),
            events: EventQueue::default(),
        }
    }

    /// The peer's static public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.remote.public
    }

    /// The peer's keys (for the responder's lookup by static key).
    pub fn remote_keys(&self) -> &RemoteKeys {
        &self.remote
    }

    /// Sets the PSK for every handshake started (either role) from now on. Live sessions and a
    /// handshake already on the wire keep the PSK they were made with.
    pub fn set_psk(&mut self, psk: Psk, id: PskId) {
        self.psk = psk;
        self.psk_id = id;
        self.psk_fresh = true;
    }

    /// Who may start handshakes with this peer.
    pub fn handshake_gate(&self) -> HandshakeGate {
        self.gate
    }

    /// Puts the peer under the hybrid key agreement's control (see [`HandshakeGate`]).
    pub fn set_handshake_gate(&mut self, gate: HandshakeGate) {
        self.gate = gate;
    }

    /// Whether this side may start a handshake now, given the gate.
    fn may_start_handshake(&self) -> bool {
        match self.gate {
            HandshakeGate::Open => true,
            HandshakeGate::HybridMaster => self.psk_id != 0 && self.psk_fresh,
            HandshakeGate::HybridSlave => false,
        }
    }

    /// Whether an initiation from the peer may be answered, given the gate: a hybrid peer never
    /// makes a session without a PSK from the key agreement.
    fn may_answer_handshake(&self) -> bool {
        self.gate == HandshakeGate::Open || self.psk_id != 0
    }

    /// Asks for a handshake as soon as the rate limit allows (e.g. right after [`Self::set_psk`] when
    /// the new PSK should be in force quickly); `poll_transmit` sends it.
    pub fn request_handshake(&mut self) {
        self.want_handshake = true;
    }

    /// The id of the PSK the next handshake will use.
    pub fn next_psk_id(&self) -> PskId {
        self.psk_id
    }

    /// The id of the PSK that keys what we send now, if there is a current session.
    pub fn current_psk_id(&self) -> Option<PskId> {
        self.keys.current().map(Session::psk_id)
    }

    /// Where datagrams for this peer go (updated by authenticated packets: roaming, §2.1).
    pub fn endpoint(&self) -> Option<SocketAddr> {
        self.endpoint
    }

    /// Sets the endpoint (configuration).
    pub fn set_endpoint(&mut self, endpoint: SocketAddr) {
        self.endpoint = Some(endpoint);
    }

    /// Transfer counters and handshake time.
    pub fn stats(&self) -> PeerStats {
        self.stats
    }

    /// Changes the persistent keepalive interval.
    pub fn set_persistent_keepalive(&mut self, now: Instant, interval: Option<Duration>) {
        self.timers.set_persistent_keepalive(now, interval);
        self.want_keepalive |= interval.is_some_and(|d| !d.is_zero());
    }

    /// The persistent keepalive interval, if on.
    pub fn persistent_keepalive(&self) -> Option<Duration> {
        self.timers.persistent_keepalive()
    }

    /// Off-spec: sessions made from now on are refused after `after` instead of
    /// `REJECT_AFTER_TIME` (tests of the fail-closed policy).
    pub fn set_reject_after_time(&mut self, after: Duration) {
        self.reject_after = Some(after);
    }

    /// Off-spec: rekey after `after` instead of `REKEY_AFTER_TIME` (tests observe rekeys quickly).
    pub fn set_rekey_after_time(&mut self, after: Duration) {
        self.timers.set_rekey_after(after);
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// When `poll_transmit` should next be called even if nothing arrives.
    pub fn next_deadline(&self) -> Option<Instant> {
        let rate_gate = self
            .want_handshake
            .then_some(self.last_initiation_sent.map(|t| t + REKEY_TIMEOUT))
            .flatten();
        [self.timers.next_deadline(), rate_gate]
            .into_iter()
            .flatten()
            .min()
    }

    /// Seals a packet from the tunnel: `buf[16..16 + plain_len]` holds the IP packet. Returns the
    /// datagram length and destination. Without a usable session a handshake is requested and
    /// `NoSession` returned (the caller may hold the packet until [`Event::SessionConfirmed`]).
    pub fn encapsulate(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        plain_len: usize,
    ) -> Result<Transmit, DropReason> {
        let to = self.endpoint.ok_or(DropReason::NoSession)?;
        let Some(session) = self.keys.current().filter(|s| s.can_send(now)) else {
            self.want_handshake = true;
            return Err(DropReason::NoSession);
        };
        let len = session.send.seal(buf, plain_len, self.mtu)?;
        let (age, sent) = (session.age(now), session.send.sent());
        if rekey_on_send(age, session.initiator(), sent, self.timers.rekey_after()) {
            self.want_handshake = true;
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

    /// Whether a session that may still send exists at `now` (false: traffic to this peer is
    /// refused until a handshake completes; for a hybrid peer that is the fail-closed state).
    pub fn has_usable_session(&self, now: Instant) -> bool {
        self.keys.current().is_some_and(|s| s.can_send(now))
    }

    /// Runs the timers and writes at most one due datagram (handshake initiation or keepalive) into
    /// `out` (at least 148 bytes). Call until it returns `None`.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        cx: &mut Ctx<'_>,
        out: &mut [u8],
    ) -> Option<Transmit> {
        self.run_timers(now, cx.indices);
        let to = self.endpoint?;
        let usable = self.keys.current().is_some_and(|s| s.can_send(now));
        if self.want_keepalive && !usable {
            // As wireguard-go: a keepalive without keys starts a handshake instead.
            self.want_keepalive = false;
            self.want_handshake = true;
        }
        if self.want_handshake && !self.may_start_handshake() {
            // The hybrid key agreement must make a new PSK first; it asks again via set_psk +
            // request_handshake once it has.
            self.want_handshake = false;
            self.retry_due = false;
            let throttled = self
                .epoch_needed_at
                .is_some_and(|t| now.saturating_duration_since(t) < REKEY_TIMEOUT);
            if !throttled {
                self.epoch_needed_at = Some(now);
                self.events.push(Event::EpochNeeded);
            }
        }
        if self.want_handshake && (self.retry_due || may_initiate(self.last_initiation_sent, now)) {
            let retry = std::mem::take(&mut self.retry_due);
            if let Some(len) = self.write_initiation(now, cx, out, retry) {
                return Some(Transmit { len, to });
            }
        }
        if self.want_keepalive && usable {
            return self.encapsulate(now, out, 0).ok();
        }
        None
    }

    fn run_timers(&mut self, now: Instant, indices: &mut dyn IndexTable) {
        let due = self.timers.poll(now);
        if due.gave_up {
            self.stats.handshake_gave_up += 1;
            self.want_handshake = false;
            self.retry_due = false;
            if let Some(p) = self.pending.take() {
                indices.release(p.local_index);
            }
            self.events.push(Event::HandshakeGaveUp);
        }
        if due.initiate {
            self.stats.handshake_timeouts += u64::from(due.retry);
            self.want_handshake = true;
            self.retry_due |= due.retry;
        }
        self.want_keepalive |= due.keepalive;
        if due.zero_keys {
            self.keys.clear(indices);
            if let Some(p) = self.pending.take() {
                indices.release(p.local_index);
            }
            self.events.push(Event::KeysZeroed);
        }
    }

    fn write_initiation(
        &mut self,
        now: Instant,
        cx: &mut Ctx<'_>,
        out: &mut [u8],
        retry: bool,
    ) -> Option<usize> {
        let msg = Initiation::mut_from_bytes(out.get_mut(..INITIATION_LEN)?).ok()?;
        let index = cx.indices.allocate(cx.rng);
        let ts = cx.clock.timestamp(now);
        let psk = (&self.psk, self.psk_id);
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
        self.last_initiation_sent = Some(now);
        let jitter_ms = u64::from(cx.rng.next_u32()) % REKEY_TIMEOUT_JITTER_MAX.as_millis() as u64;
        self.timers
            .on_initiation_sent(now, Duration::from_millis(jitter_ms), retry);
        self.timers.on_any_sent(now);
        self.stats.tx_bytes += INITIATION_LEN as u64;
        Some(INITIATION_LEN)
    }

    /// Handles an authenticated initiation from this peer (the caller verified mac1, mac2 under
    /// load, opened it and looked the peer up) and writes the response into `out`.
    pub fn handle_initiation(
        &mut self,
        now: Instant,
        init: InitiationReceived,
        from: SocketAddr,
        cx: &mut Ctx<'_>,
        out: &mut [u8],
    ) -> Result<Transmit, DropReason> {
        if !self.may_answer_handshake() {
            return Err(DropReason::NoHybridKey);
        }
        if init.timestamp <= self.greatest_timestamp {
            return Err(DropReason::StaleTimestamp);
        }
        if self
            .last_initiation_received
            .is_some_and(|t| now.saturating_duration_since(t) < INITIATION_RATE)
        {
            return Err(DropReason::RateLimited);
        }
        let out = out
            .get_mut(..RESPONSE_LEN)
            .ok_or(DropReason::BufferTooSmall)?;
        let msg = Response::mut_from_bytes(out).map_err(|_| DropReason::BufferTooSmall)?;
        let timestamp = init.timestamp;
        let index = cx.indices.allocate(cx.rng);
        let psk = (&self.psk, self.psk_id);
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
        self.endpoint = Some(from);
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
        Ok(Transmit {
            len: RESPONSE_LEN,
            to: from,
        })
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
        self.endpoint = Some(from);
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

    fn confirmed(&mut self, now: Instant) {
        self.want_handshake = false;
        self.retry_due = false;
        self.timers.on_handshake_complete(now);
        self.stats.last_handshake = Some(now);
        self.stats.handshakes += 1;
        if let Some(s) = self.keys.current() {
            if s.psk_id() == self.psk_id {
                self.psk_fresh = false;
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

    /// Opens a transport message for one of this peer's sessions (`receiver` is its index).
    /// `sealed` is the ciphertext with tag; on success its first `n` bytes are the plaintext
    /// (`n == 0`: a keepalive).
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
        self.endpoint = Some(from);
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
            self.want_handshake = true;
        }
        Ok(n)
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

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "peer_gate_tests.rs"]
mod gate_tests;

//! The per-peer state machine (whitepaper §5.4 handshake, §6 timers): it ties the handshake,
//! sessions ([`super::keyring`] rotation), timers and cookies together for one remote peer.
//!
//! The crate's one sans-IO style, after quinn-proto's `Connection`: inputs are `handle_*(now, …)`
//! calls; timers run only in [`Peer::handle_timeout`]; outputs are pulled with
//! [`Peer::poll_transmit`] (written into the caller's buffer), [`Peer::poll_event`] and
//! [`Peer::poll_timeout`]. The data path ([`Peer::encapsulate`], [`Peer::decapsulate`], in
//! `peer_transport.rs`) works in place on the caller's buffer. Handshake messages are handled in
//! `peer_handshake.rs`.
//!
//! Which PSK keys a handshake, and who may start one, is [`Keying`]: a hybrid peer that would
//! handshake without a fresh hybrid PSK emits [`Event::EpochNeeded`] instead.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::constants::{REKEY_TIMEOUT, RESPONSE_LEN, TIMESTAMP_LEN};
use super::cookie::CookieJar;
use super::endpoint::Endpoint;
use super::handshake::{InitiationSent, RemoteKeys};
pub use super::index::IndexTable;
use super::keyring::KeyRing;
use super::peer_io::EventQueue;
pub use super::peer_io::{Ctx, Event, PeerStats, Transmit};
use super::psk::{HybridPsk, Keying, PskId};
use super::timers::{Timers, may_initiate};

/// One remote peer.
#[derive(Debug)]
pub struct Peer {
    pub(super) remote: RemoteKeys,
    pub(super) keying: Keying,
    /// When [`Event::EpochNeeded`] was last emitted (at most one per REKEY_TIMEOUT).
    epoch_needed_at: Option<Instant>,
    /// Off-spec shorter REJECT_AFTER_TIME for new sessions (tests only).
    pub(super) reject_after: Option<Duration>,
    pub(super) mtu: usize,
    pub(super) endpoint: Endpoint,
    pub(super) pending: Option<InitiationSent>,
    /// A handshake response waiting for [`Peer::poll_transmit`], and where it goes.
    pub(super) response: Option<(SocketAddr, [u8; RESPONSE_LEN])>,
    pub(super) last_initiation_sent: Option<Instant>,
    pub(super) last_initiation_received: Option<Instant>,
    pub(super) greatest_timestamp: [u8; TIMESTAMP_LEN],
    /// The timestamp of the last initiation sent.
    pub(super) last_timestamp_sent: Option<[u8; TIMESTAMP_LEN]>,
    pub(super) want_handshake: bool,
    /// The wanted handshake carries a hybrid PSK installed since the last initiation: it goes at
    /// once. The REKEY_TIMEOUT spacing between initiations (§6.4) is for retransmitting an
    /// unanswered handshake, and each new PSK comes from a whole signed exchange, itself bounded
    /// (docs/protocol.md §6.1 step 1), so this adds no initiation flood.
    pub(super) fresh_psk: bool,
    pub(super) retry_due: bool,
    pub(super) want_keepalive: bool,
    pub(super) keys: KeyRing,
    pub(super) epochs: u64,
    pub(super) timers: Timers,
    pub(super) cookies: CookieJar,
    pub(super) stats: PeerStats,
    pub(super) events: EventQueue,
}

impl Peer {
    /// A peer we know by its static public key (already checked against our key by
    /// [`RemoteKeys::new`]), keyed as `keying` says, with MTU `mtu` for padding and an optional
    /// persistent keepalive.
    pub fn new(
        remote: RemoteKeys,
        keying: Keying,
        mtu: usize,
        persistent_keepalive: Option<Duration>,
    ) -> Self {
        Self {
            remote,
            keying,
            epoch_needed_at: None,
            reject_after: None,
            mtu,
            endpoint: Endpoint::default(),
            pending: None,
            response: None,
            last_initiation_sent: None,
            last_initiation_received: None,
            greatest_timestamp: [0; TIMESTAMP_LEN],
            last_timestamp_sent: None,
            want_handshake: false,
            fresh_psk: false,
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

    /// How this peer's handshakes are keyed.
    pub fn keying(&self) -> &Keying {
        &self.keying
    }

    /// Replaces a plain peer's static PSK (`wg set … preshared-key`) for handshakes started from
    /// now on; live sessions keep theirs. Refused (`false`) for a hybrid peer: its PSK slot
    /// belongs to the key agreement.
    pub fn set_static_psk(&mut self, psk: super::secret::Psk) -> bool {
        match &mut self.keying {
            Keying::Static(slot) => {
                *slot = psk;
                true
            }
            _ => false,
        }
    }

    /// Installs a hybrid epoch's PSK for the next handshake (either role) and, if `start`, asks
    /// for that handshake now. Live sessions and a handshake already on the wire keep their PSK.
    pub fn install_hybrid_psk(&mut self, now: Instant, fresh: HybridPsk, start: bool) {
        if self.keying.install(fresh).is_ok() && start {
            self.fresh_psk = true;
            self.want_handshake(now);
        }
    }

    /// The id of the hybrid PSK that keys what we send now, if a current session has one.
    pub fn current_psk_id(&self) -> Option<PskId> {
        self.keys.current().and_then(|s| s.psk_id())
    }

    /// Where datagrams for this peer go (roaming, §2.1: see [`Endpoint`]).
    pub fn endpoint(&self) -> Option<SocketAddr> {
        self.endpoint.get()
    }

    /// Sets the endpoint (configuration).
    pub fn set_endpoint(&mut self, endpoint: SocketAddr) {
        self.endpoint.set(endpoint);
    }

    /// A fresh, authenticated message of this peer came from `from` (the hybrid layer's too):
    /// the endpoint may roam there ([`Endpoint::observe`]).
    pub fn observe_source(&mut self, from: SocketAddr) {
        self.endpoint.observe(from);
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

    /// Off-spec: rekey after `after` instead of `REKEY_AFTER_TIME` (hybrid rotation, tests).
    pub fn set_rekey_after_time(&mut self, after: Duration) {
        self.timers.set_rekey_after(after);
    }

    /// Asks for a handshake as soon as the rate limit allows. A hybrid peer without a fresh PSK
    /// emits [`Event::EpochNeeded`] instead (at most once per REKEY_TIMEOUT).
    pub fn want_handshake(&mut self, now: Instant) {
        if self.keying.may_initiate() {
            self.want_handshake = true;
            return;
        }
        self.retry_due = false;
        let throttled = self
            .epoch_needed_at
            .is_some_and(|t| now.saturating_duration_since(t) < REKEY_TIMEOUT);
        if !throttled {
            self.epoch_needed_at = Some(now);
            self.events.push(Event::EpochNeeded);
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop()
    }

    /// Whether events are waiting (a cheap check on the data path).
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// When [`Peer::handle_timeout`] has work (or a wanted handshake passes its rate limit).
    pub fn poll_timeout(&self) -> Option<Instant> {
        // Only a handshake that poll_transmit could send makes a deadline (never a busy loop).
        let can_send =
            self.want_handshake && self.keying.may_initiate() && self.endpoint.get().is_some();
        // A fresh PSK's handshake has no gate: the next poll_transmit sends it.
        let rate_gate = (can_send && !self.fresh_psk)
            .then_some(self.last_initiation_sent.map(|t| t + REKEY_TIMEOUT))
            .flatten();
        [self.timers.next_deadline(), rate_gate]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the timers that are due at `now` (§6): retransmission or giving up, keepalives, a
    /// new handshake, erasing old keys.
    pub fn handle_timeout(&mut self, now: Instant, indices: &mut dyn IndexTable) {
        let due = self.timers.poll(now);
        if due.gave_up {
            self.stats.handshake_gave_up += 1;
            self.want_handshake = false;
            self.fresh_psk = false;
            self.retry_due = false;
            if let Some(p) = self.pending.take() {
                indices.release(p.local_index);
            }
            self.events.push(Event::HandshakeGaveUp);
        }
        if due.initiate {
            self.stats.handshake_timeouts += u64::from(due.retry);
            self.retry_due |= due.retry;
            self.want_handshake(now);
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

    /// Writes at most one due datagram into `out` (at least 148 bytes): a handshake response, an
    /// initiation, or a keepalive. Call until it returns `None`.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        cx: &mut Ctx<'_>,
        out: &mut [u8],
    ) -> Option<Transmit> {
        if let Some((to, msg)) = self.response.take() {
            let slot = out.get_mut(..RESPONSE_LEN)?;
            slot.copy_from_slice(&msg);
            return Some(Transmit {
                len: RESPONSE_LEN,
                to,
                tos: 0,
            });
        }
        let to = self.endpoint.get()?;
        let usable = self.has_usable_session(now);
        if self.want_keepalive && !usable {
            // As wireguard-go: a keepalive without keys starts a handshake instead.
            self.want_keepalive = false;
            self.want_handshake(now);
        }
        if self.want_handshake
            && self.keying.may_initiate()
            && (self.retry_due || self.fresh_psk || may_initiate(self.last_initiation_sent, now))
        {
            let retry = std::mem::take(&mut self.retry_due);
            if let Some(len) = self.write_initiation(now, cx, out, retry) {
                return Some(Transmit { len, to, tos: 0 });
            }
        }
        if self.want_keepalive && usable {
            return self.encapsulate(now, out, 0).ok();
        }
        None
    }
}

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "peer_gate_tests.rs"]
mod gate_tests;

//! What the per-peer state machine ([`super::peer`]) borrows from its interface and what a peer
//! hands back: the call context, lifecycle events, datagrams to transmit, status counters (whitepaper §6
//! for the events; `wg show` for the counters).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use super::crypto::Entropy;
use super::handshake::StaticKeys;
use super::index::IndexTable;
use super::psk::PskId;
use super::tai64n::WallClock;

/// What a peer borrows from its interface for the duration of one call.
pub struct Ctx<'a> {
    /// Our static keys.
    pub keys: &'a StaticKeys,
    /// Wall-clock mapping for handshake timestamps.
    pub clock: &'a WallClock,
    /// Randomness (ephemeral keys, indices, jitter).
    pub rng: &'a mut dyn Entropy,
    /// The interface's session index table.
    pub indices: &'a mut dyn IndexTable,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("keys", self.keys)
            .finish_non_exhaustive()
    }
}

/// Something the caller should know about (lifecycle, not per packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A session became the one this peer sends with. `psk_id` names the hybrid PSK that keyed
    /// it (`None`: a plain peer's static PSK).
    SessionConfirmed {
        /// Per-peer session number.
        epoch: u64,
        /// The hybrid PSK mixed into its handshake.
        psk_id: Option<PskId>,
        /// Whether we initiated that handshake.
        initiator: bool,
    },
    /// No response within `REKEY_ATTEMPT_TIME`: packets waiting for a session should be dropped.
    HandshakeGaveUp,
    /// All keys were erased after 3 × `REJECT_AFTER_TIME` without a new handshake.
    KeysZeroed,
    /// A hybrid peer wants a handshake but has no fresh hybrid PSK: the key agreement should make
    /// a new epoch (emitted at most once per REKEY_TIMEOUT).
    EpochNeeded,
}

/// A datagram written into the caller's buffer and where to send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Bytes written at the start of the output buffer.
    pub len: usize,
    /// Destination (the peer's current endpoint).
    pub to: SocketAddr,
    /// The outer IP header's TOS / traffic class byte: the class's DSCP (with `outer_dscp`) and
    /// the ECN field encapsulated from the inner packet (RFC 6040 §4.1); 0 for everything that
    /// is not a tunnelled packet.
    pub tos: u8,
}

/// Counters for `status` (what `wg show` reports).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PeerStats {
    /// Transport bytes received (UDP payload).
    pub rx_bytes: u64,
    /// Transport bytes sent (UDP payload).
    pub tx_bytes: u64,
    /// Transport packets received (keepalives included; handshake messages not).
    pub rx_packets: u64,
    /// Transport packets sent (keepalives included; handshake messages not).
    pub tx_packets: u64,
    /// Handshakes completed (sessions confirmed).
    pub handshakes: u64,
    /// Handshake attempts retransmitted because no response came within REKEY_TIMEOUT (§6.4).
    pub handshake_timeouts: u64,
    /// Times the handshake was given up after REKEY_ATTEMPT_TIME (§6.4).
    pub handshake_gave_up: u64,
    /// When the last session was confirmed.
    pub last_handshake: Option<Instant>,
    /// The epoch of the current session (0: none yet).
    pub epoch: u64,
}

/// At most this many undelivered events are kept (older ones are dropped; memory stays bounded).
const MAX_EVENTS: usize = 32;

/// A bounded FIFO of [`Event`]s.
#[derive(Debug, Default)]
pub(crate) struct EventQueue(VecDeque<Event>);

impl EventQueue {
    pub(crate) fn push(&mut self, e: Event) {
        if self.0.len() == MAX_EVENTS {
            self.0.pop_front();
        }
        self.0.push_back(e);
    }

    pub(crate) fn pop(&mut self) -> Option<Event> {
        self.0.pop_front()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

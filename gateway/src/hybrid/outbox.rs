//! What a [`super::HybridPeer`] hands back to its driver (docs/protocol.md §6): datagrams to send,
//! requests for its KME, the PSK to install into WireGuard, and facts for logs and the audit log.
//! Every queue is bounded; the driver drains them after each call, so in operation they hold a
//! message or two.

use std::collections::VecDeque;

use keymix::KeyId;

use super::wire::Datagram;
use super::{HybridDrop, HybridEvent, MAX_SOURCES, SourceIndex};
use crate::proto::psk::HybridPsk;

/// Most datagrams queued (two whole messages of the largest size).
const MAX_DATAGRAMS: usize = 2 * super::constants::MAX_FRAGMENTS;
/// Most events queued.
const MAX_EVENTS: usize = 32;

/// Names one KME request of one peer; echoed in its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// Whether a master's key may come from keys fetched before the request (the daemon's prefetch
/// buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefetched {
    /// Yes: the usual case.
    Use,
    /// No: the slave's KME refused a key this side fetched, so the keys fetched with or before it
    /// are suspect (the KMEs lost their stock or their synchronisation, ETSI GS QKD 014 §5.3's
    /// 400 on `dec_keys`). Drop them and fetch anew.
    Discard,
}

/// What to ask the site's KME (ETSI GS QKD 014 §5.2, §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QkdOp {
    /// Master: one fresh key shared with the peer's SAE (`enc_keys`, or the prefetch pool).
    Fetch {
        /// Whether a prefetched key may serve.
        prefetched: Prefetched,
    },
    /// Slave: the keys the master named (`dec_keys` with the master's SAE).
    Resolve {
        /// The key IDs from the Init.
        key_ids: Vec<KeyId>,
    },
}

/// One KME request of one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QkdRequest {
    /// Echo this in [`super::HybridPeer::handle_qkd_result`].
    pub id: RequestId,
    /// Which of the peer's QKD sources (its KME and the peer's SAE ID behind it) to ask.
    pub source: SourceIndex,
    /// What to ask.
    pub op: QkdOp,
}

/// A PSK for WireGuard's next handshake with this peer.
#[derive(Debug)]
pub struct PskInstall {
    /// The epoch's PSK and its id.
    pub psk: HybridPsk,
    /// Start the WireGuard handshake now (the master; the slave answers).
    pub handshake_now: bool,
}

/// The queues.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    datagrams: VecDeque<Datagram>,
    qkd: VecDeque<QkdRequest>,
    psk: Option<PskInstall>,
    events: VecDeque<HybridEvent>,
}

impl Outbox {
    /// Queues a message's datagrams; `Err` if the queue would exceed its bound (they are dropped).
    pub(super) fn send(&mut self, datagrams: &[Datagram]) -> Result<(), HybridDrop> {
        if self.datagrams.len() + datagrams.len() > MAX_DATAGRAMS {
            return Err(HybridDrop::QueueFull);
        }
        self.datagrams.extend(datagrams.iter().cloned());
        Ok(())
    }

    /// Copies the next datagram into `buf`; its length.
    pub(super) fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<usize> {
        let d = self.datagrams.front()?;
        let slot = buf.get_mut(..d.len())?;
        slot.copy_from_slice(d);
        let len = d.len();
        self.datagrams.pop_front();
        Some(len)
    }

    /// Asks the KMEs: one request per source, one round in flight per peer (a newer round
    /// replaces the unsent requests of an older one).
    pub(super) fn ask(&mut self, round: impl IntoIterator<Item = QkdRequest>) {
        self.qkd.clear();
        self.qkd.extend(round.into_iter().take(MAX_SOURCES));
    }

    pub(super) fn poll_qkd_request(&mut self) -> Option<QkdRequest> {
        self.qkd.pop_front()
    }

    /// Offers a PSK for installation (a newer one replaces an unsent older one, which is erased).
    pub(super) fn install(&mut self, install: PskInstall) {
        self.psk = Some(install);
    }

    pub(super) fn poll_psk(&mut self) -> Option<PskInstall> {
        self.psk.take()
    }

    /// Records a fact (the oldest is dropped beyond the bound).
    pub(super) fn event(&mut self, event: HybridEvent) {
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    pub(super) fn poll_event(&mut self) -> Option<HybridEvent> {
        self.events.pop_front()
    }
}

//! The invariants the simulation checks after every step (a violation panics with the seed, so
//! the run replays exactly with `QGW_SIM_SEED`):
//!
//! 1. no plaintext leaves a node: every datagram is a well-formed WireGuard handshake, cookie or
//!    transport message or a hybrid fragment, and no tunnel payload's marker appears in one;
//! 2. no hybrid peer has a WireGuard session without a hybrid PSK;
//! 3. a session keyed by a hybrid PSK exists only if both sides installed that epoch with the
//!    same key confirmation (the same PSK);
//! 4. no QKD key is used for two epochs;
//! 5. under `required` no epoch is made without QKD;
//! 6. every datagram or packet a node refuses is counted under exactly the reason it gave, and
//!    nothing else is;
//! 7. a node's timers make progress (no deadline left in the past once it ran: no busy loop).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use gateway::DropReason;
use gateway::hybrid::{EpochInfo, HybridDrop, HybridEvent, QkdPolicy, wire};
use gateway::node::{Dropped, Node, NodeEvent, PeerId, Received};
use gateway::proto::messages::Message;
use gateway::proto::peer::Event;
use keymix::KeyId;

/// Every tunnel payload the simulation sends starts with this; it must never be seen on the wire.
pub const MARKER: &[u8] = b"qgw-sim plaintext";

/// A node's drop counters at one instant: the interface's, and each hybrid peer's total.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    interface: Vec<u64>,
    hybrid: Vec<(PeerId, u64)>,
}

impl Counters {
    /// Reads them from `node` (outgoing-queue overflows are not refusals of input: left out).
    pub fn of(node: &Node) -> Self {
        let hybrid = node
            .peer_ids()
            .filter_map(|id| {
                let s = node.hybrid_peer(id)?.stats();
                let total: u64 = s.drops.values().sum();
                Some((id, total - s.drops_for(HybridDrop::QueueFull)))
            })
            .collect();
        Self {
            interface: node.drops().to_vec(),
            hybrid,
        }
    }

    fn expect(&self, reason: Option<DropReason>, hybrid: Option<PeerId>) -> Self {
        let mut want = self.clone();
        if let Some(r) = reason {
            want.interface[r.index()] += 1;
        }
        if let Some(p) = hybrid
            && let Some(entry) = want.hybrid.iter_mut().find(|(id, _)| *id == p)
        {
            entry.1 += 1;
        }
        want
    }
}

/// What the checker remembers.
#[derive(Debug)]
pub struct Checker {
    seed: u64,
    /// Epochs installed, by (node, peer).
    installs: BTreeMap<(usize, PeerId), Vec<EpochInfo>>,
    /// QKD key IDs used, by node.
    key_ids: BTreeMap<usize, BTreeSet<KeyId>>,
    /// Sessions confirmed with a hybrid PSK.
    pub hybrid_sessions: u64,
}

impl Checker {
    /// A checker reporting `seed` on failure.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            installs: BTreeMap::new(),
            key_ids: BTreeMap::new(),
            hybrid_sessions: 0,
        }
    }

    fn fail(&self, what: std::fmt::Arguments<'_>) -> ! {
        panic!("seed {}: invariant violated: {what}", self.seed)
    }

    /// Invariant 1, on every datagram node `from` sends.
    pub fn sent(&self, from: usize, bytes: &[u8], mtu: usize) {
        if bytes.windows(MARKER.len()).any(|w| w == MARKER) {
            self.fail(format_args!(
                "node {from} sent a tunnel payload in the clear"
            ));
        }
        if wire::is_hybrid(bytes) {
            if wire::parse(bytes).is_err() {
                self.fail(format_args!("node {from} sent a malformed hybrid datagram"));
            }
            return;
        }
        let padded = |n: usize| n >= 32 && ((n - 32).is_multiple_of(16) || n == mtu + 32);
        match Message::parse(bytes) {
            Ok(Message::Transport(..)) if padded(bytes.len()) => {}
            Ok(Message::Initiation(_) | Message::Response(_) | Message::CookieReply(_)) => {}
            _ => self.fail(format_args!(
                "node {from} sent {} bytes that are no WireGuard message",
                bytes.len()
            )),
        }
    }

    /// Invariant 6, around one `handle_datagram`.
    pub fn received(&self, node: usize, before: &Counters, outcome: &Received, after: &Counters) {
        let want = match outcome {
            Received::Packet { .. } | Received::Accepted => before.clone(),
            Received::Dropped(Dropped::Interface(r)) => before.expect(Some(*r), None),
            Received::Dropped(Dropped::Hybrid(p, _)) => before.expect(None, Some(*p)),
        };
        if *after != want {
            self.fail(format_args!(
                "node {node}: {outcome:?} moved the drop counters {before:?} -> {after:?}"
            ));
        }
    }

    /// Invariant 6, around one `handle_tun_packet` (a staged packet may displace an older one,
    /// counted as `no_session`).
    pub fn tunnel(
        &self,
        node: usize,
        before: &Counters,
        outcome: Result<(), DropReason>,
        after: &Counters,
    ) {
        let ok = match outcome {
            Ok(()) => *after == *before,
            Err(DropReason::NoSession) => {
                *after == *before || *after == before.expect(Some(DropReason::NoSession), None)
            }
            Err(r) => *after == before.expect(Some(r), None),
        };
        if !ok {
            self.fail(format_args!(
                "node {node}: tunnel packet {outcome:?} moved the counters {before:?} -> {after:?}"
            ));
        }
    }

    /// Invariants 3–5, on every event of node `at`; `peer_node` finds the node a peer is.
    pub fn event(
        &mut self,
        at: usize,
        node: &Node,
        e: &NodeEvent,
        peer_node: impl Fn(PeerId) -> Option<(usize, PeerId)>,
    ) {
        match e {
            NodeEvent::Hybrid {
                peer,
                event: HybridEvent::EpochInstalled(info),
            } => {
                let policy = node.hybrid_peer(*peer).map(|h| h.policy());
                if policy == Some(QkdPolicy::Required) && !info.sources.has_qkd() {
                    self.fail(format_args!(
                        "node {at}: epoch {} without QKD under required",
                        info.epoch
                    ));
                }
                let used = self.key_ids.entry(at).or_default();
                for id in &info.key_ids {
                    if !used.insert(*id) {
                        self.fail(format_args!(
                            "node {at}: QKD key {id} used for a second epoch"
                        ));
                    }
                }
                self.installs
                    .entry((at, *peer))
                    .or_default()
                    .push(info.clone());
            }
            NodeEvent::Session {
                peer,
                event:
                    Event::SessionConfirmed {
                        psk_id: Some(psk), ..
                    },
            } => {
                self.hybrid_sessions += 1;
                // The newest install with that id: a restarted node hands out ids from 1 again.
                let installs = self.installs.get(&(at, *peer));
                let mine = installs.and_then(|v| v.iter().rev().find(|i| i.psk_id == *psk));
                let Some(mine) = mine else {
                    self.fail(format_args!(
                        "node {at}: a session keyed by a PSK never installed"
                    ));
                };
                let Some(other) = peer_node(*peer) else {
                    return;
                };
                let theirs = self.installs.get(&other).into_iter().flatten();
                let same = |i: &&EpochInfo| {
                    i.epoch == mine.epoch
                        && i.confirmation == mine.confirmation
                        && i.transcript_hash == mine.transcript_hash
                };
                if !theirs.clone().any(|i| same(&i)) {
                    self.fail(format_args!(
                        "node {at}: session with epoch {} whose PSK the peer never installed",
                        mine.epoch
                    ));
                }
            }
            _ => {}
        }
    }

    /// Invariants 2 and 7, after every step, for node `at`.
    pub fn settled(&self, at: usize, node: &Node, now: Instant) {
        for id in node.peer_ids() {
            let (Some(wg), Some(_)) = (node.wg_peer(id), node.hybrid_peer(id)) else {
                continue;
            };
            if wg.has_session() && wg.current_psk_id().is_none() {
                self.fail(format_args!(
                    "node {at}: a hybrid peer has a session without a hybrid PSK"
                ));
            }
        }
        if node.poll_timeout().is_some_and(|t| t <= now) {
            let due: Vec<_> = node
                .peer_ids()
                .map(|id| {
                    let wg = node.wg_peer(id).and_then(|p| p.poll_timeout());
                    let h = node.hybrid_peer(id).and_then(|h| h.poll_timeout());
                    (id, wg.map(|t| t <= now), h.map(|t| t <= now))
                })
                .collect();
            self.fail(format_args!(
                "node {at}: a deadline is still due after its timeout ran (peer, wg due, hybrid due): {due:?}"
            ));
        }
    }

    /// Epochs node `at` installed for `peer`.
    pub fn epochs(&self, at: usize, peer: PeerId) -> &[EpochInfo] {
        self.installs.get(&(at, peer)).map_or(&[], Vec::as_slice)
    }
}

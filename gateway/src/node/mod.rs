//! One site's gateway as a sans-IO state machine: the WireGuard interface (whitepaper §2, §5), every
//! peer's hybrid key agreement (docs/protocol.md) and the operations view (docs/audit.md,
//! docs/operations.md), talking to the world only through values. No clock, socket, file or
//! thread is in here; the daemon (`crate::daemon`) is the thin shell that has them.
//!
//! The crate's one sans-IO style, after quinn-proto's `Connection`: `handle_*(now, …)` take input
//! (a datagram, a packet from the tunnel, a KME reply, a timeout, a command); `poll_*` hand back
//! output (a datagram written into the caller's buffer, a KME request, an event for the logs and
//! the audit log, the next deadline). The data path works in place in the caller's buffer and
//! allocates nothing.
//!
//! **A packet, end to end.** The shell reads an IP packet from TUN into a buffer with 16 bytes of
//! headroom → [`Node::handle_tun_packet`] looks up the destination in the allowed IPs
//! (`send.rs`) → the peer's current session seals it in place (`proto::peer_transport`) → the
//! shell sends the returned [`Transmit`] with `sendmmsg`. At the other site the shell hands the
//! datagram to [`Node::handle_datagram`] → dispatch by message type (`receive.rs`) → the session
//! named by the receiver index opens it in place, the replay window and the allowed IPs check it
//! → [`Received::Packet`] names the bytes to write to TUN. Without a session the packet is staged
//! (`PeerSlot::stage`) and a handshake wanted; [`Node::poll_transmit`] sends the staged packets
//! once one is confirmed (`transmit.rs`).
//!
//! **A QKD key, end to end.** The master's hybrid timer fires in [`Node::handle_timeout`] → the
//! hybrid peer asks for a key → `link.rs` turns it into a [`KmeRequest`] (`Fetch` for the peer's
//! SAE) → the shell's KME thread calls ETSI 014 `enc_keys` (or takes a prefetched key) and hands
//! back a [`KmeReply`] → [`Node::handle_kme_reply`] → the master signs an Init carrying the key ID
//! (`hybrid::master`) → [`Node::poll_transmit`] sends its fragments. The slave's node parses the
//! header once, finds the peer by `pair_id` (`receive.rs`) → the slave verifies, asks its KME
//! (`Resolve`, `dec_keys` by key ID) → with the reply it encapsulates, derives the epoch's PSK with
//! keymix, answers, and `link.rs` installs the PSK in its WireGuard peer. The master verifies the
//! Response, derives the same PSK, and `link.rs` installs it with a request to handshake now →
//! [`Node::poll_transmit`] sends the WireGuard initiation keyed by that PSK → the confirmed
//! session erases the PSK and moves the ratchet (`link.rs`), and the audit log records the epoch
//! with its key ID ([`NodeEvent::Audit`]).

mod config;
mod egress;
#[cfg(test)]
mod egress_tests;
mod events;
mod first_exchange;
mod kme;
mod link;
mod ops;
mod peers;
mod receive;
mod send;
mod snapshot;
#[doc(hidden)]
pub mod testing;
mod transmit;
mod uapi;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use self::config::{NodeConfig, NodePeer, PeerSpec, Randomness};
pub use self::events::NodeEvent;
pub use self::kme::{KmeId, KmeOp, KmeReply, KmeRequest};
use self::ops::OpsClock;
pub use self::peers::{MAX_STAGED, PeerId};
use self::peers::{PeerSlot, Peers, SlotContext};
pub use self::receive::{Dropped, PendingTransport, Received};
use crate::error::{DropReason, Error};
pub use crate::hybrid::Prefetched;
use crate::proto::allowed_ips::AllowedIps;
use crate::proto::constants::{COOKIE_REPLY_LEN, KEY_LEN};
use crate::proto::cookie::CookieChecker;
use crate::proto::handshake::StaticKeys;
use crate::proto::index::IndexMap;
use crate::proto::peer::Ctx;
pub use crate::proto::peer::Transmit;
use crate::proto::ratelimit::{LoadMonitor, RateLimiter};
use crate::proto::tai64n::WallClock;

/// Cookie replies waiting for [`Node::poll_transmit`] at most (more under a flood are dropped:
/// the sender simply retries, as after any loss).
const MAX_COOKIE_REPLIES: usize = 64;
/// How far the wall clock may move from what the node's clock predicts before the node follows it
/// (timestamps are whitened to ~16.8 ms; NTP slews far more slowly).
pub const WALL_CLOCK_RESYNC: Duration = Duration::from_millis(100);

/// One site's gateway.
pub struct Node {
    keys: StaticKeys,
    clock: WallClock,
    randomness: Randomness,
    rng: Box<dyn keymix::Entropy + Send>,
    mtu: usize,
    signing_key: Option<std::sync::Arc<keymix::mldsa::SigningKey>>,
    danger_rekey_after: Option<std::time::Duration>,
    danger_reject_after: Option<std::time::Duration>,
    peers: Peers,
    indices: IndexMap<PeerId>,
    routes: AllowedIps<PeerId>,
    checker: CookieChecker,
    load: LoadMonitor,
    limiter: RateLimiter,
    drops: [u64; DropReason::ALL.len()],
    cookie_replies: VecDeque<(SocketAddr, [u8; COOKIE_REPLY_LEN])>,
    cookie_replies_sent: u64,
    kme_requests: VecDeque<KmeRequest>,
    events: VecDeque<NodeEvent>,
    ops: OpsClock,
    /// The peer [`Node::poll_transmit`] looks at first (round robin).
    cursor: usize,
    /// Which traffic class each inner packet falls into (peers with classes).
    classes: std::sync::Arc<crate::classes::rules::ClassRules>,
    /// The peers with an egress scheduler, in order.
    shaped: Vec<PeerId>,
    /// The peer [`Node::poll_egress`] looks at first (round robin).
    egress_cursor: usize,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("public", self.keys.public())
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node at `now` from `config`, with `clock` mapping `now` to wall-clock time (handshake
    /// timestamps, status) and randomness from `randomness`.
    pub fn new(
        now: Instant,
        clock: WallClock,
        config: NodeConfig,
        mut randomness: Randomness,
    ) -> Result<Self, Error> {
        let NodeConfig {
            private_key,
            mtu,
            load_threshold,
            peers,
            signing_key,
            danger_rekey_after,
            danger_reject_after,
            classes,
        } = config;
        let keys = StaticKeys::new(private_key);
        let checker = CookieChecker::new(keys.cookie_key);
        let rng = randomness.stream();
        let mut node = Self {
            keys,
            clock,
            randomness,
            rng,
            mtu,
            signing_key,
            danger_rekey_after,
            danger_reject_after,
            peers: Peers::default(),
            indices: IndexMap::new(),
            routes: AllowedIps::new(),
            checker,
            load: LoadMonitor::new(load_threshold),
            limiter: RateLimiter::default(),
            drops: [0; DropReason::ALL.len()],
            cookie_replies: VecDeque::new(),
            cookie_replies_sent: 0,
            kme_requests: VecDeque::new(),
            events: VecDeque::new(),
            ops: OpsClock::new(now),
            cursor: 0,
            classes,
            shaped: Vec::new(),
            egress_cursor: 0,
        };
        let window = first_exchange::window(&peers);
        for peer in peers {
            let id = node.add_peer(now, peer)?;
            node.spread_first_exchange(now, id, window);
        }
        Ok(node)
    }

    /// Adds a peer (configuration, or `wg set` for a plain peer); returns its id.
    pub fn add_peer(&mut self, now: Instant, config: NodePeer) -> Result<PeerId, Error> {
        let key = config.wg.public_key;
        if key == *self.keys.public() || self.peers.by_key(&key).is_some() {
            return Err(Error::DuplicatePeer);
        }
        let allowed_ips = config.wg.allowed_ips.clone();
        let hybrid = config.hybrid.is_some();
        let cx = SlotContext {
            now,
            keys: &self.keys,
            signing_key: self.signing_key.as_ref(),
            clock: self.clock,
            mtu: self.mtu,
            randomness: &mut self.randomness,
        };
        let mut slot = PeerSlot::new(cx, config)?;
        if let (Some(d), false) = (self.danger_rekey_after, hybrid) {
            slot.wg.set_rekey_after_time(d);
        }
        if let Some(d) = self.danger_reject_after {
            slot.wg.set_reject_after_time(d);
        }
        let shaped = slot.egress.is_some();
        let id = self.peers.add(slot)?;
        if shaped {
            self.shaped.push(id);
        }
        for (ip, len) in allowed_ips {
            self.routes.insert(ip, len, id);
        }
        Ok(id)
    }

    /// Our public key.
    pub fn public_key(&self) -> &[u8; KEY_LEN] {
        self.keys.public()
    }

    /// Peer `id`'s name.
    pub fn peer_name(&self, id: PeerId) -> &str {
        self.peers.get(id).map_or("?", |p| p.name.as_str())
    }

    /// Every peer id, in order.
    pub fn peer_ids(&self) -> impl Iterator<Item = PeerId> + use<> {
        self.peers.ids()
    }

    /// Peer `id`'s WireGuard state (status, tests).
    pub fn wg_peer(&self, id: PeerId) -> Option<&crate::proto::peer::Peer> {
        self.peers.get(id).map(|p| &p.wg)
    }

    /// Peer `id`'s hybrid key agreement, if it is a hybrid peer (status, tests).
    pub fn hybrid_peer(&self, id: PeerId) -> Option<&crate::hybrid::HybridPeer> {
        self.peers.get(id).and_then(|p| p.hybrid.as_ref())
    }

    /// The peer whose allowed IPs cover `ip` (cryptokey routing, whitepaper §2).
    pub fn route(&self, ip: std::net::IpAddr) -> Option<PeerId> {
        self.routes.lookup(ip)
    }

    /// Drops so far, indexed by [`DropReason::index`].
    pub fn drops(&self) -> &[u64; DropReason::ALL.len()] {
        &self.drops
    }

    /// Runs `f` on peer `id` with the context its WireGuard state machine borrows from the node
    /// (our keys, the clock, randomness, the index table on the peer's behalf).
    fn with_peer<T>(
        &mut self,
        id: PeerId,
        f: impl FnOnce(&mut PeerSlot, &mut Ctx<'_>) -> T,
    ) -> Option<T> {
        let slot = self.peers.get_mut(id)?;
        let mut indices = self.indices.for_peer(id);
        let mut cx = Ctx {
            keys: &self.keys,
            clock: &self.clock,
            rng: &mut *self.rng,
            indices: &mut indices,
        };
        Some(f(slot, &mut cx))
    }

    /// Counts a drop and hands the reason back.
    fn count(&mut self, reason: DropReason) -> DropReason {
        self.drops[reason.index()] += 1;
        reason
    }

    /// The wall clock reads `unix` at `now` (the driver reads it every loop turn; WireGuard reads
    /// it per timestamp). Only a difference of more than [`WALL_CLOCK_RESYNC`] from what the
    /// node's clock predicts is taken: a clock stepped by NTP, set by hand, or drifted that far.
    pub fn set_wall_clock(&mut self, now: Instant, unix: Duration) {
        let predicted = self.clock.unix(now);
        let off = predicted.abs_diff(unix);
        if off <= WALL_CLOCK_RESYNC {
            return;
        }
        self.clock.set(now, unix);
        for id in self.peers.ids() {
            if let Some(h) = self.peers.get_mut(id).and_then(|s| s.hybrid.as_mut()) {
                h.set_wall_clock(now, unix);
                self.settle(now, id);
            }
        }
    }

    /// Runs every timer due at `now`: WireGuard's (§6), each hybrid exchange's (protocol.md
    /// §6), and the operations evaluation (peer up/down, policy state, audit records).
    pub fn handle_timeout(&mut self, now: Instant) {
        for id in self.peers.ids() {
            let Some(slot) = self.peers.get_mut(id) else {
                continue;
            };
            if slot.wg.poll_timeout().is_some_and(|t| t <= now) {
                slot.wg.handle_timeout(now, &mut self.indices.for_peer(id));
            }
            if let Some(h) = slot.hybrid.as_mut()
                && h.poll_timeout().is_some_and(|t| t <= now)
            {
                h.handle_timeout(now);
            }
            self.settle(now, id);
        }
        if self.ops.due(now) {
            self.evaluate(now);
        }
    }

    /// The earliest instant [`Node::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let peers = self.peers.iter().flat_map(|(_, p)| {
            let hybrid = p.hybrid.as_ref().and_then(|h| h.poll_timeout());
            [p.wg.poll_timeout(), hybrid]
        });
        (peers.chain([Some(self.ops.next()), self.egress_timeout()]))
            .flatten()
            .min()
    }

    /// The next request for this site's KME.
    pub fn poll_kme_request(&mut self) -> Option<KmeRequest> {
        self.kme_requests.pop_front()
    }

    /// The next event for the logs and the audit log.
    pub fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }
}

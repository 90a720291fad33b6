//! The node's one table of peers: everything about a peer (its WireGuard state, its hybrid key
//! agreement, its staged packets, its operations view) in one [`PeerSlot`], named by a typed
//! [`PeerId`], and the two indexes that find a peer from the network (its static key for a
//! handshake initiation, whitepaper §5.4.2; its `pair_id` for a hybrid datagram, protocol.md §3).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use keymix::mldsa::SigningKey;

use super::config::{NodePeer, Randomness};
use crate::config_hybrid::{HybridPeerSpec, QkdSource};
use crate::error::Error;
use crate::hybrid::{HybridPeer, HybridSettings, PairKeys, PeerKeys, QkdSources, Role, identity};
use crate::ops::PeerWatch;
use crate::proto::constants::KEY_LEN;
use crate::proto::handshake::{RemoteKeys, StaticKeys};
use crate::proto::peer::Peer;
use crate::proto::psk::Keying;
use crate::proto::secret::Psk;
use crate::proto::tai64n::WallClock;

/// Packets held per peer while its handshake runs (wireguard-go stages 128; memory stays bounded).
pub const MAX_STAGED: usize = 32;

/// A peer of one node: its position in the node's table. Peers are never removed while the node
/// runs (the YAML file is the source of truth; `wg set … remove` is refused), so an id stays valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(u32);

impl PeerId {
    /// The handle of the peer at position `index` (tests and tools; a node hands out its own).
    pub const fn new(index: u32) -> Self {
        Self(index)
    }

    /// The position in configuration order (then the order `wg set` added peers).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Everything the node keeps about one peer.
#[derive(Debug)]
pub(super) struct PeerSlot {
    pub(super) name: String,
    pub(super) wg: Peer,
    pub(super) hybrid: Option<HybridPeer>,
    /// The peer's QKD sources, in order: which KME of this site, and the peer's SAE ID behind
    /// it (hybrid peers with QKD; docs/protocol.md §6.3).
    pub(super) qkd_sources: Vec<QkdSource>,
    /// Packets from the tunnel waiting for a session.
    pub(super) staged: VecDeque<Vec<u8>>,
    pub(super) watch: PeerWatch,
    /// Its egress scheduler, with an `egress_rate` (`egress.rs`).
    pub(super) egress: Option<crate::classes::scheduler::EgressScheduler>,
    /// Whether the outer header carries the class's DSCP (`outer_dscp`).
    pub(super) outer_dscp: bool,
}

/// What building a peer needs from its node.
pub(super) struct SlotContext<'a> {
    pub(super) now: Instant,
    pub(super) keys: &'a StaticKeys,
    pub(super) signing_key: Option<&'a Arc<SigningKey>>,
    pub(super) clock: WallClock,
    pub(super) mtu: usize,
    pub(super) randomness: &'a mut Randomness,
}

impl PeerSlot {
    /// Builds a peer from its configuration (a hybrid peer gets its key agreement too).
    pub(super) fn new(cx: SlotContext<'_>, config: NodePeer) -> Result<Self, Error> {
        let NodePeer {
            name,
            wg,
            hybrid,
            egress,
        } = config;
        let scheduler = egress.rate_bps.map(|rate| {
            let mut seed = [0u8; 8];
            cx.randomness.stream().fill(&mut seed);
            let ipv6 = wg.endpoint.is_some_and(|e| e.is_ipv6());
            super::egress::scheduler(cx.now, rate, cx.mtu, ipv6, u64::from_le_bytes(seed))
        });
        let remote = RemoteKeys::new(cx.keys, wg.public_key)
            .map_err(|_| Error::InvalidKey("low-order public key"))?;
        let keying = match &hybrid {
            None => Keying::Static(wg.psk.as_ref().map_or_else(Psk::zero, Psk::duplicate)),
            Some(h) if h.role == Role::Master => Keying::HybridMaster(None),
            Some(_) => Keying::HybridSlave(None),
        };
        let mut peer = Peer::new(remote, keying, cx.mtu, wg.persistent_keepalive);
        if let Some(e) = wg.endpoint {
            peer.set_endpoint(e);
            // A plain peer handshakes at once, as with a persistent keepalive, so the first
            // packets do not wait for one; a hybrid peer's handshakes follow its epochs.
            if hybrid.is_none() {
                peer.want_handshake(cx.now);
            }
        }
        let qkd_sources = hybrid
            .as_ref()
            .map(|h| h.sources.clone())
            .unwrap_or_default();
        let hybrid = match hybrid {
            None => None,
            Some(spec) => {
                peer.set_rekey_after_time(spec.rekey_after);
                Some(hybrid_peer(cx, &wg.public_key, wg.psk, spec)?)
            }
        };
        Ok(Self {
            name,
            wg: peer,
            hybrid,
            qkd_sources,
            staged: VecDeque::new(),
            watch: PeerWatch::default(),
            egress: scheduler,
            outer_dscp: egress.outer_dscp,
        })
    }

    /// Holds a packet until a session exists; `true` if the oldest had to go to make room.
    pub(super) fn stage(&mut self, packet: &[u8]) -> bool {
        let displaced = self.staged.len() == MAX_STAGED;
        if displaced {
            self.staged.pop_front();
        }
        self.staged.push_back(packet.to_vec());
        displaced
    }
}

fn hybrid_peer(
    cx: SlotContext<'_>,
    peer_public: &[u8; KEY_LEN],
    genesis_psk: Option<Psk>,
    spec: HybridPeerSpec,
) -> Result<HybridPeer, Error> {
    let signing = cx.signing_key.ok_or(Error::InvalidKey(
        "a hybrid peer needs the site's ML-DSA-65 key",
    ))?;
    let pair = PairKeys::derive(cx.keys.secret(), peer_public)
        .ok_or(Error::InvalidKey("low-order public key"))?;
    let local_id = identity(cx.keys.public(), signing.verifying_key());
    let peer_id = identity(peer_public, &spec.verifying_key);
    let (master, slave) = match spec.role {
        Role::Master => (local_id, peer_id),
        Role::Slave => (peer_id, local_id),
    };
    let keys = PeerKeys {
        signing: Arc::clone(signing),
        peer_verifying: spec.verifying_key,
        pair,
        master,
        slave,
        genesis_psk,
    };
    let settings = HybridSettings {
        role: spec.role,
        policy: spec.policy,
        rekey_after: spec.rekey_after,
    };
    let entropy = cx.randomness.stream();
    let sources = QkdSources {
        count: spec.sources.len().max(1),
        require: spec.require,
    };
    Ok(HybridPeer::new(cx.now, settings, keys, cx.clock, entropy).with_qkd_sources(sources))
}

/// The table and its indexes.
#[derive(Debug, Default)]
pub(super) struct Peers {
    slots: Vec<PeerSlot>,
    by_key: HashMap<[u8; KEY_LEN], PeerId>,
    by_pair: HashMap<[u8; 8], PeerId>,
}

impl Peers {
    /// Adds a peer; refuses a second peer with the same static key or `pair_id`.
    pub(super) fn add(&mut self, slot: PeerSlot) -> Result<PeerId, Error> {
        let key = *slot.wg.public_key();
        let pair = slot.hybrid.as_ref().map(|h| *h.pair_id());
        let id = u32::try_from(self.slots.len())
            .map(PeerId)
            .map_err(|_| Error::DuplicatePeer)?;
        if self.by_key.contains_key(&key) || pair.is_some_and(|p| self.by_pair.contains_key(&p)) {
            return Err(Error::DuplicatePeer);
        }
        self.by_key.insert(key, id);
        if let Some(p) = pair {
            self.by_pair.insert(p, id);
        }
        self.slots.push(slot);
        Ok(id)
    }

    pub(super) fn get(&self, id: PeerId) -> Option<&PeerSlot> {
        self.slots.get(id.index())
    }

    pub(super) fn get_mut(&mut self, id: PeerId) -> Option<&mut PeerSlot> {
        self.slots.get_mut(id.index())
    }

    /// The peer with static key `public`.
    pub(super) fn by_key(&self, public: &[u8; KEY_LEN]) -> Option<PeerId> {
        self.by_key.get(public).copied()
    }

    /// The hybrid peer with `pair_id`.
    pub(super) fn by_pair(&self, pair_id: &[u8; 8]) -> Option<PeerId> {
        self.by_pair.get(pair_id).copied()
    }

    /// The id at position `index`.
    pub(super) fn id_at(&self, index: usize) -> Option<PeerId> {
        (index < self.slots.len()).then_some(PeerId(index as u32))
    }

    /// Every id, in order.
    pub(super) fn ids(&self) -> impl Iterator<Item = PeerId> + use<> {
        (0..self.slots.len() as u32).map(PeerId)
    }

    /// Every peer, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (PeerId, &PeerSlot)> {
        (0u32..).map(PeerId).zip(&self.slots)
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }
}

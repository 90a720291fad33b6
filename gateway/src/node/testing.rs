//! Fixtures for tests, fuzz targets, benches and the simulation (`gateway/tests/sim`): sites whose
//! keys come from a small number, their node configurations (plain or hybrid peers), and IP
//! packets. Every key here is predictable: never use them for traffic that must stay secret.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keymix::Secret;
use keymix::mldsa::SigningKey;
use qkd_link::SaeId;

use super::{KmeId, Node, NodeConfig, NodePeer, PeerSpec, Randomness};
use crate::classes::PeerEgress;
use crate::classes::rules::ClassRules;
use crate::config_hybrid::{HybridPeerSpec, QkdSource};
use crate::hybrid::{QkdPolicy, Require, Role};
use crate::proto::handshake::StaticKeys;
use crate::proto::tai64n::WallClock;

/// Unix time of every fixture clock's start (2025-06-15).
pub const UNIX_AT_START: Duration = Duration::from_secs(1_750_000_000);

/// A site: seed `n` gives its keys, underlay address `192.0.2.n:51820`, tunnel network
/// `10.0.n.0/24` and SAE ID `SAE_n`. Above 255 (a hub's many spokes, `gateway/benches/hub.rs`),
/// `n = 256 × hi + lo` is at `198.18.hi.lo:51820` (RFC 2544's benchmarking range) with tunnel
/// network `10.hi.lo.0/24`; sites up to 255 keep the keys and addresses they always had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Site(pub u16);

impl Site {
    /// The 32 bytes both keys derive from: `n` repeated for `n` ≤ 255; above, the second byte
    /// `lo ^ hi` tells the high byte apart (never equal to a small site's seed).
    fn seed(self, xor: u8) -> [u8; 32] {
        let [lo, hi] = self.0.to_le_bytes();
        let mut seed = [lo ^ xor; 32];
        seed[1] ^= hi;
        seed
    }

    /// The X25519 private key.
    pub fn private_key(self) -> Secret<32> {
        Secret::new(self.seed(0))
    }

    /// The X25519 public key.
    pub fn public_key(self) -> [u8; 32] {
        *StaticKeys::new(self.private_key()).public()
    }

    /// The ML-DSA-65 site key.
    pub fn signing_key(self) -> Arc<SigningKey> {
        Arc::new(SigningKey::from_seed(Secret::new(self.seed(0x5a))))
    }

    /// The underlay address.
    pub fn addr(self) -> SocketAddr {
        let [lo, hi] = self.0.to_le_bytes();
        let ip = if hi == 0 {
            [192, 0, 2, lo]
        } else {
            [198, 18, hi, lo]
        };
        SocketAddr::from((ip, 51820))
    }

    /// The tunnel network's address `host` (`10.hi.lo.host`; `10.0.n.host` up to 255).
    pub fn ip(self, host: u8) -> [u8; 4] {
        let [lo, hi] = self.0.to_le_bytes();
        [10, hi, lo, host]
    }

    /// The SAE ID of the site's gateway at its KME.
    pub fn sae(self) -> SaeId {
        SaeId::new(format!("SAE_{}", self.0)).unwrap_or_else(|_| unreachable!("a valid SAE ID"))
    }

    /// Its WireGuard settings as a peer of another site.
    pub fn as_peer(self, psk: Option<Secret<32>>) -> PeerSpec {
        PeerSpec {
            public_key: self.public_key(),
            psk,
            endpoint: Some(self.addr()),
            allowed_ips: vec![(IpAddr::from(self.ip(0)), 24)],
            persistent_keepalive: None,
        }
    }
}

/// How a site sees one hybrid peer.
#[derive(Debug, Clone, Copy)]
pub struct HybridLink {
    /// The peer site.
    pub peer: Site,
    /// This side's role.
    pub role: Role,
    /// `qkd.policy` at this side.
    pub policy: QkdPolicy,
    /// `rekey_after_seconds`.
    pub rekey_after: Duration,
}

/// A node configuration of `me` with plain peers `peers` (each with a static PSK if `psk`).
pub fn plain(me: Site, peers: &[Site], psk: bool) -> NodeConfig {
    let peers = peers.iter().map(|p| NodePeer {
        name: format!("site-{}", p.0),
        wg: p.as_peer(psk.then(|| Secret::new([9; 32]))),
        hybrid: None,
        egress: PeerEgress::default(),
    });
    config(me, peers.collect())
}

/// The configuration of `me` in the pair of sites 1 (master) and 2 (slave), both with `policy`
/// and `rekey_after`.
pub fn hybrid_pair(me: Site, policy: QkdPolicy, rekey_after: Duration) -> NodeConfig {
    let (peer, role) = if me == Site(1) {
        (Site(2), Role::Master)
    } else {
        (Site(1), Role::Slave)
    };
    let link = HybridLink {
        peer,
        role,
        policy,
        rekey_after,
    };
    hybrid(me, &[link])
}

/// `config` with every QKD peer given two sources (docs/protocol.md §6.3): the same peer SAE
/// through this site's KME `east` (the first) and `west` (the second), with `require`.
pub fn with_two_sources(mut config: NodeConfig, require: Require) -> NodeConfig {
    for h in config.peers.iter_mut().filter_map(|p| p.hybrid.as_mut()) {
        let Some(first) = h.sources.first().cloned() else {
            continue;
        };
        h.sources = [
            (KmeId::FIRST, "east"),
            (KmeId::new(1).unwrap_or(KmeId::FIRST), "west"),
        ]
        .map(|(kme, name)| QkdSource {
            kme,
            kme_name: name.to_owned(),
            peer_sae_id: first.peer_sae_id.clone(),
        })
        .into();
        h.require = require;
    }
    config
}

/// A node configuration of `me` with hybrid peers.
pub fn hybrid(me: Site, links: &[HybridLink]) -> NodeConfig {
    let peers = links.iter().map(|l| NodePeer {
        name: format!("site-{}", l.peer.0),
        wg: l.peer.as_peer(None),
        hybrid: Some(HybridPeerSpec {
            verifying_key: l.peer.signing_key().verifying_key().clone(),
            role: l.role,
            policy: l.policy,
            sources: (l.policy != QkdPolicy::Off)
                .then(|| QkdSource {
                    kme: KmeId::FIRST,
                    kme_name: "kme".to_owned(),
                    peer_sae_id: l.peer.sae(),
                })
                .into_iter()
                .collect(),
            require: Require::All,
            rekey_after: l.rekey_after,
        }),
        egress: PeerEgress::default(),
    });
    let mut cfg = config(me, peers.collect());
    cfg.signing_key = Some(me.signing_key());
    cfg
}

fn config(me: Site, peers: Vec<NodePeer>) -> NodeConfig {
    NodeConfig {
        private_key: me.private_key(),
        mtu: 1420,
        load_threshold: 1000,
        peers,
        signing_key: None,
        danger_rekey_after: None,
        danger_reject_after: None,
        classes: Arc::new(ClassRules::builtin()),
    }
}

/// The fixture wall clock: `start` is [`UNIX_AT_START`].
pub fn clock(start: Instant) -> WallClock {
    WallClock::new(start, UNIX_AT_START)
}

/// A node from `config` at `now`, with seeded randomness and a wall clock on which `start` is
/// [`UNIX_AT_START`] (a restarted node keeps the world's clock, as a real host does).
pub fn node_since(start: Instant, now: Instant, config: NodeConfig, seed: u64) -> Node {
    Node::new(now, clock(start), config, Randomness::Seeded(seed))
        .unwrap_or_else(|e| unreachable!("fixture configurations are valid: {e}"))
}

/// A node from `config` started at `now`, with seeded randomness and the fixture clock.
pub fn node(now: Instant, config: NodeConfig, seed: u64) -> Node {
    node_since(now, now, config, seed)
}

/// An IPv4 UDP packet from `src` to `dst` carrying `payload`.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let len = 28 + payload.len();
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p[20..22].copy_from_slice(&4000u16.to_be_bytes());
    p[22..24].copy_from_slice(&4000u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

/// Plain peers `a` and `b` (seeds 7 and 8) with a session confirmed both ways at `now`: a's first
/// packet was staged, then the initiation, the response and that packet went across.
pub fn connected(now: Instant, a: Site, b: Site) -> (Node, Node) {
    connected_with(now, a, b, PeerEgress::default())
}

/// [`connected`], with `egress` for `a`'s peer `b` (an egress rate, outer marking).
pub fn connected_with(now: Instant, a: Site, b: Site, egress: PeerEgress) -> (Node, Node) {
    let mut config_a = plain(a, &[b], true);
    config_a.peers[0].egress = egress;
    let (mut x, mut y) = (node(now, config_a, 7), node(now, plain(b, &[a], true), 8));
    let mut buf = vec![0u8; 2048];
    let first = ipv4(a.ip(1), b.ip(1), b"hello");
    buf[16..16 + first.len()].copy_from_slice(&first);
    let staged = x.handle_tun_packet(now, &mut buf, first.len());
    assert!(staged.is_err(), "the first packet waits for a handshake");
    for _ in 0..3 {
        if !(relay(now, &mut x, &mut y, a.addr()) | relay(now, &mut y, &mut x, b.addr())) {
            break;
        }
    }
    for n in [&x, &y] {
        let peer = n.wg_peer(super::PeerId::new(0));
        assert!(peer.is_some_and(|p| p.has_usable_session(now)), "connected");
    }
    (x, y)
}

/// Hands everything `from_node` has to send to `to_node`; whether there was anything.
fn relay(now: Instant, from_node: &mut Node, to_node: &mut Node, from: SocketAddr) -> bool {
    let mut buf = vec![0u8; 2048];
    let mut moved = false;
    while let Some(t) = from_node.poll_transmit(now, &mut buf) {
        to_node.handle_datagram(now, from, &mut buf[..t.len]);
        moved = true;
    }
    moved
}

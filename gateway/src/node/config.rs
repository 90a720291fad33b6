//! What a [`super::Node`] is made from: values only, with every key already loaded and checked
//! (the daemon builds it from the YAML file, `crate::config`; tests and the simulation build it
//! by hand). No file path, socket address or thread setting is in here.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use keymix::mldsa::SigningKey;

use crate::config_hybrid::HybridPeerSpec;
use crate::proto::constants::KEY_LEN;
use crate::proto::secret::{Psk, Secret};

/// A site's node: its static key, its peers and its protocol settings.
#[derive(Debug)]
pub struct NodeConfig {
    /// The site's X25519 private key.
    pub private_key: Secret<KEY_LEN>,
    /// Tunnel MTU (transport padding, §5.4.6).
    pub mtu: usize,
    /// Handshake messages per second above which cookies are required (§5.3).
    pub load_threshold: u32,
    /// The peers, in configuration order.
    pub peers: Vec<NodePeer>,
    /// The site's ML-DSA-65 key, needed by hybrid peers.
    pub signing_key: Option<Arc<SigningKey>>,
    /// Off-spec: rekey plain peers after this instead of REKEY_AFTER_TIME (tests only).
    pub danger_rekey_after: Option<Duration>,
    /// Off-spec: refuse sessions after this instead of REJECT_AFTER_TIME (tests only).
    pub danger_reject_after: Option<Duration>,
    /// Which traffic class each inner packet falls into (the `classes:` rules, then the
    /// built-in ones), for peers with an egress rate.
    pub classes: Arc<crate::classes::rules::ClassRules>,
}

/// One configured peer.
#[derive(Debug)]
pub struct NodePeer {
    /// Its name in logs, status, metrics and the audit log.
    pub name: String,
    /// Its WireGuard settings.
    pub wg: PeerSpec,
    /// Its hybrid key agreement settings, with `hybrid: on`.
    pub hybrid: Option<HybridPeerSpec>,
    /// Its egress rate and outer marking (`egress_rate`, `outer_dscp`).
    pub egress: crate::classes::PeerEgress,
}

/// A peer's WireGuard settings.
#[derive(Debug)]
pub struct PeerSpec {
    /// Its static public key.
    pub public_key: [u8; KEY_LEN],
    /// A static PSK: the PSK of every handshake of a plain peer; mixed into the genesis chain key
    /// of a hybrid peer (its handshakes use the epochs' PSKs).
    pub psk: Option<Psk>,
    /// Where to reach it, if known.
    pub endpoint: Option<SocketAddr>,
    /// Its allowed IPs.
    pub allowed_ips: Vec<(IpAddr, u8)>,
    /// Persistent keepalive interval.
    pub persistent_keepalive: Option<Duration>,
}

impl Clone for PeerSpec {
    /// Copies the PSK explicitly (`Secret` has no implicit `Clone`).
    fn clone(&self) -> Self {
        Self {
            public_key: self.public_key,
            psk: self.psk.as_ref().map(Psk::duplicate),
            endpoint: self.endpoint,
            allowed_ips: self.allowed_ips.clone(),
            persistent_keepalive: self.persistent_keepalive,
        }
    }
}

/// Where a node draws its randomness: the operating system in production, a seed in tests and
/// the simulation (each consumer gets its own stream derived from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Randomness {
    /// `getrandom`.
    Os,
    /// Deterministic streams from this seed. Never for traffic that must stay secret.
    Seeded(u64),
}

impl Randomness {
    /// A fresh stream: the OS source, or the next seeded stream.
    pub(crate) fn stream(&mut self) -> Box<dyn keymix::Entropy + Send> {
        match self {
            Self::Os => Box::new(keymix::OsEntropy),
            Self::Seeded(seed) => {
                let stream = keymix::SeededEntropy::new(*seed);
                *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
                Box::new(stream)
            }
        }
    }
}

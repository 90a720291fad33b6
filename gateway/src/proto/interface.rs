//! One WireGuard interface, sans-IO (whitepaper §2 cryptokey routing, §5.3 DoS mitigation, §5.4
//! message dispatch): our static key, the peers, the index map, the routing table, cookies and
//! load detection. The daemon feeds it datagrams from UDP and packets from TUN with `now`, and
//! carries out what it returns; every drop is counted by [`DropReason`].
//!
//! Buffers: a datagram is decrypted in place, so the returned tunnel packet is a range of the
//! caller's buffer; a tunnel packet is sealed in place, so its buffer needs 16 bytes of headroom
//! before the packet and 16 + 15 bytes of tailroom (header, padding, tag).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use zerocopy::FromBytes;

use super::allowed_ips::AllowedIps;
use super::constants::{COOKIE_REPLY_LEN, KEY_LEN, TRANSPORT_HEADER_LEN};
use super::cookie::{CookieChecker, verify_mac1};
use super::crypto::Entropy;
use super::handshake::{PskId, RemoteKeys, StaticKeys, open_initiation};
use super::index::IndexMap;
use super::messages::{CookieReply, MacProtected, Message};
use super::peer::{Ctx, Event, Peer, PeerStats, Transmit};
pub use super::peer_io::Incoming;
use super::ratelimit::{LoadMonitor, RateLimiter};
use super::secret::{Psk, Secret};
use super::tai64n::WallClock;
use crate::error::{DropReason, Error};

/// Packets held per peer while its handshake runs (wireguard-go stages 128; memory stays bounded).
pub const MAX_STAGED: usize = 32;

/// A peer as configured.
#[derive(Debug)]
pub struct PeerSpec {
    /// Its static public key.
    pub public_key: [u8; KEY_LEN],
    /// A static PSK (plain WireGuard); the hybrid layer replaces it per handshake.
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

/// One interface: static key, peers and their routing.
pub struct Interface<R> {
    keys: StaticKeys,
    clock: WallClock,
    rng: R,
    peers: Vec<Peer>,
    staged: Vec<VecDeque<Vec<u8>>>,
    by_key: HashMap<[u8; KEY_LEN], usize>,
    indices: IndexMap,
    routes: AllowedIps<usize>,
    checker: CookieChecker,
    load: LoadMonitor,
    limiter: RateLimiter,
    mtu: usize,
    cursor: usize,
    drops: [u64; DropReason::ALL.len()],
}

impl<R> std::fmt::Debug for Interface<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interface")
            .field("public", self.keys.public())
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl<R: Entropy> Interface<R> {
    /// An interface with private key `private`, tunnel MTU `mtu` and a load threshold in handshake
    /// messages per second ([`super::ratelimit::DEFAULT_LOAD_THRESHOLD`] in production).
    pub fn new(private: Secret<KEY_LEN>, clock: WallClock, rng: R, mtu: usize, load: u32) -> Self {
        let keys = StaticKeys::new(private);
        let checker = CookieChecker::new(keys.cookie_key);
        Self {
            keys,
            clock,
            rng,
            peers: Vec::new(),
            staged: Vec::new(),
            by_key: HashMap::new(),
            indices: IndexMap::new(),
            routes: AllowedIps::new(),
            checker,
            load: LoadMonitor::new(load),
            limiter: RateLimiter::default(),
            mtu,
            cursor: 0,
            drops: [0; DropReason::ALL.len()],
        }
    }

    /// Our public key.
    pub fn public_key(&self) -> &[u8; KEY_LEN] {
        self.keys.public()
    }

    /// Adds a peer; returns its id (position).
    pub fn add_peer(&mut self, spec: PeerSpec) -> Result<usize, Error> {
        if self.by_key.contains_key(&spec.public_key) || spec.public_key == *self.keys.public() {
            return Err(Error::DuplicatePeer);
        }
        let remote = RemoteKeys::new(&self.keys, spec.public_key)
            .map_err(|_| Error::InvalidKey("low-order public key"))?;
        let id = self.peers.len();
        let mut peer = Peer::new(remote, self.mtu, spec.persistent_keepalive);
        if let Some(psk) = spec.psk {
            peer.set_psk(psk, 0);
        }
        if let Some(e) = spec.endpoint {
            peer.set_endpoint(e);
        }
        for (ip, len) in spec.allowed_ips {
            self.routes.insert(ip, len, id);
        }
        self.by_key.insert(spec.public_key, id);
        self.peers.push(peer);
        self.staged.push(VecDeque::new());
        Ok(id)
    }

    /// Replaces the PSK of peer `id` for its next handshakes (the hybrid key agreement's hook).
    pub fn set_psk(&mut self, id: usize, psk: Psk, psk_id: PskId) -> Option<()> {
        self.peers.get_mut(id).map(|p| p.set_psk(psk, psk_id))
    }

    /// Peer `id`'s state, for status and the hybrid layer.
    pub fn peer(&self, id: usize) -> Option<&Peer> {
        self.peers.get(id)
    }

    /// Peer `id`, mutable (endpoint changes, handshake requests).
    pub fn peer_mut(&mut self, id: usize) -> Option<&mut Peer> {
        self.peers.get_mut(id)
    }

    /// The id of the peer with static key `public`.
    pub fn peer_by_key(&self, public: &[u8; KEY_LEN]) -> Option<usize> {
        self.by_key.get(public).copied()
    }

    /// Adds `prefixes` to peer `id`'s allowed IPs, first removing its old ones if `replace`.
    pub fn set_allowed_ips(&mut self, id: usize, replace: bool, prefixes: &[(IpAddr, u8)]) {
        if id >= self.peers.len() {
            return;
        }
        if replace {
            self.routes.remove_value(id);
        }
        for (ip, len) in prefixes {
            self.routes.insert(*ip, *len, id);
        }
    }

    /// Number of peers.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Peer `id`'s counters.
    pub fn stats(&self, id: usize) -> Option<PeerStats> {
        self.peers.get(id).map(Peer::stats)
    }

    /// The routing table (routes to install, status).
    pub fn routes(&self) -> &AllowedIps<usize> {
        &self.routes
    }

    /// Drops so far, indexed by [`DropReason::index`].
    pub fn drops(&self) -> &[u64; DropReason::ALL.len()] {
        &self.drops
    }

    fn count<T>(&mut self, r: Result<T, DropReason>) -> Result<T, DropReason> {
        if let Err(e) = &r {
            self.drops[e.index()] += 1;
        }
        r
    }

    /// Handles one datagram from `from`; `out` (≥ 148 bytes) receives a reply if one is needed.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &mut [u8],
        out: &mut [u8],
    ) -> Result<Incoming, DropReason> {
        let r = self.dispatch(now, from, buf, out);
        self.count(r)
    }

    fn dispatch(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &mut [u8],
        out: &mut [u8],
    ) -> Result<Incoming, DropReason> {
        let (receiver, counter) = match Message::parse(buf)? {
            Message::Initiation(m) => return self.on_initiation(now, from, m, out),
            Message::Response(m) => {
                if let Some(reply) = self.screen(now, from, m, out)? {
                    return Ok(reply);
                }
                let id = self.owner(m.receiver.get())?;
                let mut idx = self.indices.for_peer(id);
                let mut cx = Ctx {
                    keys: &self.keys,
                    clock: &self.clock,
                    rng: &mut self.rng,
                    indices: &mut idx,
                };
                self.peers[id].handle_response(now, m, from, &mut cx)?;
                return Ok(Incoming::Done);
            }
            Message::CookieReply(m) => {
                let id = self.owner(m.receiver.get())?;
                self.peers[id].handle_cookie_reply(now, m)?;
                return Ok(Incoming::Done);
            }
            Message::Transport(h, _) => (h.receiver.get(), h.counter.get()),
        };
        let id = self.owner(receiver)?;
        let mut idx = self.indices.for_peer(id);
        let sealed = &mut buf[TRANSPORT_HEADER_LEN..];
        let n = self.peers[id].decapsulate(now, receiver, counter, sealed, from, &mut idx)?;
        if n == 0 {
            return Ok(Incoming::Done);
        }
        let start = TRANSPORT_HEADER_LEN;
        let info = super::ip::parse(&buf[start..start + n]).ok_or(DropReason::Malformed)?;
        if self.routes.lookup(info.src) != Some(id) {
            return Err(DropReason::SourceNotAllowed);
        }
        Ok(Incoming::Tunnel {
            range: start..start + info.len,
            peer: id,
        })
    }

    fn owner(&self, index: u32) -> Result<usize, DropReason> {
        self.indices.lookup(index).ok_or(DropReason::UnknownIndex)
    }

    /// mac1 always; under load also mac2 (else a cookie reply) and the per-source rate limit.
    fn screen<M: MacProtected>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        m: &M,
        out: &mut [u8],
    ) -> Result<Option<Incoming>, DropReason> {
        verify_mac1(m, &self.keys.mac1_key)?;
        if !self.load.record(now) {
            return Ok(None);
        }
        if self
            .checker
            .verify_mac2(now, &mut self.rng, m, from)
            .is_err()
        {
            let slot = out
                .get_mut(..COOKIE_REPLY_LEN)
                .ok_or(DropReason::BufferTooSmall)?;
            let reply =
                CookieReply::mut_from_bytes(slot).map_err(|_| DropReason::BufferTooSmall)?;
            self.checker.reply(now, &mut self.rng, m, from, reply);
            // The message itself was not processed: count it, then answer with the cookie.
            self.drops[DropReason::CookieRequired.index()] += 1;
            return Ok(Some(Incoming::Reply(Transmit {
                len: COOKIE_REPLY_LEN,
                to: from,
            })));
        }
        if !self.limiter.allow(now, from.ip()) {
            return Err(DropReason::RateLimited);
        }
        Ok(None)
    }

    fn on_initiation(
        &mut self,
        now: Instant,
        from: SocketAddr,
        m: &super::messages::Initiation,
        out: &mut [u8],
    ) -> Result<Incoming, DropReason> {
        if let Some(reply) = self.screen(now, from, m, out)? {
            return Ok(reply);
        }
        let opened = open_initiation(&self.keys, m)?;
        let id = *self
            .by_key
            .get(opened.initiator_static())
            .ok_or(DropReason::UnknownPeer)?;
        let received = opened.finish(self.peers[id].remote_keys())?;
        let mut idx = self.indices.for_peer(id);
        let mut cx = Ctx {
            keys: &self.keys,
            clock: &self.clock,
            rng: &mut self.rng,
            indices: &mut idx,
        };
        let t = self.peers[id].handle_initiation(now, received, from, &mut cx, out)?;
        Ok(Incoming::Reply(t))
    }

    /// Seals the IP packet at `buf[16..16 + len]` for the peer its destination routes to. Without a
    /// session the packet is staged (bounded) and a handshake requested: `Err(NoSession)`.
    pub fn handle_tunnel_packet(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        len: usize,
    ) -> Result<(usize, Transmit), DropReason> {
        let r = self.route_and_seal(now, buf, len);
        self.count(r)
    }

    fn route_and_seal(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        len: usize,
    ) -> Result<(usize, Transmit), DropReason> {
        let start = TRANSPORT_HEADER_LEN;
        let packet = buf
            .get(start..start + len)
            .ok_or(DropReason::BufferTooSmall)?;
        let info = super::ip::parse(packet).ok_or(DropReason::Malformed)?;
        let id = self.routes.lookup(info.dst).ok_or(DropReason::NoRoute)?;
        match self.peers[id].encapsulate(now, buf, len) {
            Err(DropReason::NoSession) => {
                let q = &mut self.staged[id];
                if q.len() == MAX_STAGED {
                    q.pop_front();
                }
                q.push_back(buf[start..start + len].to_vec());
                Err(DropReason::NoSession)
            }
            r => r.map(|t| (id, t)),
        }
    }

    /// Writes the next due datagram of any peer (staged packets once a session exists, handshake
    /// initiations, keepalives) into `out` (≥ MTU + 32 bytes); call until `None`.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<(usize, Transmit)> {
        for step in 0..self.peers.len() {
            let id = (self.cursor + step) % self.peers.len();
            if let Some(t) = self.poll_peer(now, id, out) {
                self.cursor = id;
                return Some((id, t));
            }
        }
        None
    }

    fn poll_peer(&mut self, now: Instant, id: usize, out: &mut [u8]) -> Option<Transmit> {
        if self.peers[id].current_psk_id().is_some() {
            while let Some(p) = self.staged[id].pop_front() {
                let start = TRANSPORT_HEADER_LEN;
                let Some(slot) = out.get_mut(start..start + p.len()) else {
                    continue;
                };
                slot.copy_from_slice(&p);
                if let Ok(t) = self.peers[id].encapsulate(now, out, p.len()) {
                    return Some(t);
                }
            }
        }
        let mut idx = self.indices.for_peer(id);
        let mut cx = Ctx {
            keys: &self.keys,
            clock: &self.clock,
            rng: &mut self.rng,
            indices: &mut idx,
        };
        self.peers[id].poll_transmit(now, &mut cx, out)
    }

    /// The next lifecycle event of any peer. `HandshakeGaveUp` also drops that peer's staged
    /// packets.
    pub fn poll_event(&mut self) -> Option<(usize, Event)> {
        for id in 0..self.peers.len() {
            if let Some(e) = self.peers[id].poll_event() {
                if e == Event::HandshakeGaveUp {
                    self.staged[id].clear();
                }
                return Some((id, e));
            }
        }
        None
    }

    /// The earliest deadline of any peer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.peers.iter().filter_map(Peer::next_deadline).min()
    }
}

#[cfg(test)]
#[path = "interface_tests.rs"]
mod tests;

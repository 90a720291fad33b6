//! A deterministic simulation of whole qgw nodes (in the spirit of quinn-proto's `Pair` and
//! FoundationDB's simulator): real [`Node`]s on a simulated clock, a simulated network that can
//! lose, delay, reorder, duplicate, truncate, record and replay datagrams from any source
//! address ([`net`]), simulated KMEs with ETSI 014 semantics ([`kme`]), and invariants checked
//! after every step ([`check`]). Everything random comes from one seed; a failing run prints its
//! seed and replays exactly.
//!
//! Time jumps from one event (a datagram arriving, a KME answering, a packet entering a tunnel) or
//! node deadline to the next; nothing sleeps.
#![allow(dead_code, clippy::unwrap_used)]

pub mod check;
pub mod dice;
pub mod kme;
pub mod net;
pub mod schedule;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gateway::node::testing::{Site, UNIX_AT_START, node_since};
use gateway::node::{KmeReply, Node, NodeConfig, PeerId, Received};

use self::check::{Checker, Counters, MARKER};
use self::dice::Dice;
use self::kme::Kmes;
use self::net::{Datagram, Network};

/// Steps one run may take at most (a runaway schedule fails instead of hanging the suite).
const MAX_STEPS: u64 = 2_000_000;

/// Something due at an instant.
#[derive(Debug)]
enum Due {
    /// A datagram arrives at `to`.
    Datagram(Datagram),
    /// A KME answers node `node` (its `incarnation`: a restarted node never gets the old one's).
    Kme {
        node: usize,
        incarnation: u32,
        reply: KmeReply,
    },
    /// A packet enters node `node`'s tunnel.
    Tun { node: usize, packet: Vec<u8> },
}

/// One simulated gateway.
#[derive(Debug)]
pub struct SimNode {
    /// Its site (keys, addresses).
    pub site: Site,
    /// Where its datagrams come from (changes when it roams).
    pub addr: SocketAddr,
    /// The node.
    pub node: Node,
    /// Restarts so far.
    pub incarnation: u32,
    /// Crashed and not restarted yet.
    pub down: bool,
    /// Packets it wrote to its tunnel.
    pub tun: Vec<Vec<u8>>,
    /// When each of them was written.
    pub tun_at: Vec<Instant>,
    /// Real (not simulated) time spent in its `handle_*` calls and in the `poll_transmit` calls
    /// that drain it after one of them, as the daemon's loop makes them (not `poll_timeout`, not
    /// the checks, not the world's drains of every node after another node's step): its own
    /// cost, for `gateway/benches/hub.rs`.
    pub busy: Duration,
    /// Of [`SimNode::busy`], the part in `poll_transmit`.
    pub busy_transmit: Duration,
}

/// The simulated world.
#[derive(Debug)]
pub struct World {
    /// The seed everything comes from.
    pub seed: u64,
    /// Simulated now.
    pub now: Instant,
    /// The dice.
    pub dice: Dice,
    /// The gateways.
    pub nodes: Vec<SimNode>,
    /// The underlay.
    pub net: Network,
    /// The KMEs.
    pub kmes: Kmes,
    /// The invariants.
    pub check: Checker,
    queue: BTreeMap<(Instant, u64), Due>,
    seq: u64,
    /// Steps taken.
    pub steps: u64,
    /// Every node event, with when and which node, oldest first.
    pub events: Vec<(Instant, usize, gateway::node::NodeEvent)>,
    /// Print every node event (`QGW_SIM_TRACE=1`, for replaying a failing seed).
    trace: bool,
    start: Instant,
}

impl World {
    /// An empty world for `seed`.
    pub fn new(seed: u64) -> Self {
        let now = Instant::now();
        Self {
            trace: std::env::var_os("QGW_SIM_TRACE").is_some(),
            start: now,
            seed,
            now,
            dice: Dice::new(seed),
            nodes: Vec::new(),
            net: Network::new(),
            kmes: Kmes::new(),
            check: Checker::new(seed),
            queue: BTreeMap::new(),
            seq: 0,
            steps: 0,
            events: Vec::new(),
        }
    }

    /// Adds the gateway of `site`, configured by `config`; returns its index.
    pub fn add(&mut self, site: Site, config: NodeConfig) -> usize {
        let node = node_since(
            self.start,
            self.now,
            config,
            self.seed ^ u64::from(site.0) << 32,
        );
        self.nodes.push(SimNode {
            site,
            addr: site.addr(),
            node,
            incarnation: 0,
            down: false,
            tun: Vec::new(),
            tun_at: Vec::new(),
            busy: Duration::ZERO,
            busy_transmit: Duration::ZERO,
        });
        self.nodes.len() - 1
    }

    /// Sets the wall clock of `site` to the true time plus `offset_seconds` (negative: behind),
    /// as NTP or an operator would, now.
    pub fn set_clock(&mut self, site: Site, offset_seconds: i64) {
        let truth = UNIX_AT_START + (self.now - self.start);
        let offset = Duration::from_secs(offset_seconds.unsigned_abs());
        let unix = if offset_seconds < 0 {
            truth - offset
        } else {
            truth + offset
        };
        let i = self.index(site);
        self.nodes[i].node.set_wall_clock(self.now, unix);
    }

    /// Gateway `i` crashes (`kill -9`): its state is gone and nothing reaches it until
    /// [`World::restart`].
    pub fn crash(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.incarnation += 1;
        n.down = true;
    }

    /// Restarts gateway `i` with `config`: all its state is gone (a crash and a fresh start).
    pub fn restart(&mut self, i: usize, config: NodeConfig) {
        let n = &mut self.nodes[i];
        n.incarnation += 1;
        n.down = false;
        let seed = self.seed ^ (u64::from(n.site.0) << 32) ^ u64::from(n.incarnation);
        n.node = node_since(self.start, self.now, config, seed);
    }

    /// The index of the gateway of `site`.
    pub fn index(&self, site: Site) -> usize {
        self.nodes.iter().position(|n| n.site == site).unwrap()
    }

    /// The gateway of `site`.
    pub fn node(&self, site: Site) -> &Node {
        &self.nodes[self.index(site)].node
    }

    /// Sends an IP packet from `from`'s tunnel to `to`'s network host 1, now; its payload is the
    /// plaintext marker and `tag`.
    pub fn tun_send(&mut self, from: Site, to: Site, tag: u64) {
        let mut payload = MARKER.to_vec();
        payload.extend_from_slice(&tag.to_be_bytes());
        let packet = gateway::node::testing::ipv4(from.ip(1), to.ip(1), &payload);
        let node = self.index(from);
        self.schedule(self.now, Due::Tun { node, packet });
    }

    /// Hands `packet` to `site`'s node as if read from its tunnel, now.
    pub fn tun_packet(&mut self, site: Site, packet: Vec<u8>) {
        let node = self.index(site);
        self.schedule(self.now, Due::Tun { node, packet });
    }

    /// Packets `site` wrote to its tunnel.
    pub fn delivered(&self, site: Site) -> &[Vec<u8>] {
        &self.nodes[self.index(site)].tun
    }

    /// Puts `bytes` on the wire now, from any address (an attacker's replay or forgery).
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        self.net.stats.injected += 1;
        self.schedule(self.now, Due::Datagram(Datagram { from, to, bytes }));
    }

    /// Tags of the marked packets `site` received through its tunnel.
    pub fn received_tags(&self, site: Site) -> Vec<u64> {
        self.received(site)
            .into_iter()
            .map(|(tag, _)| tag)
            .collect()
    }

    /// The marked packets `site` received through its tunnel: tag and when.
    pub fn received(&self, site: Site) -> Vec<(u64, Instant)> {
        let n = &self.nodes[self.index(site)];
        (n.tun.iter().zip(&n.tun_at))
            .filter_map(|(p, at)| {
                let i = p.windows(MARKER.len()).position(|w| w == MARKER)? + MARKER.len();
                Some((u64::from_be_bytes(p.get(i..i + 8)?.try_into().ok()?), *at))
            })
            .collect()
    }

    fn schedule(&mut self, at: Instant, due: Due) {
        self.seq += 1;
        self.queue.insert((at, self.seq), due);
    }

    /// Runs until `limit` (events and deadlines up to it), then sets the clock to it.
    pub fn run_until(&mut self, limit: Instant) {
        while self.step(limit) {}
        self.now = self.now.max(limit);
    }

    /// Runs for `d`.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// One step: the earliest event or deadline, if it is not after `limit`.
    fn step(&mut self, limit: Instant) -> bool {
        self.steps += 1;
        assert!(self.steps < MAX_STEPS, "seed {}: runaway run", self.seed);
        let event = self.queue.first_key_value().map(|(k, _)| k.0);
        let timer = self
            .nodes
            .iter()
            .filter(|n| !n.down)
            .filter_map(|n| n.node.poll_timeout())
            .min();
        let Some(at) = [event, timer].into_iter().flatten().min() else {
            return false;
        };
        if at > limit {
            return false;
        }
        self.now = self.now.max(at);
        let mut touched = None;
        if event == Some(at)
            && let Some((_, due)) = self.queue.pop_first()
        {
            touched = self.handle(due);
        }
        // As the daemon's loop: after any input, whatever timer is due runs, then the outputs.
        for i in 0..self.nodes.len() {
            if self.nodes[i].down {
                continue;
            }
            let n = &mut self.nodes[i];
            let mut charge = touched == Some(i);
            if n.node.poll_timeout().is_some_and(|t| t <= self.now) {
                let t = Instant::now();
                n.node.handle_timeout(self.now);
                n.busy += t.elapsed();
                charge = true;
            }
            self.drain(i, charge);
            self.check.settled(i, &self.nodes[i].node, self.now);
        }
        true
    }

    /// Hands `due` to its node; which node that was, if one took it.
    fn handle(&mut self, due: Due) -> Option<usize> {
        let now = self.now;
        match due {
            Due::Datagram(mut d) => {
                let i = self.nodes.iter().position(|n| n.addr == d.to && !n.down)?;
                let n = &mut self.nodes[i];
                let before = Counters::of(&n.node);
                let t = Instant::now();
                let outcome = n.node.handle_datagram(now, d.from, &mut d.bytes);
                n.busy += t.elapsed();
                let after = Counters::of(&n.node);
                self.check.received(i, &before, &outcome, &after);
                if let Received::Packet { packet, .. } = outcome {
                    self.nodes[i].tun.push(d.bytes[packet].to_vec());
                    self.nodes[i].tun_at.push(now);
                }
                Some(i)
            }
            Due::Kme {
                node,
                incarnation,
                reply,
            } => {
                let n = &mut self.nodes[node];
                if n.incarnation != incarnation {
                    return None;
                }
                let t = Instant::now();
                n.node.handle_kme_reply(now, reply);
                n.busy += t.elapsed();
                Some(node)
            }
            Due::Tun { node, packet } if !self.nodes[node].down => {
                self.tunnel(node, &packet);
                Some(node)
            }
            Due::Tun { .. } => None,
        }
    }

    fn tunnel(&mut self, i: usize, packet: &[u8]) {
        let mut buf = vec![0u8; packet.len() + 64];
        buf[16..16 + packet.len()].copy_from_slice(packet);
        let n = &mut self.nodes[i];
        let before = Counters::of(&n.node);
        let t = Instant::now();
        let sealed = n.node.handle_tun_packet(self.now, &mut buf, packet.len());
        n.busy += t.elapsed();
        let after = Counters::of(&n.node);
        self.check.tunnel(i, &before, sealed.map(|_| ()), &after);
        if let Ok(Some(t)) = sealed {
            self.send(i, t.to, buf[..t.len].to_vec());
        }
    }

    fn send(&mut self, i: usize, to: SocketAddr, bytes: Vec<u8>) {
        self.check.sent(i, &bytes, 1420);
        let from = self.nodes[i].addr;
        let copies = self
            .net
            .send(self.now, &mut self.dice, Datagram { from, to, bytes });
        for (at, d) in copies {
            self.schedule(at, Due::Datagram(d));
        }
    }

    /// Carries out everything node `i` handed back; `charge`: it had input in this step, so the
    /// daemon would poll it too (its [`SimNode::busy`]).
    fn drain(&mut self, i: usize, charge: bool) {
        let mut buf = vec![0u8; 2048];
        loop {
            let n = &mut self.nodes[i];
            let started = Instant::now();
            let next = n.node.poll_transmit(self.now, &mut buf);
            if charge {
                let spent = started.elapsed();
                n.busy += spent;
                n.busy_transmit += spent;
            }
            let Some(t) = next else { break };
            self.send(i, t.to, buf[..t.len].to_vec());
        }
        while let Some(request) = self.nodes[i].node.poll_kme_request() {
            let site = self.nodes[i].site;
            let (at, reply) = self.kmes.answer(self.now, &mut self.dice, site, &request);
            let incarnation = self.nodes[i].incarnation;
            self.schedule(
                at,
                Due::Kme {
                    node: i,
                    incarnation,
                    reply,
                },
            );
        }
        let events: Vec<_> = std::iter::from_fn(|| self.nodes[i].node.poll_event()).collect();
        for e in events {
            if self.trace {
                eprintln!("{:>10.3?} node {i}: {e:?}", self.now - self.start);
            }
            let nodes = &self.nodes;
            let peer_node = |peer: PeerId| peer_node(nodes, i, peer);
            self.check.event(i, &nodes[i].node, &e, peer_node);
            self.events.push((self.now, i, e));
        }
    }

    /// With `QGW_SIM_TRACE` set: every node's drops and peers, for a failing seed.
    pub fn dump(&self) {
        if !self.trace {
            return;
        }
        for n in &self.nodes {
            let st = n.node.snapshot(self.now);
            let drops: Vec<_> = st.drops.iter().filter(|(_, v)| **v > 0).collect();
            eprintln!("{:?} drops {drops:?}", n.site);
            for p in &st.peers {
                eprintln!(
                    "  {} usable {} hs {} hybrid drops {:?} endpoint {:?}",
                    p.name, p.session_usable, p.handshakes, p.hybrid_drops, p.endpoint
                );
            }
        }
    }

    /// Node `i`'s peer `peer` as (its node, node `i` as that node's peer).
    pub fn peer_node(&self, i: usize, peer: PeerId) -> Option<(usize, PeerId)> {
        peer_node(&self.nodes, i, peer)
    }
}

/// Node `i`'s peer `peer` as (its node, node `i` as that node's peer).
fn peer_node(nodes: &[SimNode], i: usize, peer: PeerId) -> Option<(usize, PeerId)> {
    let key = *nodes[i].node.wg_peer(peer)?.public_key();
    let j = nodes.iter().position(|n| n.site.public_key() == key)?;
    let me = nodes[i].site.public_key();
    let back = (nodes[j].node.peer_ids())
        .find(|id| (nodes[j].node.wg_peer(*id)).is_some_and(|p| *p.public_key() == me))?;
    Some((j, back))
}

//! Random schedules for the property tests: a topology (a hybrid pair, a plain pair, or a hub
//! with two hybrid spokes), a chaos phase (loss, duplication, reordering, truncation, KME outages,
//! slow KMEs, wrong keys, replayed and forged datagrams from any address, a crash and restart),
//! then a healing phase with a clean network. Invariants are checked after every step by the
//! world; at the end the schedule checks liveness: rotation made progress under mere loss, and
//! once healed, the tunnel carries traffic both ways under a fresh epoch.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gateway::hybrid::{QkdPolicy, Role};
use gateway::node::NodeConfig;
use gateway::node::testing::{HybridLink, Site, hybrid, plain};

use super::World;
use super::dice::Dice;
use super::net::Faults;

/// Time between two scheduling decisions (traffic, attacks, outages).
const TICK: Duration = Duration::from_millis(250);
/// The heal phase: long enough for an exchange stuck on a wrong key to give up
/// (REKEY_ATTEMPT_TIME, 90 s) and for a new epoch and traffic after it.
const HEAL: Duration = Duration::from_secs(150);

/// How the sites are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// Two sites, plain WireGuard with a static PSK.
    PlainPair,
    /// Two sites, hybrid, the first is master.
    HybridPair(QkdPolicy),
    /// A hub (site 1) and two spokes, hybrid; the hub is master of the first spoke and slave of
    /// the second.
    Hub(QkdPolicy),
}

/// One random schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Its seed.
    pub seed: u64,
    /// The sites.
    pub topology: Topology,
    /// `rekey_after_seconds` of hybrid pairs.
    pub rekey_after: Duration,
    /// How long the chaos lasts.
    pub chaos: Duration,
    /// The network during the chaos.
    pub faults: Faults,
    /// Replayed datagrams per second during the chaos.
    pub replays_per_second: f64,
    /// Whether replays come from a spoofed source address instead of the recorded one.
    pub spoof_replays: bool,
    /// Forged datagrams per second during the chaos.
    pub forgeries_per_second: f64,
    /// A site whose KME is down for part of the chaos: (site, from, for).
    pub kme_outage: Option<(u16, Duration, Duration)>,
    /// KME answer latency during the chaos.
    pub kme_latency: (Duration, Duration),
    /// Probability a slave's KME serves wrong bytes during the chaos.
    pub wrong_keys: f64,
    /// A site that crashes and restarts during the chaos: (site, at).
    pub restart: Option<(u16, Duration)>,
}

impl Schedule {
    /// The schedule of `seed`.
    pub fn random(seed: u64) -> Self {
        let mut d = Dice::new(seed.rotate_left(17));
        let policy = *d.pick(&[QkdPolicy::Required, QkdPolicy::Preferred, QkdPolicy::Off]);
        let topology = *d.pick(&[
            Topology::HybridPair(policy),
            Topology::HybridPair(policy),
            Topology::Hub(policy),
            Topology::PlainPair,
        ]);
        let ms = Duration::from_millis;
        let hostile = d.chance(0.4);
        let delay_hi = ms(1 + d.below(300));
        Self {
            seed,
            topology,
            rekey_after: Duration::from_secs(5 + d.below(26)),
            chaos: Duration::from_secs(30 + d.below(91)),
            faults: Faults {
                loss: d.float(0.0, 0.35),
                duplicate: d.float(0.0, 0.2),
                truncate: if d.chance(0.3) {
                    d.float(0.0, 0.05)
                } else {
                    0.0
                },
                delay: (ms(1), delay_hi),
            },
            replays_per_second: if hostile { d.float(0.0, 20.0) } else { 0.0 },
            spoof_replays: hostile && d.chance(0.5),
            forgeries_per_second: if hostile { d.float(0.0, 20.0) } else { 0.0 },
            kme_outage: d.chance(0.3).then(|| {
                let site = 1 + d.below(2) as u16;
                (
                    site,
                    Duration::from_secs(d.below(30)),
                    Duration::from_secs(1 + d.below(40)),
                )
            }),
            kme_latency: (ms(1), ms(1 + d.below(2500))),
            wrong_keys: if d.chance(0.15) {
                d.float(0.0, 0.5)
            } else {
                0.0
            },
            restart: d
                .chance(0.25)
                .then(|| (1 + d.below(2) as u16, Duration::from_secs(d.below(30)))),
        }
    }

    /// Whether the chaos only loses, duplicates, reorders and truncates (no attacker, no KME
    /// trouble, no crash): then rotation must progress during it, not only after.
    fn mere_faults(&self) -> bool {
        self.replays_per_second == 0.0
            && self.forgeries_per_second == 0.0
            && self.kme_outage.is_none()
            && self.wrong_keys == 0.0
            && self.restart.is_none()
            && self.faults.truncate == 0.0
    }

    /// The node configuration of `site`.
    fn config(&self, site: u16) -> NodeConfig {
        let link = |peer: u16, role| HybridLink {
            peer: Site(peer),
            role,
            policy: match self.topology {
                Topology::HybridPair(p) | Topology::Hub(p) => p,
                Topology::PlainPair => QkdPolicy::Off,
            },
            rekey_after: self.rekey_after,
        };
        match (self.topology, site) {
            (Topology::PlainPair, 1) => plain(Site(1), &[Site(2)], true),
            (Topology::PlainPair, _) => plain(Site(2), &[Site(1)], true),
            (Topology::HybridPair(_), 1) => hybrid(Site(1), &[link(2, Role::Master)]),
            (Topology::HybridPair(_), _) => hybrid(Site(2), &[link(1, Role::Slave)]),
            (Topology::Hub(_), 1) => {
                hybrid(Site(1), &[link(2, Role::Master), link(3, Role::Slave)])
            }
            (Topology::Hub(_), 2) => hybrid(Site(2), &[link(1, Role::Slave)]),
            (Topology::Hub(_), _) => hybrid(Site(3), &[link(1, Role::Master)]),
        }
    }

    /// The tunnels: pairs of sites.
    fn pairs(&self) -> Vec<(Site, Site)> {
        match self.topology {
            Topology::Hub(_) => vec![(Site(1), Site(2)), (Site(1), Site(3))],
            _ => vec![(Site(1), Site(2))],
        }
    }

    /// Runs the schedule, checking every invariant at every step and liveness at the end.
    pub fn run(&self) -> World {
        let mut w = World::new(self.seed);
        let sites: Vec<u16> = match self.topology {
            Topology::Hub(_) => vec![1, 2, 3],
            _ => vec![1, 2],
        };
        for s in &sites {
            w.add(Site(*s), self.config(*s));
        }
        let start = w.now;
        w.net.faults = self.faults;
        w.kmes.latency = self.kme_latency;
        w.kmes.wrong_keys = self.wrong_keys;
        let mut sent = Vec::new();
        let mut restarted = false;
        while w.now < start + self.chaos {
            let t = w.now - start;
            if let Some((site, from, dur)) = self.kme_outage {
                let down = t >= from && t < from + dur;
                let _ = if down {
                    w.kmes.down.insert(site)
                } else {
                    w.kmes.down.remove(&site)
                };
            }
            if let Some((site, at)) = self.restart
                && !restarted
                && t >= at
            {
                restarted = true;
                let i = w.index(Site(site));
                w.restart(i, self.config(site));
            }
            self.attack(&mut w);
            traffic(&mut w, &self.pairs(), &mut sent);
            w.run_for(TICK);
        }
        // Progress while the network still delivers most genuine datagrams: with at most 15 %
        // loss an exchange (4 + 4 fragments, retransmitted every 5 s) and its handshake complete
        // within seconds, so 90 s without an epoch at some side means rotation stalled.
        let chaos_epochs = self.epochs(&w);
        if self.mere_faults()
            && self.faults.loss <= 0.15
            && self.chaos >= Duration::from_secs(90)
            && self.topology != Topology::PlainPair
        {
            assert!(
                chaos_epochs.iter().all(|n| *n >= 1),
                "seed {}: rotation stalled under mere faults ({:?}): epochs {chaos_epochs:?}",
                self.seed,
                self.faults
            );
        }
        self.heal(&mut w, &mut sent);
        w
    }

    /// Replays and forgeries of this tick.
    fn attack(&self, w: &mut World) {
        let per_tick = |rate: f64| rate * TICK.as_secs_f64();
        let mut dice = w.dice.clone();
        if dice.chance(per_tick(self.replays_per_second))
            && let Some(d) = w.net.pick_recorded(&mut dice).cloned()
        {
            let from = if self.spoof_replays {
                spoofed(&mut dice)
            } else {
                d.from
            };
            w.inject(from, d.to, d.bytes);
        }
        // A forgery: a recorded datagram with one byte changed before its last 16 (a tag or MAC,
        // or WireGuard's mac2, which a responder not under load ignores), so it can never
        // authenticate; from a spoofed address.
        if dice.chance(per_tick(self.forgeries_per_second))
            && let Some(d) = w.net.pick_recorded(&mut dice).cloned()
            && d.bytes.len() > 16
        {
            let mut bytes = d.bytes;
            let i = dice.below(bytes.len() as u64 - 16) as usize;
            bytes[i] ^= 1 + dice.below(255) as u8;
            w.inject(spoofed(&mut dice), d.to, bytes);
        }
        w.dice = dice;
    }

    /// Epochs installed so far at each side of each hybrid pair (plain pairs count 0).
    fn epochs(&self, w: &World) -> Vec<usize> {
        let mut out = Vec::new();
        for (a, b) in self.pairs() {
            let i = w.index(a);
            for peer in w.nodes[i].node.peer_ids() {
                if let Some((j, back)) = w.peer_node(i, peer)
                    && w.nodes[j].site == b
                {
                    out.push(w.check.epochs(i, peer).len());
                    out.push(w.check.epochs(j, back).len());
                }
            }
        }
        out
    }

    /// The heal phase: a clean network and healthy KMEs; a fresh epoch at every hybrid pair and
    /// traffic both ways must follow.
    fn heal(&self, w: &mut World, sent: &mut Vec<(u64, Instant)>) {
        w.net.faults = Faults::CLEAN;
        w.kmes.down.clear();
        w.kmes.wrong_keys = 0.0;
        w.kmes.latency = (Duration::from_millis(1), Duration::from_millis(1));
        let before = self.epochs(w);
        let start = w.now;
        while w.now < start + HEAL {
            traffic(w, &self.pairs(), sent);
            w.run_for(TICK);
        }
        w.run_for(Duration::from_secs(1));
        let after = self.epochs(w);
        if self.topology != Topology::PlainPair {
            let fresh = before.iter().zip(&after).all(|(b, a)| a > b);
            if !fresh {
                w.dump();
            }
            assert!(
                fresh,
                "seed {}: no fresh epoch after healing: {before:?} -> {after:?}",
                self.seed
            );
        }
        // Every packet of the last 20 s of healing arrived.
        let checked_from = start + HEAL - Duration::from_secs(20);
        for (a, b) in self.pairs() {
            for (from, to) in [(a, b), (b, a)] {
                let got: std::collections::BTreeSet<u64> =
                    w.received_tags(to).into_iter().collect();
                let late = sent
                    .iter()
                    .filter(|(t, at)| *at >= checked_from && sender(*t) == (from, to));
                let missing: Vec<u64> =
                    late.map(|(t, _)| *t).filter(|t| !got.contains(t)).collect();
                if !missing.is_empty() {
                    w.dump();
                }
                assert!(
                    missing.is_empty(),
                    "seed {}: after healing, {} packets {from:?} -> {to:?} were lost: {missing:?}",
                    self.seed,
                    missing.len()
                );
            }
        }
    }
}

/// One packet each way over every tunnel, recorded in `sent` with its tag (which encodes its
/// direction) and when it was sent.
fn traffic(w: &mut World, pairs: &[(Site, Site)], sent: &mut Vec<(u64, Instant)>) {
    for (a, b) in pairs {
        for (from, to) in [(*a, *b), (*b, *a)] {
            let t = encode(sent.len() as u64, from, to);
            w.tun_send(from, to, t);
            sent.push((t, w.now));
        }
    }
}

fn encode(n: u64, from: Site, to: Site) -> u64 {
    (n << 16) | (u64::from(from.0) << 8) | u64::from(to.0)
}

fn sender(tag: u64) -> (Site, Site) {
    (
        Site(u16::from((tag >> 8) as u8)),
        Site(u16::from(tag as u8)),
    )
}

/// A source address no site has.
fn spoofed(dice: &mut Dice) -> SocketAddr {
    SocketAddr::from((
        [203, 0, 113, dice.below(250) as u8 + 1],
        1024 + dice.below(60000) as u16,
    ))
}

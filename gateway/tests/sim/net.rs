//! The simulated underlay: every datagram a node sends goes through [`Faults`] (loss, duplication,
//! truncation, a random delay per copy, which reorders) and is recorded, so an attacker can replay
//! any of it later from any source address.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::dice::Dice;

/// What the network does to genuine datagrams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Probability a datagram is lost.
    pub loss: f64,
    /// Probability a datagram is delivered twice (each copy with its own delay).
    pub duplicate: f64,
    /// Probability a datagram is cut short at a random length.
    pub truncate: f64,
    /// One-way delay of each copy, uniform in this range (a wide range reorders).
    pub delay: (Duration, Duration),
}

impl Faults {
    /// A clean 1 ms link.
    pub const CLEAN: Self = Self {
        loss: 0.0,
        duplicate: 0.0,
        truncate: 0.0,
        delay: (Duration::from_millis(1), Duration::from_millis(1)),
    };
}

/// A datagram on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Source address (a node's, or whatever an attacker chose).
    pub from: SocketAddr,
    /// Destination address.
    pub to: SocketAddr,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Counters of what the network did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams nodes sent.
    pub sent: u64,
    /// Copies lost.
    pub lost: u64,
    /// Extra copies.
    pub duplicated: u64,
    /// Copies cut short.
    pub truncated: u64,
    /// Datagrams an attacker injected (replays and forgeries).
    pub injected: u64,
}

/// The network.
#[derive(Debug)]
pub struct Network {
    /// Faults applied to genuine datagrams from now on.
    pub faults: Faults,
    /// Every genuine datagram sent, oldest first, with when it was sent.
    pub recorded: Vec<(Instant, Datagram)>,
    /// What happened so far.
    pub stats: NetStats,
}

impl Network {
    /// A clean network.
    pub fn new() -> Self {
        Self {
            faults: Faults::CLEAN,
            recorded: Vec::new(),
            stats: NetStats::default(),
        }
    }

    /// A node sent `d` at `now`: records it and returns the copies that arrive, with when.
    pub fn send(&mut self, now: Instant, dice: &mut Dice, d: Datagram) -> Vec<(Instant, Datagram)> {
        self.stats.sent += 1;
        self.recorded.push((now, d.clone()));
        let f = self.faults;
        let copies = if dice.chance(f.duplicate) { 2 } else { 1 };
        self.stats.duplicated += copies - 1;
        let mut out = Vec::new();
        for _ in 0..copies {
            if dice.chance(f.loss) {
                self.stats.lost += 1;
                continue;
            }
            let mut copy = d.clone();
            if dice.chance(f.truncate) && !copy.bytes.is_empty() {
                self.stats.truncated += 1;
                let keep = dice.below(copy.bytes.len() as u64) as usize;
                copy.bytes.truncate(keep);
            }
            out.push((now + dice.duration(f.delay.0, f.delay.1), copy));
        }
        out
    }

    /// A recorded datagram chosen at random (replays), if any was sent.
    pub fn pick_recorded(&self, dice: &mut Dice) -> Option<&Datagram> {
        let n = self.recorded.len() as u64;
        (n > 0).then(|| &self.recorded[dice.below(n) as usize].1)
    }
}

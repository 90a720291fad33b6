//! The impairment decisions of `impair_relay`, without sockets or clocks: a seeded RNG, the
//! per-datagram verdict (drop, or release at a time on an injected clock, possibly held back so
//! that later datagrams overtake it) and the bounded schedule of datagrams waiting for release.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// SplitMix64: small, seeded, the same sequence everywhere.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, pct: f64) -> bool {
        pct > 0.0 && self.unit() * 100.0 < pct
    }
}

/// One direction's impairment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Profile {
    pub loss_pct: f64,
    pub delay: Duration,
    pub jitter: Duration,
    pub reorder_pct: f64,
    pub reorder_hold: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Drop,
    /// Release at this time (on the relay's clock); `held`: held back to be overtaken.
    Deliver {
        at: Duration,
        held: bool,
    },
}

/// The decisions of one direction: a profile and its own RNG.
#[derive(Debug)]
pub struct Impairment {
    profile: Profile,
    rng: Rng,
}

impl Impairment {
    pub fn new(profile: Profile, seed: u64) -> Self {
        let rng = Rng(seed);
        Self { profile, rng }
    }

    pub fn decide(&mut self, now: Duration) -> Verdict {
        let p = self.profile;
        if self.rng.chance(p.loss_pct) {
            return Verdict::Drop;
        }
        let mut at = now + p.delay + p.jitter.mul_f64(self.rng.unit());
        let held = self.rng.chance(p.reorder_pct);
        if held {
            at += p.reorder_hold;
        }
        Verdict::Deliver { at, held }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dir {
    AtoB = 0,
    BtoA = 1,
}

/// A queued datagram: (release time, arrival number, direction, bytes); ordered by the first two.
type Queued = (Duration, u64, Dir, Vec<u8>);

/// Datagrams waiting for their release time, earliest first (ties in arrival order), at most
/// `cap` at once.
#[derive(Debug)]
pub struct Schedule {
    heap: BinaryHeap<Reverse<Queued>>,
    cap: usize,
    seq: u64,
}

impl Schedule {
    pub fn new(cap: usize) -> Self {
        Self {
            heap: BinaryHeap::new(),
            cap,
            seq: 0,
        }
    }
    /// Queues `bytes`; false (and dropped) when full.
    pub fn push(&mut self, at: Duration, dir: Dir, bytes: Vec<u8>) -> bool {
        if self.heap.len() >= self.cap {
            return false;
        }
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, dir, bytes)));
        true
    }
    pub fn next_due(&self) -> Option<Duration> {
        self.heap.peek().map(|Reverse(e)| e.0)
    }
    pub fn pop_due(&mut self, now: Duration) -> Option<(Dir, Vec<u8>)> {
        if self.next_due()? > now {
            return None;
        }
        self.heap
            .pop()
            .map(|Reverse((_, _, dir, bytes))| (dir, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// An impairment of loss %, delay ms, jitter ms, reorder %, hold ms with RNG seed `seed`.
    fn imp(p: (f64, u32, u32, f64, u32), seed: u64) -> Impairment {
        let (loss_pct, delay, jitter, reorder_pct, hold) = p;
        let (delay, jitter, reorder_hold) = (delay * MS, jitter * MS, hold * MS);
        let profile = Profile {
            loss_pct,
            delay,
            jitter,
            reorder_pct,
            reorder_hold,
        };
        Impairment::new(profile, seed)
    }

    fn deliver(at: Duration, held: bool) -> Verdict {
        Verdict::Deliver { at, held }
    }

    #[test]
    fn the_same_seed_gives_the_same_decisions() {
        let run = |seed| {
            let mut i = imp((10.0, 0, 5, 25.0, 15), seed);
            (0..1000u32).map(|k| i.decide(k * MS)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn loss_and_reorder_rates_match_the_profile() {
        let mut i = imp((2.0, 0, 0, 25.0, 15), 42);
        let (mut lost, mut held) = (0, 0);
        for k in 0..100_000u32 {
            match i.decide(k * MS) {
                Verdict::Drop => lost += 1,
                v if v == deliver((k + 15) * MS, true) => held += 1,
                v => assert_eq!(v, deliver(k * MS, false)),
            }
        }
        assert!((1_800..2_200).contains(&lost), "lost {lost}");
        assert!((23_500..25_500).contains(&held), "held {held}");
    }

    #[test]
    fn a_clean_profile_never_drops_or_delays() {
        let mut i = imp((0.0, 0, 0, 0.0, 15), 1);
        for k in 0..10_000u32 {
            assert_eq!(i.decide(k * MS), deliver(k * MS, false));
        }
    }

    #[test]
    fn delay_and_jitter_stay_in_their_bounds() {
        let mut i = imp((0.0, 20, 4, 0.0, 0), 3);
        for k in 0..10_000u32 {
            let v = i.decide(k * MS);
            let ok = |at| at >= (k + 20) * MS && at < (k + 24) * MS;
            assert!(
                matches!(v, Verdict::Deliver { at, held: false } if ok(at)),
                "{v:?}"
            );
        }
    }

    #[test]
    fn schedule_releases_in_time_order_and_held_datagrams_are_overtaken() {
        let mut s = Schedule::new(8);
        assert!(s.push(35 * MS, Dir::AtoB, vec![1])); // held back 15 ms
        assert!(s.push(21 * MS, Dir::AtoB, vec![2]));
        assert!(s.push(21 * MS, Dir::BtoA, vec![3])); // same time: arrival order
        assert_eq!(s.pop_due(20 * MS), None);
        assert_eq!(s.pop_due(21 * MS), Some((Dir::AtoB, vec![2])));
        assert_eq!(s.pop_due(21 * MS), Some((Dir::BtoA, vec![3])));
        assert_eq!(s.next_due(), Some(35 * MS));
        assert_eq!(s.pop_due(34 * MS), None);
        assert_eq!(s.pop_due(40 * MS), Some((Dir::AtoB, vec![1])));
        assert_eq!(s.pop_due(40 * MS), None);
    }

    #[test]
    fn schedule_is_bounded() {
        let mut s = Schedule::new(2);
        assert!(s.push(MS, Dir::AtoB, vec![]));
        assert!(s.push(MS, Dir::AtoB, vec![]));
        assert!(!s.push(MS, Dir::AtoB, vec![]));
        assert!(s.pop_due(MS).is_some());
        assert!(s.push(MS, Dir::AtoB, vec![]));
    }
}

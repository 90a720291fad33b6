//! One peer's egress scheduler (docs/gateway-decisions.md, "Traffic classes"): sans-IO, the
//! clock passed in. Inner packets are queued by class and flow, and released no faster than
//! the peer's WAN rate, so the queue forms here, where the inner flows are still visible,
//! rather than in a WAN router that sees only one UDP flow.
//!
//! - **Rate**: a token bucket ([`super::bucket`]) on outer wire bytes — the inner length padded
//!   to 16 as WireGuard pads (never past the MTU) plus the per-packet overhead (WireGuard header
//!   and tag 32, UDP 8, IP 20 or 40). Its burst is 2 ms of the rate, at least two full-size
//!   packets: the daemon polls with millisecond resolution, so 2 ms keeps the link full between
//!   polls while staying below a typical WAN shaper's bucket (a burst above it would be queued
//!   or dropped there, out of our control).
//! - **Telemonitoring, strict priority with a cap**: served first while its own bucket (25 % of
//!   the rate, burst 10 ms of that) allows; beyond the cap its packets join the weighted round
//!   with weight 1, so a flood marked EF gets about 25 % + 1/8 of the rest and cannot starve
//!   the others, while real vital-sign traffic (far below 25 %) never waits behind them.
//! - **Weighted round**: deficit round robin (quantum = weight × MTU) between telemedicine 4,
//!   imaging 2, default 1 (and capped telemonitoring 1); an idle class is skipped, so its share
//!   goes to the others (work-conserving).
//! - **Inside each class**: FQ-CoDel's flow queues ([`super::flows`], 16 queues for
//!   telemonitoring, 64 for the others) with CoDel on each ([`super::codel`], target 5 ms,
//!   interval 100 ms); an ECN-capable packet CoDel condemns is marked CE ([`super::ecn`]).
//! - **Bounded**: 4 MiB and 4096 packets per peer (about 170 ms at 200 Mbit/s: more than CoDel
//!   lets stand; a worst case of 4096 MTU slots, about 6 MB), each bulk class at most 3 MiB
//!   and telemonitoring 512 KiB. On overflow the head of the longest flow queue of the fullest
//!   class is dropped (fq_codel's fat-flow drop), telemonitoring only when no other class
//!   holds a packet; the arriving packet is then queued.

use std::hash::Hash;
use std::time::{Duration, Instant};

use super::ClassId;
use super::bucket::TokenBucket;
use super::delay::RecentDelay;
use super::ecn::mark_ce;
use super::flows::{ClassFlows, Fate, Queued, flow_index};
use super::stats::ClassStats;
use super::store::PacketStore;

/// The peer's queue limit in bytes.
pub const PEER_BYTES: usize = 4 << 20;
/// The peer's queue limit in packets.
pub const PEER_PACKETS: usize = 4096;
/// Each class's byte limit, by [`ClassId::index`].
pub const CLASS_BYTES: [usize; 4] = [512 << 10, 3 << 20, 3 << 20, 3 << 20];
/// Flow queues per class.
pub const FLOW_QUEUES: [usize; 4] = [16, 64, 64, 64];
/// DRR weights of the weighted round (telemonitoring only beyond its cap).
pub const WEIGHTS: [usize; 4] = [1, 4, 2, 1];
/// Telemonitoring's strict-priority cap, as a fraction of the rate (1/4).
pub const CAP_DIVISOR: u64 = 4;
/// The main bucket's burst, in time at the rate.
pub const BURST: Duration = Duration::from_millis(2);
/// The telemonitoring cap bucket's burst, in time at the cap rate.
pub const CAP_BURST: Duration = Duration::from_millis(10);

/// The order the weighted round visits the classes in.
const ROUND: [ClassId; 4] = [
    ClassId::Telemedicine,
    ClassId::Imaging,
    ClassId::Default,
    ClassId::Telemonitoring,
];

/// One peer's egress settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressConfig {
    /// The WAN rate, in bits per second of outer (wire) bytes.
    pub rate_bps: u64,
    /// The tunnel MTU: the largest inner packet.
    pub mtu: usize,
    /// Outer bytes added per packet: WireGuard header and tag 32 + UDP 8 + IP 20 (IPv6: 40).
    pub overhead: usize,
    /// Key for hashing flows into queues (per peer, random).
    pub seed: u64,
}

/// Why [`EgressScheduler::enqueue`] refused a packet (counted in its class's `drops_overflow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EgressDrop {
    /// A zero-length packet.
    #[error("empty packet")]
    Empty,
    /// A packet longer than the MTU.
    #[error("packet of {len} bytes exceeds the MTU of {mtu}")]
    Oversized {
        /// Its length.
        len: usize,
        /// The MTU.
        mtu: usize,
    },
}

/// A packet [`EgressScheduler::dequeue_into`] released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// Its length, at the start of the caller's buffer.
    pub len: usize,
    /// Its class.
    pub class: ClassId,
}

/// One peer's egress scheduler (see the module docs).
#[derive(Debug)]
pub struct EgressScheduler {
    config: EgressConfig,
    bucket: TokenBucket,
    cap: TokenBucket,
    classes: [ClassFlows; 4],
    deficits: [i64; 4],
    cursor: usize,
    store: PacketStore,
    stats: [ClassStats; 4],
    recent: [RecentDelay; 4],
    packets: usize,
    bytes: usize,
}

/// Bytes sent in `time` at `rate_bps`.
fn bytes_in(rate_bps: u64, time: Duration) -> usize {
    (u128::from(rate_bps) * time.as_nanos() / 8 / 1_000_000_000) as usize
}

impl EgressScheduler {
    /// An empty scheduler for one peer (an MTU of at least 1 is assumed).
    pub fn new(config: EgressConfig, now: Instant) -> Self {
        let config = EgressConfig {
            mtu: config.mtu.clamp(1, 65_535),
            ..config
        };
        let gate = config.mtu + config.overhead;
        let (burst, cap_burst) = Self::bursts(&config);
        Self {
            bucket: TokenBucket::new(config.rate_bps, burst, gate, now),
            cap: TokenBucket::new(config.rate_bps / CAP_DIVISOR, cap_burst, gate, now),
            classes: ClassId::ALL.map(|c| ClassFlows::new(FLOW_QUEUES[c.index()], config.mtu)),
            deficits: [0; 4],
            cursor: 0,
            store: PacketStore::new(config.mtu),
            stats: ClassId::ALL.map(ClassStats::new),
            recent: ClassId::ALL.map(|_| RecentDelay::new(now)),
            packets: 0,
            bytes: 0,
            config,
        }
    }

    /// The main and the cap bucket's bursts for `config`, in bytes.
    fn bursts(config: &EgressConfig) -> (usize, usize) {
        let floor = 2 * (config.mtu + config.overhead);
        (
            bytes_in(config.rate_bps, BURST).max(floor),
            bytes_in(config.rate_bps / CAP_DIVISOR, CAP_BURST).max(floor),
        )
    }

    /// The outer wire bytes of an inner packet of `len` bytes.
    pub fn wire_cost(&self, len: usize) -> usize {
        len.next_multiple_of(16).min(self.config.mtu) + self.config.overhead
    }

    /// Changes the rate (a configuration reload); what is queued stays.
    pub fn set_rate(&mut self, rate_bps: u64) {
        self.config.rate_bps = rate_bps;
        let (burst, cap_burst) = Self::bursts(&self.config);
        self.bucket.set_rate(rate_bps, burst);
        self.cap.set_rate(rate_bps / CAP_DIVISOR, cap_burst);
    }

    /// Queues inner packet `packet` of `class` and `flow` (any hashable flow identity, e.g. the
    /// packet's `FlowKey`); `Err` when it was refused instead (counted in the class's stats
    /// either way). To make room, packets already queued may be dropped (counted).
    pub fn enqueue<F: Hash + ?Sized>(
        &mut self,
        now: Instant,
        class: ClassId,
        flow: &F,
        packet: &[u8],
    ) -> Result<(), EgressDrop> {
        let c = class.index();
        let len = packet.len();
        let refused = match len {
            0 => Some(EgressDrop::Empty),
            _ if len > self.config.mtu => Some(EgressDrop::Oversized {
                len,
                mtu: self.config.mtu,
            }),
            _ => None,
        };
        if let Some(reason) = refused {
            self.stats[c].drops_overflow += 1;
            return Err(reason);
        }
        while self.classes[c].bytes() + len > CLASS_BYTES[c] && self.drop_fat(class) {}
        while (self.bytes + len > PEER_BYTES || self.packets >= PEER_PACKETS)
            && self.drop_fat(self.overflow_victim())
        {}
        let slot = self.store.put(packet);
        let q = flow_index(self.config.seed, flow, self.classes[c].queues());
        self.classes[c].push(
            q,
            Queued {
                slot,
                len: len as u32,
                enqueued: now,
            },
        );
        self.packets += 1;
        self.bytes += len;
        Ok(())
    }

    /// The class that loses a packet when the peer is full: the fullest by bytes, passing over
    /// telemonitoring while any other class holds a packet.
    fn overflow_victim(&self) -> ClassId {
        let bulk = ClassId::ALL[1..]
            .iter()
            .copied()
            .filter(|c| self.classes[c.index()].packets() > 0)
            .max_by_key(|c| self.classes[c.index()].bytes());
        bulk.unwrap_or(ClassId::Telemonitoring)
    }

    /// Drops the head of `class`'s longest flow queue; false when the class holds nothing.
    fn drop_fat(&mut self, class: ClassId) -> bool {
        let c = class.index();
        let Some(p) = self.classes[c].drop_from_fattest() else {
            return false;
        };
        self.store.free(p.slot);
        self.stats[c].drops_overflow += 1;
        self.packets -= 1;
        self.bytes -= p.len as usize;
        true
    }

    /// The next packet allowed to leave at `now`, copied into `out`; its length and class.
    /// Packets CoDel drops on the way are counted, not returned.
    ///
    /// # Panics
    /// If `out` is shorter than the MTU.
    pub fn dequeue_into(&mut self, now: Instant, out: &mut [u8]) -> Option<Released> {
        assert!(
            out.len() >= self.config.mtu,
            "dequeue_into: buffer shorter than the MTU"
        );
        if self.packets == 0 {
            return None;
        }
        self.bucket.refill(now);
        if !self.bucket.ready() {
            return None;
        }
        self.cap.refill(now);
        let tm = ClassId::Telemonitoring;
        if self.cap.ready()
            && let Some(p) = self.pop(now, tm)
        {
            self.cap.consume(self.wire_cost(p.len as usize));
            return Some(self.release(now, tm, p, out));
        }
        self.weighted_round(now, out)
    }

    /// The weighted round (DRR between classes, FQ-CoDel's deficit form: a class is served
    /// while its deficit is positive and then earns its quantum at the back of the round).
    fn weighted_round(&mut self, now: Instant, out: &mut [u8]) -> Option<Released> {
        while self.packets > 0 {
            let class = ROUND[self.cursor];
            let c = class.index();
            if self.classes[c].packets() == 0 {
                self.deficits[c] = 0;
                self.cursor = (self.cursor + 1) % ROUND.len();
                continue;
            }
            if self.deficits[c] <= 0 {
                self.deficits[c] += (WEIGHTS[c] * self.config.mtu) as i64;
                self.cursor = (self.cursor + 1) % ROUND.len();
                continue;
            }
            if let Some(p) = self.pop(now, class) {
                self.deficits[c] -= i64::from(p.len);
                return Some(self.release(now, class, p, out));
            }
        }
        None
    }

    /// The next packet of `class` through its flow queues and CoDel (condemned packets are
    /// marked or dropped and counted).
    fn pop(&mut self, now: Instant, class: ClassId) -> Option<Queued> {
        let c = class.index();
        let mtu = self.config.mtu;
        let (store, stats) = (&mut self.store, &mut self.stats[c]);
        let (packets, bytes) = (&mut self.packets, &mut self.bytes);
        self.classes[c].pop(now, mtu, |p, condemned| {
            *packets -= 1;
            *bytes -= p.len as usize;
            if !condemned {
                return Fate::Deliver;
            }
            if mark_ce(store.get_mut(p.slot, p.len as usize)) {
                stats.ecn_marked += 1;
                return Fate::Deliver;
            }
            store.free(p.slot);
            stats.drops_codel += 1;
            Fate::Dropped
        })
    }

    /// Copies `p` out, frees its slot, charges the bucket and counts it.
    fn release(&mut self, now: Instant, class: ClassId, p: Queued, out: &mut [u8]) -> Released {
        let len = p.len as usize;
        out[..len].copy_from_slice(self.store.get_mut(p.slot, len));
        self.store.free(p.slot);
        self.bucket.consume(self.wire_cost(len));
        let c = class.index();
        let stats = &mut self.stats[c];
        stats.packets += 1;
        stats.bytes += len as u64;
        let delay = now.saturating_duration_since(p.enqueued);
        self.recent[c].record(now, delay, stats);
        Released { len, class }
    }

    /// When [`EgressScheduler::dequeue_into`] next has something to release (`None`: nothing is
    /// queued; `now` or earlier: now).
    pub fn next_release(&self) -> Option<Instant> {
        (self.packets > 0).then(|| self.bucket.ready_at())
    }

    /// Each class's counters, in [`ClassId::ALL`] order.
    pub fn stats(&self, now: Instant) -> [ClassStats; 4] {
        ClassId::ALL.map(|class| {
            let c = class.index();
            let mut s = self.stats[c].clone();
            s.queued_packets = self.classes[c].packets() as u64;
            s.queued_bytes = self.classes[c].bytes() as u64;
            s.recent_delay_p99 = self.recent[c].p99(now);
            s
        })
    }

    /// Packet slots allocated so far (for tests: after warm-up this stops growing).
    pub fn slots_allocated(&self) -> usize {
        self.store.allocated()
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "scheduler_props.rs"]
mod props;

#[cfg(test)]
#[path = "scheduler_sim.rs"]
mod sim;

//! Flow fairness inside one class, as FQ-CoDel does it (RFC 8290 §4): inner flows are hashed,
//! keyed by a per-peer seed so an outsider cannot aim two flows at one queue, into a fixed
//! number of flow queues; the active queues are served by deficit round robin with a quantum
//! of one MTU, queues that just became active ("new flows", §4.2) before the others, so a flow
//! of a few small packets (a vital-sign message, a DNS query) does not wait behind a bulk
//! transfer of the same class. Each queue runs its own CoDel (RFC 8290 §4.1, [`super::codel`]).
//!
//! The queues hold only references to packets ([`Queued`]); the bytes live in the scheduler's
//! store, which also decides, for a packet CoDel condemns, whether it is marked or dropped.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use super::codel::Codel;

/// A packet waiting in a flow queue: where its bytes are and when it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// Its slot in the scheduler's packet store.
    pub slot: u32,
    /// Its length in bytes (inner packet).
    pub len: u32,
    /// When it was queued.
    pub enqueued: Instant,
}

/// What the scheduler did with a packet CoDel condemned or passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It leaves (possibly CE-marked).
    Deliver,
    /// It was dropped; take the next one.
    Dropped,
}

/// Which list an active flow queue is on (RFC 8290 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Inactive,
    New,
    Old,
}

#[derive(Debug)]
struct FlowQueue {
    packets: VecDeque<Queued>,
    bytes: usize,
    deficit: i64,
    codel: Codel,
    list: List,
}

/// The flow index of `flow` among `queues` queues, keyed by `seed` (SipHash from std, fed the
/// seed first).
pub fn flow_index<F: Hash + ?Sized>(seed: u64, flow: &F, queues: usize) -> usize {
    let mut h = DefaultHasher::new();
    seed.hash(&mut h);
    flow.hash(&mut h);
    (h.finish() % queues.max(1) as u64) as usize
}

/// One class's flow queues (see the module docs).
#[derive(Debug)]
pub struct ClassFlows {
    flows: Vec<FlowQueue>,
    new_flows: VecDeque<u16>,
    old_flows: VecDeque<u16>,
    quantum: i64,
    bytes: usize,
    packets: usize,
}

impl ClassFlows {
    /// `queues` flow queues (at most 65536) with a DRR quantum of `quantum` bytes (one MTU).
    pub fn new(queues: usize, quantum: usize) -> Self {
        let queues = queues.clamp(1, 1 << 16);
        Self {
            flows: (0..queues)
                .map(|_| FlowQueue {
                    packets: VecDeque::new(),
                    bytes: 0,
                    deficit: 0,
                    codel: Codel::default(),
                    list: List::Inactive,
                })
                .collect(),
            new_flows: VecDeque::with_capacity(queues),
            old_flows: VecDeque::with_capacity(queues),
            quantum: quantum.max(1) as i64,
            bytes: 0,
            packets: 0,
        }
    }

    /// The number of flow queues.
    pub fn queues(&self) -> usize {
        self.flows.len()
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Packets waiting.
    pub fn packets(&self) -> usize {
        self.packets
    }

    /// Queues `packet` on flow queue `flow` (an index below [`ClassFlows::queues`]); a queue
    /// that was idle joins the new flows with a fresh quantum (RFC 8290 §4.1).
    pub fn push(&mut self, flow: usize, packet: Queued) {
        let flow = flow % self.flows.len();
        let q = &mut self.flows[flow];
        q.packets.push_back(packet);
        q.bytes += packet.len as usize;
        self.bytes += packet.len as usize;
        self.packets += 1;
        if q.list == List::Inactive {
            q.list = List::New;
            q.deficit = self.quantum;
            self.new_flows.push_back(flow as u16);
        }
    }

    /// Removes the head of the longest flow queue (by bytes), the fat-flow drop of RFC 8290
    /// §4.1 on overflow; `None` when the class is empty.
    pub fn drop_from_fattest(&mut self) -> Option<Queued> {
        let q = self.flows.iter_mut().max_by_key(|q| q.bytes)?;
        let packet = q.packets.pop_front()?;
        q.bytes -= packet.len as usize;
        self.bytes -= packet.len as usize;
        self.packets -= 1;
        Some(packet)
    }

    /// The next packet by flow DRR (new flows first), each head passed through its queue's
    /// CoDel at `now`: `fate(packet, condemned)` says whether it leaves or was dropped (a
    /// condemned ECN-capable packet is marked and leaves). `None`: the class is empty.
    pub fn pop(
        &mut self,
        now: Instant,
        mtu: usize,
        mut fate: impl FnMut(Queued, bool) -> Fate,
    ) -> Option<Queued> {
        loop {
            let (from_new, index) = match self.new_flows.front() {
                Some(&i) => (true, i),
                None => (false, *self.old_flows.front()?),
            };
            let q = &mut self.flows[usize::from(index)];
            if q.deficit <= 0 {
                q.deficit += self.quantum;
                q.list = List::Old;
                self.pop_list(from_new);
                self.old_flows.push_back(index);
                continue;
            }
            let mut delivered = None;
            while let Some(packet) = q.packets.pop_front() {
                q.bytes -= packet.len as usize;
                self.bytes -= packet.len as usize;
                self.packets -= 1;
                let sojourn = now.saturating_duration_since(packet.enqueued);
                let condemned = q.codel.on_dequeue(now, sojourn, q.bytes, mtu);
                if fate(packet, condemned) == Fate::Deliver {
                    delivered = Some(packet);
                    break;
                }
            }
            match delivered {
                Some(packet) => {
                    q.deficit -= i64::from(packet.len);
                    return Some(packet);
                }
                None => {
                    // Empty: a new flow goes to the old list once (so it cannot stay "new" by
                    // emptying and refilling), an old one becomes inactive (RFC 8290 §4.2).
                    q.codel.on_empty();
                    let to_old = from_new && !self.old_flows.is_empty();
                    q.list = if to_old { List::Old } else { List::Inactive };
                    self.pop_list(from_new);
                    if to_old {
                        self.old_flows.push_back(index);
                    }
                }
            }
        }
    }

    fn pop_list(&mut self, from_new: bool) {
        if from_new {
            self.new_flows.pop_front();
        } else {
            self.old_flows.pop_front();
        }
    }

    /// The waiting time of the oldest head among the flow queues (for tests and status).
    pub fn oldest(&self, now: Instant) -> Option<Duration> {
        self.flows
            .iter()
            .filter_map(|q| q.packets.front())
            .map(|p| now.saturating_duration_since(p.enqueued))
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MTU: usize = 1420;

    fn packet(slot: u32, len: u32, at: Instant) -> Queued {
        Queued {
            slot,
            len,
            enqueued: at,
        }
    }

    fn pass(_: Queued, _: bool) -> Fate {
        Fate::Deliver
    }

    #[test]
    fn flow_index_is_keyed_by_the_seed_and_stable() {
        let key = ("10.0.0.1", 443u16);
        assert_eq!(flow_index(1, &key, 64), flow_index(1, &key, 64));
        let moved = (0..64u64).filter(|&s| flow_index(s, &key, 64) != flow_index(0, &key, 64));
        assert!(
            moved.count() > 32,
            "a different seed mostly picks a different queue"
        );
        assert!(flow_index(7, &key, 64) < 64);
    }

    #[test]
    fn a_one_packet_flow_is_not_stuck_behind_a_bulk_flow() {
        let t = Instant::now();
        let mut c = ClassFlows::new(64, MTU);
        for slot in 0..100 {
            c.push(1, packet(slot, 1400, t));
        }
        // The bulk flow has started sending, then a small flow arrives.
        assert_eq!(c.pop(t, MTU, pass).map(|p| p.slot), Some(0));
        c.push(2, packet(1000, 100, t));
        let order: Vec<u32> = (0..3)
            .filter_map(|_| c.pop(t, MTU, pass))
            .map(|p| p.slot)
            .collect();
        assert!(
            order[..2].contains(&1000),
            "the new flow goes within one quantum: {order:?}"
        );
    }

    #[test]
    fn backlogged_flows_share_bytes_equally() {
        let t = Instant::now();
        let mut c = ClassFlows::new(64, MTU);
        for slot in 0..400 {
            c.push(3, packet(slot, 1400, t)); // big packets
            c.push(4, packet(10_000 + slot, 200, t)); // small packets, 7x as many per byte
        }
        let mut bytes = [0usize; 2];
        for _ in 0..300 {
            let p = c.pop(t, MTU, pass).expect("backlogged");
            bytes[usize::from(p.slot >= 10_000)] += p.len as usize;
        }
        let ratio = bytes[0] as f64 / bytes[1] as f64;
        assert!((0.8..1.25).contains(&ratio), "byte shares {bytes:?}");
    }

    #[test]
    fn a_condemned_head_is_followed_by_the_next_and_counts_stay_right() {
        let t = Instant::now();
        let mut c = ClassFlows::new(4, MTU);
        for slot in 0..4 {
            c.push(0, packet(slot, 100, t));
        }
        let got = c.pop(t, MTU, |p, _| {
            if p.slot < 2 {
                Fate::Dropped
            } else {
                Fate::Deliver
            }
        });
        assert_eq!(got.map(|p| p.slot), Some(2));
        assert_eq!((c.packets(), c.bytes()), (1, 100));
        assert_eq!(c.pop(t, MTU, |_, _| Fate::Dropped), None);
        assert_eq!((c.packets(), c.bytes()), (0, 0));
        c.push(0, packet(9, 50, t));
        assert_eq!(
            c.pop(t, MTU, pass).map(|p| p.slot),
            Some(9),
            "an emptied queue comes back"
        );
    }

    #[test]
    fn the_fat_flow_loses_its_head() {
        let t = Instant::now();
        let mut c = ClassFlows::new(64, MTU);
        c.push(5, packet(1, 1000, t));
        for slot in 10..20 {
            c.push(6, packet(slot, 1000, t));
        }
        assert_eq!(c.drop_from_fattest().map(|p| p.slot), Some(10));
        assert_eq!((c.packets(), c.bytes()), (10, 10_000));
        assert_eq!(
            c.oldest(t + Duration::from_millis(3)),
            Some(Duration::from_millis(3))
        );
        assert_eq!(ClassFlows::new(4, MTU).drop_from_fattest(), None);
    }
}

//! The scheduler's invariants under arbitrary traffic (proptest): every packet handed in is
//! accounted for exactly once (released, dropped for a reason, refused or still queued), the
//! limits hold after every step, `next_release` is `None` exactly when nothing is queued, and
//! what is released is byte for byte a packet that was queued (or that packet marked CE).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::classes::ecn::testing::ipv4;

const MTU: usize = 1420;

#[derive(Debug, Clone)]
enum Op {
    /// Queue `n` packets: class, flow, length (0 and past the MTU included), ECN bits, `n`
    /// (bursts, so the limits are reached).
    Enqueue(usize, u8, usize, u8, u32),
    /// Release what is allowed after this many microseconds.
    Advance(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, 0..6u8, 0..MTU + 40, 0..4u8, 1..60u32)
            .prop_map(|(c, f, l, e, n)| Op::Enqueue(c, f, l, e, n)),
        1 => (0..20_000u32).prop_map(Op::Advance),
    ]
}

/// A packet whose bytes 20..24 carry `id` (a bare `id` pattern when shorter than the header).
fn packet(id: u32, len: usize, ecn: u8) -> Vec<u8> {
    let mut p = if len >= 24 {
        ipv4(ecn, len)
    } else {
        vec![0xee; len]
    };
    if len >= 24 {
        p[20..24].copy_from_slice(&id.to_be_bytes());
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_packet_is_accounted_for_and_the_limits_hold(
        rate in 1_000_000u64..100_000_000,
        ops in proptest::collection::vec(op(), 1..400),
    ) {
        let t0 = Instant::now();
        let config = EgressConfig { rate_bps: rate, mtu: MTU, overhead: 60, seed: 3 };
        let mut s = EgressScheduler::new(config, t0);
        let mut now = t0;
        let mut out = vec![0u8; MTU];
        let (mut accepted, mut refused) = ([0u64; 4], [0u64; 4]);
        let mut queued: HashMap<u32, Vec<u8>> = HashMap::new();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Enqueue(c, flow, len, ecn, n) => {
                    for k in 0..n {
                        let id = (step as u32) << 8 | k;
                        let p = packet(id, len, ecn);
                        match s.enqueue(now, ClassId::ALL[c], &flow, &p) {
                            Ok(()) => {
                                accepted[c] += 1;
                                if len >= 24 {
                                    queued.insert(id, p);
                                }
                            }
                            Err(_) => refused[c] += 1,
                        }
                    }
                }
                Op::Advance(us) => {
                    now += Duration::from_micros(u64::from(us));
                    while let Some(r) = s.dequeue_into(now, &mut out) {
                        let got = &out[..r.len];
                        if r.len >= 24 {
                            let id = u32::from_be_bytes([got[20], got[21], got[22], got[23]]);
                            let sent = queued.remove(&id).expect("released a queued packet");
                            let mut marked = sent.clone();
                            crate::classes::ecn::mark_ce(&mut marked);
                            prop_assert!(got == sent.as_slice() || got == marked.as_slice());
                        } else {
                            prop_assert!(got.iter().all(|&b| b == 0xee));
                        }
                    }
                }
            }
            let stats = s.stats(now);
            let mut total = (0u64, 0u64);
            for (c, st) in stats.iter().enumerate() {
                prop_assert_eq!(
                    accepted[c] + refused[c],
                    st.packets + st.drops_overflow + st.drops_codel + st.queued_packets,
                    "class {}", st.class
                );
                prop_assert!(st.queued_bytes as usize <= CLASS_BYTES[c]);
                total.0 += st.queued_packets;
                total.1 += st.queued_bytes;
            }
            prop_assert!(total.0 as usize <= PEER_PACKETS && total.1 as usize <= PEER_BYTES);
            prop_assert_eq!(s.next_release().is_none(), total.0 == 0);
        }
    }
}

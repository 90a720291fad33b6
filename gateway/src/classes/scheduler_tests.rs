//! The scheduler's properties, in simulated time: each test feeds packets, releases everything
//! the bucket allows, jumps the clock to the next release and checks order or byte shares.

use std::time::{Duration, Instant};

use super::*;
use crate::classes::ecn::testing::{ipv4, ipv4_checksum_ok};
use crate::classes::ecn::{Ecn, ecn_of};

const MTU: usize = 1420;
const OVERHEAD: usize = 60;
const MS: Duration = Duration::from_millis(1);
const TM: ClassId = ClassId::Telemonitoring;
const MED: ClassId = ClassId::Telemedicine;
const IMG: ClassId = ClassId::Imaging;
const DEF: ClassId = ClassId::Default;

fn sched(rate_bps: u64, t0: Instant) -> EgressScheduler {
    let config = EgressConfig {
        rate_bps,
        mtu: MTU,
        overhead: OVERHEAD,
        seed: 7,
    };
    EgressScheduler::new(config, t0)
}

/// Everything releasable at `now`, as (class, len, first payload byte after the header).
fn drain(s: &mut EgressScheduler, now: Instant) -> Vec<(ClassId, usize, u8)> {
    let mut out = vec![0u8; MTU];
    let mut got = Vec::new();
    while let Some(r) = s.dequeue_into(now, &mut out) {
        got.push((r.class, r.len, out[20]));
    }
    got
}

/// A packet of `len` bytes tagged `tag` (at byte 20) and ECN bits `ecn`.
fn pkt(len: usize, tag: u8, ecn: u8) -> Vec<u8> {
    let mut p = ipv4(ecn, len);
    p[20] = tag;
    p
}

/// Keeps each of `classes` backlogged (one flow each, `len`-byte packets) for `secs` simulated
/// seconds and returns the inner bytes released per class.
fn saturate(rate_bps: u64, classes: &[ClassId], len: usize, secs: u64) -> [u64; 4] {
    let t0 = Instant::now();
    let mut s = sched(rate_bps, t0);
    let mut now = t0;
    let mut bytes = [0u64; 4];
    let end = t0 + Duration::from_secs(secs);
    while now < end {
        for &c in classes {
            while s.stats(now)[c.index()].queued_packets < 8 {
                s.enqueue(now, c, &c.index(), &pkt(len, 0, 0))
                    .expect("queued");
            }
        }
        for (c, l, _) in drain(&mut s, now) {
            bytes[c.index()] += l as u64;
        }
        now = s
            .next_release()
            .expect("backlogged")
            .max(now + Duration::from_micros(10));
    }
    bytes
}

#[test]
fn telemonitoring_goes_first_within_its_cap() {
    let t = Instant::now();
    let mut s = sched(100_000_000, t);
    for i in 0..3 {
        s.enqueue(t, IMG, &1, &pkt(1400, i, 0)).expect("queued");
        s.enqueue(t, MED, &2, &pkt(1400, 10 + i, 0))
            .expect("queued");
        s.enqueue(t, DEF, &3, &pkt(1400, 30 + i, 0))
            .expect("queued");
    }
    s.enqueue(t, TM, &4, &pkt(200, 99, 0)).expect("queued");
    let order = drain(&mut s, t);
    assert_eq!(order[0].0, TM, "the vital sign leaves first: {order:?}");
    // Then the weighted round: telemedicine first.
    assert_eq!(order[1].0, MED);
}

#[test]
fn a_telemonitoring_flood_gets_about_its_cap_and_the_others_the_rest() {
    let b = saturate(100_000_000, &[TM, MED, IMG, DEF], 1400, 3);
    let total: u64 = b.iter().sum();
    let share = |c: ClassId| b[c.index()] as f64 / total as f64;
    // 25 % by priority + 1/8 of the other 75 % in the round = 34.4 %.
    assert!(
        (0.30..0.38).contains(&share(TM)),
        "telemonitoring {:.3}",
        share(TM)
    );
    assert!(share(MED) > 0.33, "telemedicine {:.3}", share(MED));
    assert!(share(IMG) > 0.16, "imaging {:.3}", share(IMG));
    assert!(share(DEF) > 0.08, "default {:.3}", share(DEF));
}

#[test]
fn backlogged_classes_share_4_2_1() {
    let b = saturate(50_000_000, &[MED, IMG, DEF], 1400, 3);
    let (m, i, d) = (b[1] as f64, b[2] as f64, b[3] as f64);
    assert!(
        (m / d - 4.0).abs() < 0.2,
        "telemedicine/default {:.2}",
        m / d
    );
    assert!((i / d - 2.0).abs() < 0.1, "imaging/default {:.2}", i / d);
}

#[test]
fn an_idle_class_share_goes_to_the_others() {
    let b = saturate(50_000_000, &[IMG, DEF], 1400, 2);
    let (i, d) = (b[2] as f64, b[3] as f64);
    assert!((i / d - 2.0).abs() < 0.1, "imaging/default {:.2}", i / d);
    // Work-conserving: the two classes fill the link (inner bytes ≈ rate × inner/wire).
    let wire_per_inner = (1408 + OVERHEAD) as f64 / 1400.0;
    let used = (i + d) * 8.0 * wire_per_inner / 2.0;
    assert!(used > 0.98 * 50_000_000.0, "link use {used:.0} bit/s");
}

#[test]
fn rate_is_never_exceeded_over_windows_longer_than_the_burst() {
    let t0 = Instant::now();
    let rate = 20_000_000u64;
    let mut s = sched(rate, t0);
    let mut now = t0;
    let mut sent: Vec<(Instant, usize)> = Vec::new();
    for step in 0..20_000u32 {
        // Bursty arrivals of mixed sizes.
        if step % 7 == 0 {
            for k in 0..5u32 {
                let len = 40 + ((step * 31 + k * 17) % 1380) as usize;
                let class = ClassId::ALL[(step + k) as usize % 4];
                let _ = s.enqueue(now, class, &k, &pkt(len, 0, 0));
            }
        }
        let mut out = [0u8; MTU];
        while let Some(r) = s.dequeue_into(now, &mut out) {
            sent.push((now, s.wire_cost(r.len)));
        }
        now += Duration::from_micros(50 + u64::from(step % 13) * 20);
    }
    let burst = (2 * (MTU + OVERHEAD)).max((rate / 8 / 500) as usize);
    for w in [5 * MS, 20 * MS, 100 * MS] {
        let mut lo = 0;
        let mut bytes = 0usize;
        for hi in 0..sent.len() {
            bytes += sent[hi].1;
            while sent[hi].0 - sent[lo].0 > w {
                bytes -= sent[lo].1;
                lo += 1;
            }
            let allowed = burst + (rate as u128 * w.as_nanos() / 8_000_000_000) as usize;
            assert!(
                bytes <= allowed,
                "{bytes} bytes in {w:?}, allowed {allowed}"
            );
        }
    }
    assert!(sent.len() > 1000);
}

#[test]
fn a_one_packet_flow_is_not_stuck_behind_a_bulk_flow_of_its_class() {
    let t = Instant::now();
    let mut s = sched(10_000_000, t);
    for i in 0..200u32 {
        s.enqueue(t, IMG, &"bulk", &pkt(1400, (i % 200) as u8, 0))
            .expect("queued");
    }
    // The bulk flow has started (its first packets left), then the query arrives.
    let mut position = drain(&mut s, t).len();
    assert!(position > 0);
    s.enqueue(t, IMG, &"query", &pkt(100, 250, 0))
        .expect("queued");
    let start = position;
    'outer: loop {
        let now = s.next_release().expect("backlogged");
        for (_, _, tag) in drain(&mut s, now) {
            position += 1;
            if tag == 250 {
                break 'outer;
            }
        }
    }
    let position = position - start;
    assert!(
        position <= 2,
        "the small flow's packet left {position}th after it came"
    );
}

#[test]
fn codel_controls_a_standing_queue_but_spares_a_short_burst() {
    // A burst of 40 packets at 10 Mbit/s drains in ~47 ms: below one interval, no drop.
    let t0 = Instant::now();
    let mut s = sched(10_000_000, t0);
    for _ in 0..40 {
        s.enqueue(t0, IMG, &1, &pkt(1400, 0, 0)).expect("queued");
    }
    let mut now = t0;
    while let Some(at) = s.next_release() {
        now = at.max(now);
        drain(&mut s, now);
    }
    assert_eq!(s.stats(now)[IMG.index()].drops_codel, 0);
    assert_eq!(s.stats(now)[IMG.index()].packets, 40);

    // A flow sending at twice the rate for 2 s: a standing queue; CoDel drops (not-ECT) or
    // marks (ECT(0)) in it.
    for ecn in [0u8, 0b10] {
        let mut s = sched(10_000_000, t0);
        let mut now = t0;
        let mut marked_seen = 0;
        let mut out = [0u8; MTU];
        for i in 0..3600u32 {
            s.enqueue(now, IMG, &1, &pkt(1400, 0, ecn)).expect("queued");
            while let Some(r) = s.dequeue_into(now, &mut out) {
                if ecn_of(&out[..r.len]) == Some(Ecn::Ce) {
                    assert!(ipv4_checksum_ok(&out[..r.len]));
                    marked_seen += 1;
                }
            }
            now = t0 + Duration::from_micros(u64::from(i) * 560);
        }
        let st = &s.stats(now)[IMG.index()];
        if ecn == 0 {
            assert!(st.drops_codel > 5, "drops {}", st.drops_codel);
            assert_eq!(st.ecn_marked, 0);
        } else {
            assert!(st.ecn_marked > 5, "marks {}", st.ecn_marked);
            assert_eq!(st.drops_codel, 0);
            assert_eq!(marked_seen, st.ecn_marked);
        }
    }
}

#[test]
fn overflow_drops_from_the_fat_flow_of_the_fullest_class_and_counts() {
    let t = Instant::now();
    let mut s = sched(1_000_000, t);
    // Fill the peer: imaging holds 3 MiB (its limit), default the rest.
    let mut n = 0u32;
    while s.stats(t)[IMG.index()].drops_overflow == 0 {
        s.enqueue(t, IMG, &"fat", &pkt(1400, 1, 0)).expect("queued");
        n += 1;
    }
    assert!(
        n as usize * 1400 > CLASS_BYTES[2],
        "imaging was bounded at its limit"
    );
    s.enqueue(t, IMG, &"thin", &pkt(100, 2, 0)).expect("queued");
    // Default fills the rest: the peer is full once the fullest class (imaging) loses one.
    let full = s.stats(t)[IMG.index()].drops_overflow;
    while s.stats(t)[IMG.index()].drops_overflow == full {
        s.enqueue(t, DEF, &"def", &pkt(1400, 3, 0)).expect("queued");
    }
    let before = s.stats(t);
    let queued: u64 = before.iter().map(|c| c.queued_bytes).sum();
    assert!(queued as usize <= PEER_BYTES);
    assert!(queued as usize + 1400 > PEER_BYTES);
    // A telemonitoring packet into a full peer: a bulk packet goes instead.
    s.enqueue(t, TM, &"alarm", &pkt(1400, 9, 0))
        .expect("queued");
    let after = s.stats(t);
    assert_eq!(after[TM.index()].drops_overflow, 0);
    assert_eq!(after[TM.index()].queued_packets, 1);
    assert_eq!(
        after[IMG.index()].drops_overflow,
        before[IMG.index()].drops_overflow + 1
    );
    // The thin imaging flow kept its packet: the drop came from the fat one.
    let mut now = t;
    let mut thin = 0;
    while let Some(at) = s.next_release() {
        now = at.max(now);
        thin += drain(&mut s, now)
            .iter()
            .filter(|&&(_, _, tag)| tag == 2)
            .count();
    }
    assert_eq!(thin, 1);
}

#[test]
fn empty_and_oversized_packets_are_refused_and_counted() {
    let t = Instant::now();
    let mut s = sched(10_000_000, t);
    assert_eq!(s.enqueue(t, MED, &0, &[]), Err(EgressDrop::Empty));
    let big = vec![0x45; MTU + 1];
    assert_eq!(
        s.enqueue(t, MED, &0, &big),
        Err(EgressDrop::Oversized {
            len: MTU + 1,
            mtu: MTU
        })
    );
    assert_eq!(s.stats(t)[MED.index()].drops_overflow, 2);
    assert_eq!(s.next_release(), None);
    // Not IP at all: queued and released as it is (the scheduler reads headers only to mark).
    s.enqueue(t, MED, &0, &[1, 2, 3]).expect("queued");
    let mut out = [0u8; MTU];
    assert_eq!(
        s.dequeue_into(t, &mut out),
        Some(Released { len: 3, class: MED })
    );
}

#[test]
fn stats_count_releases_delays_and_queue() {
    let t = Instant::now();
    let mut s = sched(8_000_000, t); // 1 byte/µs
    for i in 0..10 {
        s.enqueue(t, MED, &i, &pkt(940, 0, 0)).expect("queued"); // 1000 wire bytes
    }
    let mut now = t;
    while let Some(at) = s.next_release() {
        now = at.max(now);
        drain(&mut s, now);
    }
    let st = &s.stats(now)[MED.index()];
    assert_eq!((st.packets, st.bytes, st.queued_packets), (10, 9400, 0));
    // The last waited ~ (10 - burst of 3) ms: within the 10 ms bucket.
    assert_eq!(st.delay_buckets.iter().sum::<u64>(), 10);
    assert!(st.recent_delay_p99.expect("released") <= Duration::from_millis(10));
    assert!(st.delay_sum > Duration::ZERO);
}

#[test]
fn after_warm_up_no_slot_is_allocated() {
    let t0 = Instant::now();
    let mut s = sched(10_000_000, t0);
    let mut now = t0;
    let mut out = [0u8; MTU];
    let packet = pkt(1000, 0, 0);
    // Below the rate, with a burst of 50 packets every 100: the queue peaks at the same length
    // in every cycle.
    let mut run = |s: &mut EgressScheduler, steps: u32| {
        for i in 0..steps {
            let burst = if i % 100 == 0 { 50 } else { 1 };
            for k in 0..burst {
                let class = ClassId::ALL[(i + k) as usize % 4];
                s.enqueue(now, class, &(k % 9), &packet).expect("queued");
            }
            while s.dequeue_into(now, &mut out).is_some() {}
            now += Duration::from_micros(1500);
        }
    };
    run(&mut s, 2_000);
    let warm = s.slots_allocated();
    assert!((50..=PEER_PACKETS).contains(&warm), "{warm} slots");
    run(&mut s, 5_000);
    assert_eq!(s.slots_allocated(), warm);
}

#[test]
fn a_rate_change_applies_to_what_is_queued() {
    let t = Instant::now();
    let mut s = sched(8_000_000, t);
    for i in 0..20 {
        s.enqueue(t, IMG, &i, &pkt(940, 0, 0)).expect("queued");
    }
    drain(&mut s, t);
    let slow = s.next_release().expect("backlogged") - t;
    s.set_rate(80_000_000);
    let fast = s.next_release().expect("backlogged") - t;
    assert!(fast * 5 < slow, "{fast:?} vs {slow:?}");
}

//! The cost the egress scheduler adds per packet on the packet thread: one `enqueue` and one
//! `dequeue_into` of a 1420-byte packet (the copy in and out, flow hashing, the flow and class
//! rounds, CoDel and the token bucket), with the queue empty between packets, with a standing
//! queue of 1000 packets spread over four classes and 64 flows, and with a flood of one
//! imaging flow alone.
//!
//! Run: `cargo bench -p gateway --bench egress`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gateway::classes::ClassId;
use gateway::classes::scheduler::{EgressConfig, EgressScheduler};

const LEN: usize = 1420;

fn scheduler(now: Instant) -> EgressScheduler {
    // Fast enough that the bucket never holds a packet back: this measures the CPU cost only.
    let config = EgressConfig {
        rate_bps: 400_000_000_000,
        mtu: LEN,
        overhead: 60,
        seed: 1,
    };
    EgressScheduler::new(config, now)
}

/// An IPv4 packet of `LEN` bytes, ECT(0).
fn packet() -> Vec<u8> {
    let mut p = vec![0u8; LEN];
    p[0] = 0x45;
    p[1] = 0x02;
    p
}

fn egress(c: &mut Criterion) {
    let mut group = c.benchmark_group("egress");
    group.throughput(Throughput::Bytes(LEN as u64));
    let pkt = packet();
    let mut out = vec![0u8; LEN];

    for (name, backlog, flows) in [
        ("empty", 0usize, 1u32),
        ("backlog_1000", 1000, 64),
        ("one_flow", 1000, 1),
    ] {
        let t0 = Instant::now();
        let mut s = scheduler(t0);
        let mut now = t0;
        for i in 0..backlog as u32 {
            let class = if flows == 1 {
                ClassId::Imaging
            } else {
                ClassId::ALL[i as usize % 4]
            };
            s.enqueue(now, class, &(i % flows), &pkt).expect("queued");
        }
        let mut i = 0u32;
        group.bench_function(format!("enqueue_dequeue_1420/{name}"), |b| {
            b.iter(|| {
                // Time moves 1 µs per packet, far below CoDel's target: nothing is dropped.
                now += Duration::from_micros(1);
                i = i.wrapping_add(1);
                let class = if flows == 1 {
                    ClassId::Imaging
                } else {
                    ClassId::ALL[i as usize % 4]
                };
                s.enqueue(now, class, &(i % flows), black_box(&pkt))
                    .expect("queued");
                black_box(s.dequeue_into(now, &mut out))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, egress);
criterion_main!(benches);

//! The data path's cipher work on one thread and on two (`daemon::workers`): a transmit batch of
//! 128 full-size packets framed by a real node and sealed, and the same messages opened, by
//! `Workers` with 1 and with 2 threads. This is the scaling of the cipher stage alone, on an
//! otherwise idle machine; what it is worth in a whole tunnel depends on what else needs the
//! cores (docs/gateway-decisions.md §9).
//!
//! Run: `cargo bench -p gateway --bench workers`.

use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gateway::daemon::workers::{ToOpen, Workers};
use gateway::node::testing::{Site, connected, ipv4};

const SLOT: usize = 1536;
const PACKETS: usize = 128;
const PAYLOAD: usize = 1420 - 28;

fn batches(c: &mut Criterion) {
    let now = Instant::now();
    let (a, b) = (Site(1), Site(2));
    let (mut sender, mut receiver) = connected(now, a, b);
    let packet = ipv4(a.ip(1), b.ip(1), &[0xA5; PAYLOAD]);
    let mut slots = vec![0u8; SLOT * PACKETS];
    let mut sealings = Vec::new();
    for i in 0..PACKETS {
        let slot = &mut slots[i * SLOT..(i + 1) * SLOT];
        slot[16..16 + packet.len()].copy_from_slice(&packet);
        let framed = sender.frame_tun_packet(now, slot, packet.len());
        sealings.push(framed.expect("a session").expect("no egress scheduler").1);
    }
    // The two-thread pool takes this thread as its worker 0, so it is made once, here.
    let pool = |n| Workers::new(n).expect("a thread pool");
    let mut workers = [(1, pool(1)), (2, pool(2))];

    let mut g = c.benchmark_group("batch_128x1420");
    g.throughput(Throughput::Bytes((PACKETS * 1420) as u64));
    for (n, w) in &mut workers {
        g.bench_function(format!("seal_{n}_threads"), |bench| {
            bench.iter(|| w.seal(&mut slots, SLOT, &sealings));
        });
    }
    // Sealed once more with fresh counters, to be opened: the replay window is never updated
    // here (finish_transport is not called), so every round opens the same messages.
    let sealed = slots.clone();
    let mut openings: Vec<ToOpen> = (0..PACKETS)
        .map(|i| {
            let at = i * SLOT..i * SLOT + 16 + 1420 + 16;
            let begun = receiver.begin_transport(now, a.addr(), &sealed[at.clone()]);
            let pending = begun.expect("a transport message").expect("fresh");
            ToOpen::new(pending, at)
        })
        .collect();
    for (n, w) in &mut workers {
        g.bench_function(format!("open_{n}_threads"), |bench| {
            bench.iter_batched_ref(
                || sealed.clone(),
                |buf| w.open(buf, &mut openings),
                criterion::BatchSize::LargeInput,
            );
        });
    }
    assert!(
        openings.iter().all(|o| o.opened.is_ok()),
        "every message opened"
    );
    g.finish();
}

criterion_group!(benches, batches);
criterion_main!(benches);

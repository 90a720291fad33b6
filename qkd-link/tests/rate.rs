//! The secret key rate is honoured in real time: a link at R bits/s cannot deliver more than
//! R x t bits in t seconds (it starts empty), and it does deliver about that much.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Harness, sae};
use qkd_link::Error;
use qkd_link::api::KeyRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_delivers_no_more_than_rate_times_time() {
    const RATE: u64 = 25_600; // 100 keys of 256 bits per second
    let t_before_start = Instant::now();
    let h = Harness::start(&common::config(RATE, 0)).await;
    let t_after_start = Instant::now();
    let a = h.master();
    let mut delivered_bits = 0u64;
    let mut rejected = 0u32;
    // Alternate request sizes; bounded by both time (1.5 s) and iteration count.
    for i in 0..20_000u32 {
        if t_after_start.elapsed() >= Duration::from_millis(1500) {
            break;
        }
        let req = KeyRequest {
            number: Some(1 + i % 3),
            size: Some(if i % 2 == 0 { 256 } else { 512 }),
            ..KeyRequest::default()
        };
        match a.enc_keys(&sae("SAE_B"), &req).await {
            Ok(keys) => delivered_bits += keys.iter().map(|k| k.len_bits() as u64).sum::<u64>(),
            Err(Error::ServiceUnavailable { .. }) => {
                rejected += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    let t_end = t_before_start.elapsed();
    // Upper bound: everything delivered was produced after the link started, before t_end.
    let ceiling = (RATE as f64 * t_end.as_secs_f64()) as u64;
    assert!(
        delivered_bits <= ceiling,
        "delivered {delivered_bits} bits > {RATE} bit/s x {t_end:?}"
    );
    assert!(rejected > 0, "the client outran the link at least once");
    // Lower bound: delivered plus still stored covers what was produced since start returned.
    let t_status = t_after_start.elapsed();
    let stored = a.status(&sae("SAE_B")).await.unwrap().stored_key_count;
    let floor = (RATE as f64 * t_status.as_secs_f64()) as u64;
    let accounted = delivered_bits + stored * 256 + 256;
    assert!(
        accounted >= floor,
        "only {accounted} bits accounted for, {floor} produced"
    );
    // And the client actually took most of it (not just left it in the store).
    assert!(
        delivered_bits as f64 >= 0.5 * floor as f64,
        "{delivered_bits} of {floor}"
    );
    h.sim.shutdown().await;
}

//! The master-side prefetch buffer against the simulator: keys are ready before they are needed,
//! each is handed out once, the slave recovers the same bytes, the buffer refills, and a discarded
//! buffer is refilled with keys fetched after it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{Harness, sae};
use qkd_link::{PrefetchConfig, Prefetcher};

async fn wait_for_level(p: &Prefetcher, level: usize) {
    for _ in 0..500 {
        if p.level() >= level {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("buffer stuck at {} < {level}", p.level());
}

#[tokio::test]
async fn prefetched_keys_match_the_slave_and_are_used_once() {
    let h = Harness::default().await;
    let master = Arc::new(h.master());
    let slave = h.slave();
    let mut cfg = PrefetchConfig::new(sae("SAE_B"));
    cfg.capacity = 8;
    cfg.low_water = 2;
    cfg.batch = 4;
    let p = Prefetcher::spawn(Arc::clone(&master), cfg);
    wait_for_level(&p, 8).await;
    assert_eq!(master.metrics().snapshot().buffer_level, 8);
    let mut seen = HashSet::new();
    for _ in 0..20 {
        let key = p.take(Duration::from_secs(5)).await.expect("a key");
        assert!(seen.insert(key.id()), "key {} handed out twice", key.id());
        assert_eq!(key.len_bits(), 256);
        let theirs = slave.dec_key_get(&sae("SAE_A"), key.id()).await.unwrap();
        assert_eq!(theirs.expose(), key.expose());
    }
    // Above the low-water mark it does not fetch; at the mark it refills to capacity.
    for _ in 0..100 {
        if p.level() <= 2 {
            break;
        }
        p.try_take();
    }
    wait_for_level(&p, 8).await;
    for _ in 0..5 {
        p.try_take().expect("a buffered key");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(p.level(), 3, "no fetch above the low-water mark");
    p.try_take().expect("a key");
    wait_for_level(&p, 8).await;
    drop(p);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn dry_link_empties_the_buffer_and_take_times_out() {
    let h = Harness::start(&common::config(0, 3)).await;
    let master = Arc::new(h.master());
    let mut cfg = PrefetchConfig::new(sae("SAE_B"));
    cfg.capacity = 4;
    cfg.low_water = 1;
    cfg.batch = 1;
    cfg.backoff_initial_ms = 20;
    cfg.backoff_max_ms = 50;
    let p = Prefetcher::spawn(Arc::clone(&master), cfg);
    let mut got = 0;
    for _ in 0..3 {
        if p.take(Duration::from_secs(5)).await.is_some() {
            got += 1;
        }
    }
    assert_eq!(got, 3);
    let started = std::time::Instant::now();
    assert!(p.take(Duration::from_millis(200)).await.is_none());
    assert!(started.elapsed() >= Duration::from_millis(190));
    assert!(p.try_take().is_none());
    let m = master.metrics().snapshot();
    assert_eq!(m.buffer_level, 0);
    assert!(m.errors_of(qkd_link::ErrorKind::ServiceUnavailable) >= 1);
    drop(p);
    h.sim.shutdown().await;
}

#[tokio::test]
async fn a_discarded_buffer_hands_out_only_keys_fetched_after_it() {
    let h = Harness::default().await;
    let master = Arc::new(h.master());
    let mut cfg = PrefetchConfig::new(sae("SAE_B"));
    cfg.capacity = 4;
    cfg.low_water = 1;
    cfg.batch = 4;
    let p = Prefetcher::spawn(Arc::clone(&master), cfg);
    wait_for_level(&p, 4).await;
    let before = master.metrics().snapshot().keys_fetched;
    p.discard();
    let key = p.take(Duration::from_secs(5)).await.expect("a fresh key");
    let after = master.metrics().snapshot().keys_fetched;
    assert!(
        after >= before + 4,
        "no new batch: {before} -> {after} keys fetched"
    );
    wait_for_level(&p, 3).await;
    let _ = key;
    drop(p);
    h.sim.shutdown().await;
}

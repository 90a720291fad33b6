//! A measurement, not a timing assertion: a hub's 100 master prefetch pools starting together
//! against the real simulator over mutual TLS on loopback, before (the fixed 16-key pool, no
//! shared limit, no start spread) and after (pools sized from the rotation, behind the default
//! `FetchGate`). It prints, per setup, the KME requests started in the first second, the most in
//! flight at once, when every pool held its first key, the keys held hub-wide once full, and,
//! for a restart where every peer's first epoch waits for a key at once, when the last was served.
//! It asserts only what the gate guarantees (never more than its limit in flight) and that every
//! pool fills. Run: `cargo test -p qkd-link --features sim --test hub_burst -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Harness, sae};
use qkd_link::api::KeyRequest;
use qkd_link::{
    Error, FetchGate, KeySource, KmeClient, Metrics, PrefetchConfig, Prefetcher, QkdKey, SaeId,
};
use tokio::sync::Notify;

const PEERS: usize = 100;

/// The simulator with KME_B serving 100 slave SAEs (`HUB_S000`..) besides the harness's own.
fn hub_config() -> String {
    let slaves: Vec<String> = (0..PEERS).map(slave_name).collect();
    common::config(10_000_000, 4000)
        .replace("max_key_count: 1000", "max_key_count: 8000")
        .replace(
            "saes: [SAE_B, SAE_C]",
            &format!("saes: [SAE_B, SAE_C, {}]", slaves.join(", ")),
        )
}

fn slave_name(i: usize) -> String {
    format!("HUB_S{i:03}")
}

/// The real client, with every request's start and the concurrency it ran at recorded.
struct Counting {
    client: KmeClient,
    start: Instant,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    started: Mutex<Vec<Duration>>,
    /// Slaves that have received at least one key, and when the last of them first did.
    first_keys: Mutex<(std::collections::HashSet<SaeId>, Duration)>,
    keys: AtomicUsize,
    changed: Notify,
}

impl KeySource for Counting {
    async fn enc_keys(&self, slave: &SaeId, request: &KeyRequest) -> Result<Vec<QkdKey>, Error> {
        self.started.lock().unwrap().push(self.start.elapsed());
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let result = self.client.enc_keys(slave, request).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Ok(keys) = &result {
            self.keys.fetch_add(keys.len(), Ordering::SeqCst);
            let mut first = self.first_keys.lock().unwrap();
            if first.0.insert(slave.clone()) {
                first.1 = self.start.elapsed();
            }
        }
        self.changed.notify_waiters();
        result
    }

    fn metrics(&self) -> &Arc<Metrics> {
        self.client.metrics()
    }
}

impl Counting {
    /// Waits (bounded by the caller's timeout) until `done` holds, woken by every answer.
    async fn until(&self, done: impl Fn(&Self) -> bool) {
        loop {
            let changed = self.changed.notified();
            if done(self) {
                return;
            }
            changed.await;
        }
    }
}

struct Setup {
    name: &'static str,
    sized: fn(SaeId) -> PrefetchConfig,
    gate: fn() -> FetchGate,
}

const SETUPS: [Setup; 3] = [
    Setup {
        name: "before: 16 keys each, no limit, no spread",
        sized: PrefetchConfig::new,
        gate: FetchGate::unlimited,
    },
    Setup {
        name: "after, 120 s rotation: sized, 4 in flight, 1 s spread",
        sized: |s| PrefetchConfig::for_rotation(s, Duration::from_secs(120)),
        gate: FetchGate::default,
    },
    Setup {
        name: "after, 10 s rotation: sized, 4 in flight, 1 s spread",
        sized: |s| PrefetchConfig::for_rotation(s, Duration::from_secs(10)),
        gate: FetchGate::default,
    },
];

/// The sim on its own runtime thread, as a KME is its own machine; the pools on a
/// current-thread runtime, as in the gateway's KME thread.
fn with_hub<T>(f: impl FnOnce(&Harness) -> T) -> T {
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let harness = sim_rt.block_on(Harness::start(&hub_config()));
    let out = f(&harness);
    sim_rt.block_on(harness.sim.shutdown());
    out
}

fn counting(h: &Harness) -> Arc<Counting> {
    let mut cfg = h.client_config("sae_a", "SAE_A", "KME_A");
    cfg.request_timeout_ms = 10_000;
    Arc::new(Counting {
        client: KmeClient::new(cfg).unwrap(),
        start: Instant::now(),
        in_flight: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        started: Mutex::new(Vec::new()),
        first_keys: Mutex::new((Default::default(), Duration::ZERO)),
        keys: AtomicUsize::new(0),
        changed: Notify::new(),
    })
}

fn spawn_hub(kme: &Arc<Counting>, setup: &Setup) -> (Vec<Prefetcher>, usize) {
    let gate = (setup.gate)();
    let cfgs: Vec<PrefetchConfig> = (0..PEERS)
        .map(|i| (setup.sized)(sae(&slave_name(i))))
        .collect();
    let capacity = cfgs.iter().map(|c| c.capacity).sum();
    let pools = cfgs
        .into_iter()
        .map(|c| Prefetcher::spawn_gated(Arc::clone(kme), c, gate.clone()))
        .collect();
    (pools, capacity)
}

#[test]
fn a_hub_of_100_master_pools_starting_together() {
    for setup in &SETUPS {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Pools filling with nobody waiting (peers whose first epoch is not due yet).
        let (idle, held) = with_hub(|h| {
            rt.block_on(async {
                let kme = counting(h);
                let (pools, capacity) = spawn_hub(&kme, setup);
                let full = kme.until(|k| k.keys.load(Ordering::SeqCst) >= capacity);
                tokio::time::timeout(Duration::from_secs(60), full)
                    .await
                    .expect("pools full");
                let held: usize = pools.iter().map(Prefetcher::level).sum();
                (report(&kme), held)
            })
        });
        // A restart: every peer's first epoch takes a key at once (2 s, the daemon's timeout).
        let (waiting, served, last) = with_hub(|h| {
            rt.block_on(async {
                let kme = counting(h);
                let (pools, _) = spawn_hub(&kme, setup);
                let pools: Vec<Arc<Prefetcher>> = pools.into_iter().map(Arc::new).collect();
                let mut takes = tokio::task::JoinSet::new();
                for p in &pools {
                    let p = Arc::clone(p);
                    let start = kme.start;
                    takes.spawn(async move {
                        p.take(Duration::from_secs(2))
                            .await
                            .map(|_| start.elapsed())
                    });
                }
                let (mut served, mut last) = (0, Duration::ZERO);
                while let Some(t) = takes.join_next().await {
                    if let Some(t) = t.unwrap() {
                        served += 1;
                        last = last.max(t);
                    }
                }
                (report(&kme), served, last)
            })
        });
        println!("{}", setup.name);
        println!("  idle pools:    {idle}; keys held hub-wide once full: {held}");
        println!(
            "  epochs waiting: {waiting}; takes served within 2 s: {served}/{PEERS}, last at {last:?}"
        );
        if setup.name.starts_with("after") {
            for (what, r) in [("idle", &idle), ("waiting", &waiting)] {
                assert!(r.peak <= 4, "{what}: {} requests in flight at once", r.peak);
            }
        }
        assert!(idle.all_first.is_some(), "every pool got its first key");
    }
}

struct Report {
    first_second: usize,
    /// Most requests started within any 100 ms.
    densest: usize,
    requests: usize,
    peak: usize,
    all_first: Option<Duration>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests ({} in the first second, at most {} in any 100 ms), peak {} in flight, \
             all 100 pools had a key at {:?}",
            self.requests, self.first_second, self.densest, self.peak, self.all_first
        )
    }
}

fn report(kme: &Counting) -> Report {
    let started = kme.started.lock().unwrap();
    let first = kme.first_keys.lock().unwrap();
    let window = Duration::from_millis(100);
    let densest = (started.iter())
        .map(|t0| {
            started
                .iter()
                .filter(|t| **t >= *t0 && **t < *t0 + window)
                .count()
        })
        .max()
        .unwrap_or(0);
    Report {
        densest,
        first_second: started
            .iter()
            .filter(|t| **t < Duration::from_secs(1))
            .count(),
        requests: started.len(),
        peak: kme.peak.load(Ordering::SeqCst),
        all_first: (first.0.len() == PEERS).then_some(first.1),
    }
}

//! The prefetcher against a counting KME double on tokio's paused clock: a hundred pools that
//! start together keep the shared limit, spread their first fills and all fill; a `take` an
//! epoch waits on is served at once, ahead of pools that are only topping up.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::time::Instant;
use zeroize::Zeroizing;

use super::*;
use crate::ids::KeyId;

/// A KME that answers every request after `latency` and counts what is in flight.
struct CountingKme {
    latency: Duration,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    next_key: AtomicU64,
    started: Mutex<Vec<Instant>>,
    metrics: Arc<Metrics>,
}

impl CountingKme {
    fn new(latency_ms: u64) -> Arc<Self> {
        Arc::new(Self {
            latency: Duration::from_millis(latency_ms),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            next_key: AtomicU64::new(1),
            started: Mutex::new(Vec::new()),
            metrics: Arc::new(Metrics::new()),
        })
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Requests started before `start + within`.
    fn started_within(&self, start: Instant, within: Duration) -> usize {
        let started = self.started.lock().unwrap();
        started.iter().filter(|t| **t < start + within).count()
    }
}

impl KeySource for CountingKme {
    fn enc_keys(
        &self,
        _slave: &SaeId,
        request: &KeyRequest,
    ) -> impl Future<Output = Result<Vec<QkdKey>, Error>> + Send {
        let number = request.number.unwrap_or(1);
        async move {
            self.started.lock().unwrap().push(Instant::now());
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.latency).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let keys = (0..number).map(|_| {
                let n = self.next_key.fetch_add(1, Ordering::SeqCst);
                let mut id = [0xA5u8; 16];
                id[..8].copy_from_slice(&n.to_le_bytes());
                QkdKey::new(KeyId::from_random_bytes(id), Zeroizing::new(vec![1; 32]))
            });
            Ok(keys.collect())
        }
    }

    fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

fn hub(
    kme: &Arc<CountingKme>,
    pools: usize,
    cfg: &PrefetchConfig,
    gate: &FetchGate,
) -> Vec<Prefetcher> {
    (0..pools)
        .map(|_| Prefetcher::spawn_gated(Arc::clone(kme), cfg.clone(), gate.clone()))
        .collect()
}

/// Lets the paused clock run, in 10 ms steps (at most `limit`), until every pool holds `level`.
async fn until_all_hold(pools: &[Prefetcher], level: usize, limit: Duration) -> Duration {
    let start = Instant::now();
    while pools.iter().any(|p| p.level() < level) {
        assert!(
            start.elapsed() < limit,
            "pools not at {level} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

/// How long a `take` (with the daemon's 2 s timeout) waited for its key; it must get one.
async fn timed_take(pool: &Prefetcher) -> Duration {
    let start = Instant::now();
    assert!(pool.take(Duration::from_secs(2)).await.is_some(), "no key");
    start.elapsed()
}

fn slave() -> SaeId {
    SaeId::new("SAE_B").unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_hundred_pools_starting_together_keep_the_shared_limit_and_all_fill() {
    let kme = CountingKme::new(20);
    let cfg = PrefetchConfig::for_rotation(slave(), Duration::from_secs(120));
    let pools = hub(&kme, 100, &cfg, &FetchGate::new(4, Duration::from_secs(1)));
    until_all_hold(&pools, cfg.capacity, Duration::from_secs(10)).await;
    assert!(kme.peak() <= 4, "{} requests in flight at once", kme.peak());
}

#[tokio::test(start_paused = true)]
async fn first_fills_start_spread_over_the_window() {
    let kme = CountingKme::new(20);
    let start = Instant::now();
    let cfg = PrefetchConfig::for_rotation(slave(), Duration::from_secs(120));
    let gate = FetchGate::new(usize::MAX, Duration::from_secs(1));
    let pools = hub(&kme, 100, &cfg, &gate);
    let took = until_all_hold(&pools, 1, Duration::from_secs(10)).await;
    // A uniform start in [0, 1 s): about 10 of 100 in the first 100 ms; 30 is ~1e-8 likely.
    let early = kme.started_within(start, Duration::from_millis(100));
    assert!(
        early <= 30,
        "{early} first-fill requests of 100 pools in the first 100 ms"
    );
    assert!(
        took <= Duration::from_millis(1100),
        "all first keys after {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiting_take_is_served_ahead_of_pools_topping_up() {
    let kme = CountingKme::new(50);
    let big = PrefetchConfig::new(slave()); // 16 keys each: plenty of background fills queued
    let gate = FetchGate::new(4, Duration::ZERO);
    let pools = hub(&kme, 99, &big, &gate);
    let late = Prefetcher::spawn_gated(Arc::clone(&kme), big.clone(), gate.clone());
    tokio::time::sleep(Duration::from_millis(1)).await; // every driver is queued for a permit
    let waited = timed_take(&late).await;
    assert!(
        waited <= Duration::from_millis(100),
        "the waiting take waited {waited:?}"
    );
    assert!(kme.peak() <= 4, "{} requests in flight at once", kme.peak());
    drop(pools);
}

#[tokio::test(start_paused = true)]
async fn a_take_cuts_the_start_delay_short() {
    let kme = CountingKme::new(20);
    let cfg = PrefetchConfig::for_rotation(slave(), Duration::from_secs(10));
    let pool = Prefetcher::spawn_gated(
        Arc::clone(&kme),
        cfg,
        FetchGate::new(4, Duration::from_secs(3600)),
    );
    let waited = timed_take(&pool).await;
    assert!(
        waited <= Duration::from_millis(40),
        "waited {waited:?} for the first key"
    );
}

#[tokio::test(start_paused = true)]
async fn a_restart_with_every_epoch_waiting_serves_them_all_within_the_limit() {
    let kme = CountingKme::new(20);
    let served = restart(&kme, 100, &FetchGate::new(4, Duration::from_secs(1))).await;
    assert_eq!(served, 100, "every waiting epoch gets its key");
    assert!(kme.peak() <= 4, "{} requests in flight at once", kme.peak());
}

#[tokio::test(start_paused = true)]
async fn the_buffer_gauge_counts_every_pool_of_the_client() {
    let kme = CountingKme::new(20);
    let cfg = PrefetchConfig::for_rotation(slave(), Duration::from_secs(120));
    let mut pools = hub(&kme, 3, &cfg, &FetchGate::unlimited());
    until_all_hold(&pools, cfg.capacity, Duration::from_secs(10)).await;
    let total = |pools: &[Prefetcher]| pools.iter().map(Prefetcher::level).sum::<usize>() as u64;
    assert_eq!(kme.metrics.snapshot().buffer_level, total(&pools));
    assert!(pools[0].try_take().is_some());
    pools[1].discard();
    assert_eq!(kme.metrics.snapshot().buffer_level, total(&pools));
    let dropped = pools.pop().map(|p| p.level() as u64).unwrap();
    assert!(dropped > 0);
    assert_eq!(kme.metrics.snapshot().buffer_level, total(&pools));
}

/// A restart of a hub with `pools` master peers sharing `gate`: every epoch waits for a key at
/// once. Returns how many got their key within the daemon's 2 s timeout.
async fn restart(kme: &Arc<CountingKme>, pools: usize, gate: &FetchGate) -> usize {
    let cfg = PrefetchConfig::for_rotation(slave(), Duration::from_secs(120));
    let pools: Vec<Arc<Prefetcher>> = hub(kme, pools, &cfg, gate)
        .into_iter()
        .map(Arc::new)
        .collect();
    let mut takes = tokio::task::JoinSet::new();
    for pool in &pools {
        let pool = Arc::clone(pool);
        takes.spawn(async move { pool.take(Duration::from_secs(2)).await.is_some() });
    }
    let mut served = 0;
    while let Some(got) = takes.join_next().await {
        served += usize::from(got.unwrap());
    }
    served
}

/// [`restart`] on the daemon's gate (`FetchGate::default`) against a KME answering in
/// `latency_ms`: (epochs served, most requests in flight at once).
async fn restart_on_the_default_gate(pools: usize, latency_ms: u64) -> (usize, usize) {
    let kme = CountingKme::new(latency_ms);
    let served = restart(&kme, pools, &FetchGate::default()).await;
    (served, kme.peak())
}

#[tokio::test(start_paused = true)]
async fn a_restart_of_a_thousand_peers_is_served_within_the_qkd_timeout() {
    // 11 ms: the mean of a LAN KME's 2-20 ms (the hub bench's KME). Four in flight serve
    // ~360 keys/s, so the last of 1000 waiting epochs would wait ~2.75 s and time out.
    let (served, peak) = restart_on_the_default_gate(1000, 11).await;
    assert_eq!(served, 1000, "every waiting epoch gets its key within 2 s");
    assert!(peak <= 16, "{peak} requests in flight at once");
}

#[tokio::test(start_paused = true)]
async fn a_restart_of_a_hundred_peers_keeps_four_in_flight() {
    let (served, peak) = restart_on_the_default_gate(100, 11).await;
    assert_eq!(served, 100);
    assert!(peak <= 4, "{peak} requests in flight at once");
}

//! Benchmark: `enc_keys` at the master's KME plus `dec_keys` at the slave's KME, through the
//! simulator over real mutual TLS on loopback (no simulated latency, a link fast enough never to
//! run dry). Reports criterion timings for one round trip, then latency percentiles and keys/s
//! from a bounded run of its own.
//!
//! Run: `cargo bench -p qkd-link --features sim --bench kme_roundtrip`
//! (add `-- --quick` for a shorter criterion pass).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use qkd_link::api::KeyRequest;
use qkd_link::sim::{SimConfig, SimHandle, pki};
use qkd_link::{ClientConfig, KeyId, KmeClient, RetryPolicy, SaeId};

const CONFIG: &str = r#"
limits: { key_size: 256, min_key_size: 64, max_key_size: 1024, max_key_per_request: 128, max_sae_id_count: 0 }
kmes:
  - { id: KME_A, listen: "127.0.0.1:0", saes: [SAE_A] }
  - { id: KME_B, listen: "127.0.0.1:0", saes: [SAE_B] }
links:
  - { kmes: [KME_A, KME_B], secret_key_rate_bps: 10000000000, max_key_count: 1000000, initial_key_count: 1000000 }
"#;

struct Bench {
    _pki: tempfile::TempDir,
    sim: SimHandle,
    master: Arc<KmeClient>,
    slave: Arc<KmeClient>,
    sae_a: SaeId,
    sae_b: SaeId,
}

async fn setup() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    pki::generate(dir.path(), &[], false).unwrap();
    let cfg = SimConfig::from_yaml(CONFIG, "bench").unwrap();
    let sim = qkd_link::sim::start(cfg, dir.path()).await.unwrap();
    let client = |file: &str, id: &str, kme: &str| {
        let mut c = ClientConfig::new(
            sim.kme_url(kme).unwrap(),
            SaeId::new(id).unwrap(),
            dir.path().join("ca.pem"),
            dir.path().join(format!("{file}.pem")),
            dir.path().join(format!("{file}.key")),
        );
        c.retry = RetryPolicy::none();
        Arc::new(KmeClient::new(c).unwrap())
    };
    let (master, slave) = (
        client("sae_a", "SAE_A", "KME_A"),
        client("sae_b", "SAE_B", "KME_B"),
    );
    Bench {
        _pki: dir,
        sim,
        master,
        slave,
        sae_a: SaeId::new("SAE_A").unwrap(),
        sae_b: SaeId::new("SAE_B").unwrap(),
    }
}

/// One epoch's key exchange: the master gets `n` keys, the slave fetches them by ID.
async fn round_trip(b: &Bench, n: u32) {
    let req = KeyRequest {
        number: Some(n),
        ..KeyRequest::default()
    };
    let keys = b.master.enc_keys(&b.sae_b, &req).await.unwrap();
    let ids: Vec<KeyId> = keys.iter().map(|k| k.id()).collect();
    let theirs = b.slave.dec_keys(&b.sae_a, &ids).await.unwrap();
    assert_eq!(keys[0].expose(), theirs[0].expose());
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Sequential round trips, bounded by `count` and `budget`; prints percentiles and keys/s.
async fn report(b: &Bench, label: &str, keys_per_trip: u32, count: usize, budget: Duration) {
    let mut lat = Vec::with_capacity(count);
    let start = Instant::now();
    while lat.len() < count && start.elapsed() < budget {
        let t = Instant::now();
        round_trip(b, keys_per_trip).await;
        lat.push(t.elapsed());
    }
    let total = start.elapsed();
    lat.sort();
    let keys = lat.len() as f64 * f64::from(keys_per_trip);
    println!(
        "{label:<34} n={:<5} p50={:>8.3?} p90={:>8.3?} p99={:>8.3?} max={:>8.3?}  {:>9.0} keys/s",
        lat.len(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.90),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or_default(),
        keys / total.as_secs_f64()
    );
}

/// `tasks` concurrent loops of single-key round trips for `duration`; prints keys/s.
async fn concurrent(b: &Arc<Bench>, tasks: usize, duration: Duration) {
    let start = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let b = Arc::clone(b);
        handles.push(tokio::spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < duration && n < 1_000_000 {
                round_trip(&b, 1).await;
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap();
    }
    println!(
        "{:<34} {:>9.0} keys/s",
        format!("enc+dec 1 key, {tasks} concurrent pairs"),
        total as f64 / start.elapsed().as_secs_f64()
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let bench = Arc::new(rt.block_on(setup()));
    let mut c = Criterion::default()
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(50)
        .configure_from_args();
    let mut group = c.benchmark_group("etsi014_mtls_loopback");
    for n in [1u32, 16, 128] {
        group.throughput(criterion::Throughput::Elements(u64::from(n)));
        group.bench_function(format!("enc_keys+dec_keys/{n}x256bit"), |bch| {
            bch.iter(|| rt.block_on(round_trip(&bench, n)));
        });
    }
    group.finish();
    c.final_summary();

    println!("\nlatency percentiles (sequential, pooled connections, mutual TLS on loopback):");
    rt.block_on(async {
        report(
            &bench,
            "enc+dec, 1 key of 256 bits",
            1,
            2000,
            Duration::from_secs(10),
        )
        .await;
        report(
            &bench,
            "enc+dec, 16 keys of 256 bits",
            16,
            1000,
            Duration::from_secs(10),
        )
        .await;
        report(
            &bench,
            "enc+dec, 128 keys of 256 bits",
            128,
            300,
            Duration::from_secs(10),
        )
        .await;
        concurrent(&bench, 4, Duration::from_secs(3)).await;
    });
    let bench = Arc::try_unwrap(bench).ok().expect("no other references");
    rt.block_on(bench.sim.shutdown());
}

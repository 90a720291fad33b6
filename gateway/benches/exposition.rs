//! The cost of one scrape's exposition (`control::exposition::render`) for a gateway with 1 and
//! with 100 hybrid peers, in both formats the endpoint serves. A scrape runs on the metrics
//! thread, never the packet thread; this is what it costs that thread (and a hub's CPU).
//!
//! Run: `cargo bench -p gateway --bench exposition`.

use criterion::{Criterion, criterion_group, criterion_main};
use gateway::control::exposition::{Format, render};
use gateway::control::status::Status;

/// A status with `peers` hybrid peers, every per-peer family filled.
fn status(peers: usize) -> Status {
    let peers = (0..peers)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "name": format!("hospital-{i:03}"), "public_key": "", "endpoint": null,
                "allowed_ips": [], "latest_handshake_unix": 1_700_000_000u64,
                "rx_bytes": 1u64 << 40, "tx_bytes": 1u64 << 40, "key_epoch": 3,
                "persistent_keepalive": null, "hybrid": "master", "epoch": 40,
                "epoch_age_seconds": 12, "key_sources": ["x25519", "mlkem", "qkd"],
                "rx_packets": 5, "tx_packets": 6, "handshakes": 7, "session_usable": true,
                "handshake_failures": {"timeout": 1}, "policy_state": "normal",
                "qkd_configured": true, "epochs_by_source": {"x25519+mlkem+qkd": 40},
                "hybrid_drops": {"bad_mac": 1}, "hybrid_rejects": {"qkd_refused": 1}
            }))
            .expect("a peer status")
        })
        .collect();
    Status {
        interface: "qgw0".into(),
        peers,
        ..Default::default()
    }
}

fn scrape(c: &mut Criterion) {
    for n in [1, 100] {
        let st = status(n);
        let bytes = render(st.clone(), Format::Text).len();
        println!("{n} peers: {bytes} bytes of text exposition");
        for (name, format) in [("text", Format::Text), ("openmetrics", Format::OpenMetrics)] {
            c.bench_function(&format!("render_{name}_{n}_peers"), |b| {
                b.iter(|| render(st.clone(), format))
            });
        }
    }
}

criterion_group!(benches, scrape);
criterion_main!(benches);

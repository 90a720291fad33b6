//! A [`Status`] as a Prometheus exposition, encoded by the Prometheus project's Rust client
//! (`prometheus-client`) in either format a scraper may ask for: text format 0.0.4
//! (prometheus.io/docs/instrumenting/exposition_formats) or OpenMetrics 1.0 (its counters are
//! declared without `_total`, its samples keep it, and it ends in `# EOF`, so a truncated scrape
//! is detected). The series are the same in both: every family with `# HELP` and `# TYPE`, base
//! units (`_seconds`, `_bytes`), `_total` counters, and labels of low cardinality only
//! (`interface`, `peer`, `reason`, `source`, `state`, `kind`, `kme`, `qkd_source`, `result`,
//! `class`). Key IDs and keys are never labels or values. The list of families is in
//! `configs/prometheus/metric-names.txt`.
//!
//! The status is a snapshot the packet thread published, so the families are collected from it
//! at each scrape (by a `Collector`, `exposition_encode.rs`): the packet thread updates no metric object.

use super::status::{PeerStatus, QkdStatus, SourceStatus, Status};
use crate::config_hybrid_kme::DEFAULT_KME_NAME;
use crate::ops::PolicyState;

#[path = "exposition_encode.rs"]
mod encode;
pub use encode::{Format, render};
use encode::{Sample, Text};

/// Every family of `st`.
fn collect(t: &mut Text, st: &Status) {
    process(t, st);
    t.family(
        "qgw_cookie_replies_sent_total",
        "counter",
        "Cookie replies sent under handshake load.",
    );
    t.sample(&[], st.cookie_replies_sent);
    t.family(
        "qgw_dropped_total",
        "counter",
        "Datagrams and packets dropped by the WireGuard layer, by reason.",
    );
    for (reason, n) in &st.drops {
        t.sample(&[("reason", reason)], n);
    }
    let all: Vec<&PeerStatus> = st.peers.iter().collect();
    wireguard_peers(t, &all);
    let hybrid: Vec<&PeerStatus> = st.peers.iter().filter(|p| p.hybrid != "off").collect();
    hybrid_peers(t, &hybrid);
    qkd_sources(t, &hybrid);
    classes::classes(t, &st.peers);
    qkd(t, st);
    daemon::audit(t, st);
    daemon::control(t, st);
    daemon::offloads(t, st);
}

fn process(t: &mut Text, st: &Status) {
    let Some(p) = &st.process else { return };
    t.family(
        "qgw_build_info",
        "gauge",
        "Build of the running qgw (always 1).",
    );
    let labels = [
        ("version", p.version.as_str()),
        ("commit", p.commit.as_str()),
    ];
    t.sample(&labels, 1u8);
    t.family(
        "qgw_start_time_seconds",
        "gauge",
        "Unix time the daemon started.",
    );
    t.sample(&[], p.start_time_unix);
    t.family(
        "qgw_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
    );
    t.sample(&[], p.uptime_seconds);
}

fn wireguard_peers(t: &mut Text, peers: &[&PeerStatus]) {
    let c = "counter";
    let g = "gauge";
    t.per_peer(
        peers,
        (
            "qgw_peer_rx_bytes_total",
            c,
            "Transport bytes received (UDP payload).",
        ),
        |p| p.rx_bytes,
    );
    t.per_peer(
        peers,
        (
            "qgw_peer_tx_bytes_total",
            c,
            "Transport bytes sent (UDP payload).",
        ),
        |p| p.tx_bytes,
    );
    t.per_peer(
        peers,
        (
            "qgw_peer_rx_packets_total",
            c,
            "Transport packets received, keepalives included.",
        ),
        |p| p.rx_packets,
    );
    t.per_peer(
        peers,
        (
            "qgw_peer_tx_packets_total",
            c,
            "Transport packets sent, keepalives included.",
        ),
        |p| p.tx_packets,
    );
    t.per_peer(
        peers,
        (
            "qgw_peer_handshakes_total",
            c,
            "WireGuard handshakes completed.",
        ),
        |p| p.handshakes,
    );
    t.per_peer_map(
        peers,
        ("qgw_peer_handshake_failures_total", c, "Handshake failures: timeout (attempt retransmitted), gave_up, hybrid_abandoned, hybrid_rejected, hybrid_key_mismatch."),
        "reason",
        |p| &p.handshake_failures,
    );
    t.per_peer(
        peers,
        (
            "qgw_peer_latest_handshake_timestamp_seconds",
            g,
            "Unix time of the last completed handshake (0: none).",
        ),
        |p| p.latest_handshake_unix.unwrap_or(0),
    );
    t.per_peer(
        peers,
        (
            "qgw_peer_key_epoch",
            g,
            "Number of the WireGuard session in force.",
        ),
        |p| p.key_epoch,
    );
    t.per_peer(
        peers,
        (
            "qgw_peer_up",
            g,
            "1 if a session that may send exists (traffic would pass now).",
        ),
        |p| u8::from(p.session_usable),
    );
}

fn hybrid_peers(t: &mut Text, peers: &[&PeerStatus]) {
    let c = "counter";
    let g = "gauge";
    t.per_peer(
        peers,
        (
            "qgw_peer_hybrid_epoch",
            g,
            "Hybrid key-agreement epoch in force (0: none yet).",
        ),
        |p| p.epoch,
    );
    let aged: Vec<&PeerStatus> = peers
        .iter()
        .copied()
        .filter(|p| p.epoch_age_seconds.is_some())
        .collect();
    t.per_peer(
        &aged,
        (
            "qgw_peer_epoch_age_seconds",
            g,
            "Age of the hybrid epoch in force.",
        ),
        |p| p.epoch_age_seconds.unwrap_or(0),
    );
    t.per_peer_map(
        peers,
        (
            "qgw_peer_epochs_total",
            c,
            "Hybrid epochs installed, by key-source combination.",
        ),
        "source",
        |p| &p.epochs_by_source,
    );
    t.family(
        "qgw_peer_epoch_sources",
        g,
        "Key-source combination of the epoch in force (1).",
    );
    for p in peers.iter().filter(|p| !p.key_sources.is_empty()) {
        let sources = p.key_sources.join("+");
        t.sample(&[("peer", &p.name), ("source", &sources)], 1u8);
    }
    t.per_peer(
        peers,
        (
            "qgw_peer_qkd_configured",
            g,
            "1 if the peer's policy asks for QKD keys.",
        ),
        |p| u8::from(p.qkd_configured),
    );
    t.family("qgw_peer_policy_state", g, "Key policy state: normal, fallback (no QKD in the keys in force) or fail_closed (traffic refused); 1 for the current one.");
    for p in peers {
        for s in PolicyState::ALL {
            let on = p.policy_state.as_deref() == Some(s.label());
            t.sample(&[("peer", &p.name), ("state", s.label())], u8::from(on));
        }
    }
    t.per_peer_map(
        peers,
        (
            "qgw_hybrid_dropped_total",
            c,
            "Hybrid key-agreement datagrams or messages dropped, by reason.",
        ),
        "reason",
        |p| &p.hybrid_drops,
    );
    t.per_peer_map(
        peers,
        (
            "qgw_hybrid_rejects_total",
            c,
            "Hybrid exchanges refused (Reject sent or received), by reason.",
        ),
        "reason",
        |p| &p.hybrid_rejects,
    );
    t.per_peer(
        peers,
        (
            "qgw_peer_pq_signature_verifications_total",
            c,
            "ML-DSA-65 verifications performed for this peer.",
        ),
        |p| p.pq_signature_verifications,
    );
    t.per_peer(
        peers,
        (
            "qgw_peer_pq_kem_operations_total",
            c,
            "ML-KEM-768 operations performed for this peer.",
        ),
        |p| p.pq_kem_operations,
    );
}

/// Each hybrid peer's QKD sources (docs/protocol.md §6.3), by position (`qkd_source`) and KME.
fn qkd_sources(t: &mut Text, peers: &[&PeerStatus]) {
    let all: Vec<(&str, String, &SourceStatus)> = (peers.iter())
        .flat_map(|p| {
            let sources = p.qkd_sources.iter().enumerate();
            sources.map(|(n, s)| (p.name.as_str(), n.to_string(), s))
        })
        .collect();
    t.family(
        "qgw_peer_qkd_source_answers_total",
        "counter",
        "KME answers for each QKD source of the peer, by result (delivered, failed).",
    );
    for (peer, n, s) in &all {
        for (result, v) in [("delivered", s.delivered), ("failed", s.failed)] {
            let labels = [("peer", *peer), ("qkd_source", n), ("kme", &s.kme)];
            t.sample(&[labels[0], labels[1], labels[2], ("result", result)], v);
        }
    }
    t.family(
        "qgw_peer_qkd_source_up",
        "gauge",
        "1 if the QKD source's last answer delivered key material (absent before the first).",
    );
    for (peer, n, s) in &all {
        if let Some(last) = &s.last {
            let up = u8::from(last == "delivered");
            t.sample(&[("peer", *peer), ("qkd_source", n), ("kme", &s.kme)], up);
        }
    }
}

/// Each KME's client counters, labelled with its name (`kme` for the single-KME form). A status
/// without `kmes` (from an older daemon) has its one KME in `qkd`.
fn qkd(t: &mut Text, st: &Status) {
    let single = st.qkd.iter().map(|q| (DEFAULT_KME_NAME, q));
    let kmes: Vec<(&str, &QkdStatus)> = if st.kmes.is_empty() {
        single.collect()
    } else {
        (st.kmes.iter())
            .map(|k| (k.name.as_str(), &k.client))
            .collect()
    };
    if kmes.is_empty() {
        return;
    }
    type Counter = fn(&QkdStatus) -> u64;
    let counters: [(&str, &str, Counter); 3] = [
        (
            "qgw_qkd_requests_total",
            "ETSI 014 requests made to the KME.",
            |q| q.requests,
        ),
        (
            "qgw_qkd_keys_fetched_total",
            "QKD keys received from the KME.",
            |q| q.keys_fetched,
        ),
        (
            "qgw_qkd_key_bytes_total",
            "Bytes of QKD key material received.",
            |q| q.key_bytes,
        ),
    ];
    for (name, help, value) in counters {
        t.family(name, "counter", help);
        for (kme, q) in &kmes {
            t.sample(&[("kme", kme)], value(q));
        }
    }
    t.family(
        "qgw_qkd_errors_total",
        "counter",
        "KME request failures, by kind.",
    );
    for (kme, q) in &kmes {
        for (kind, n) in &q.errors {
            t.sample(&[("kme", kme), ("kind", kind)], n);
        }
    }
    let h = "qgw_qkd_request_duration_seconds";
    t.family(h, "histogram", "KME request latency.");
    for (kme, q) in &kmes {
        let buckets = (q.latency_buckets.iter())
            .map(|(le_ms, n)| (le_ms.map_or(f64::INFINITY, |ms| ms as f64 / 1000.0), *n))
            .collect();
        let count = q.latency_buckets.last().map_or(0, |(_, n)| *n);
        let sum = q.latency_sum_us as f64 / 1e6;
        let labels = vec![("kme", (*kme).to_owned())];
        t.push(Sample::Histogram(labels, buckets, sum, count));
    }
    t.family(
        "qgw_qkd_prefetch_keys",
        "gauge",
        "QKD keys waiting in the prefetch buffers (the sum over the peers this site is master of).",
    );
    for (kme, q) in &kmes {
        t.sample(&[("kme", kme)], q.prefetch_keys);
    }
    t.family(
        "qgw_qkd_kme_reachable",
        "gauge",
        "1 if the last request reached the KME (absent before the first request).",
    );
    for (kme, q) in &kmes {
        if let Some(reachable) = q.kme_reachable {
            t.sample(&[("kme", kme)], u8::from(reachable));
        }
    }
}

#[path = "exposition_classes.rs"]
mod classes;
#[path = "exposition_daemon.rs"]
mod daemon;

#[cfg(test)]
#[path = "exposition_tests.rs"]
mod tests;

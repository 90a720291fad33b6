#![allow(clippy::unwrap_used)]

use super::*;
use crate::control::status::{AuditStatus, OffloadStatus, ProcessStatus, QkdStatus};

fn full_status() -> Status {
    let peer = serde_json::json!({
        "name": "site-b", "public_key": "", "endpoint": null, "allowed_ips": [],
        "latest_handshake_unix": 1_700_000_000u64, "rx_bytes": 1, "tx_bytes": 2,
        "key_epoch": 3, "persistent_keepalive": null, "hybrid": "master", "epoch": 4,
        "rx_packets": 5, "tx_packets": 6, "handshakes": 7, "session_usable": true,
        "handshake_failures": {"timeout": 1, "hybrid_abandoned": 2},
        "policy_state": "fallback", "qkd_configured": true,
        "epochs_by_source": {"x25519+mlkem": 1, "x25519+mlkem+qkd": 3},
        "qkd_sources": [
            {"kme": "kme", "peer_sae_id": "SAE_B", "last": "unavailable", "delivered": 3, "failed": 2}
        ]
    });
    let mut peer: crate::control::status::PeerStatus = serde_json::from_value(peer).unwrap();
    let telemonitoring = crate::control::status_classes::tests::telemonitoring();
    peer.classes = vec![(&telemonitoring).into()];
    Status {
        interface: "qgw0".into(),
        peers: vec![peer],
        process: Some(ProcessStatus {
            version: "0.1.0".into(),
            commit: "abc".into(),
            start_time_unix: 10,
            uptime_seconds: 20,
        }),
        qkd: Some(QkdStatus {
            requests: 3,
            keys_fetched: 8,
            key_bytes: 256,
            errors: [("timeout".to_owned(), 2)].into_iter().collect(),
            latency_buckets: vec![(Some(1), 1), (Some(5), 2), (None, 3)],
            latency_sum_us: 1_500_000,
            prefetch_keys: 4,
            kme_reachable: Some(false),
        }),
        audit: Some(AuditStatus {
            path: "/var/log/qgw/x".into(),
            records: 9,
            write_errors: 0,
        }),
        control_dropped: [("metrics".to_owned(), [("timeout".to_owned(), 4)].into())].into(),
        offloads: Some(OffloadStatus {
            in_use: vec!["tun_vnet_hdr".into(), "tun_tso".into(), "udp_gso".into()],
            tun_refused: [("too_short".to_owned(), 1)].into(),
            udp_send_dropped: 11,
            tun_segmented: 12,
            tun_coalesced: 13,
            udp_coalesced: 14,
            crypto_threads: 2,
            crypto_shared_batches: 15,
        }),
        ..Default::default()
    }
}

#[test]
fn every_documented_family_is_rendered_with_its_samples() {
    let text = render(full_status(), Format::Text);
    let p = "interface=\"qgw0\",peer=\"site-b\"";
    for line in [
        "qgw_build_info{interface=\"qgw0\",version=\"0.1.0\",commit=\"abc\"} 1".to_owned(),
        "qgw_uptime_seconds{interface=\"qgw0\"} 20".to_owned(),
        format!("qgw_peer_rx_packets_total{{{p}}} 5"),
        format!("qgw_peer_handshakes_total{{{p}}} 7"),
        format!("qgw_peer_handshake_failures_total{{{p},reason=\"hybrid_abandoned\"}} 2"),
        format!("qgw_peer_latest_handshake_timestamp_seconds{{{p}}} 1700000000"),
        format!("qgw_peer_epochs_total{{{p},source=\"x25519+mlkem+qkd\"}} 3"),
        format!("qgw_peer_policy_state{{{p},state=\"fallback\"}} 1"),
        format!("qgw_peer_policy_state{{{p},state=\"normal\"}} 0"),
        format!("qgw_peer_qkd_configured{{{p}}} 1"),
        format!("qgw_peer_up{{{p}}} 1"),
        format!("qgw_peer_qkd_source_answers_total{{{p},qkd_source=\"0\",kme=\"kme\",result=\"failed\"}} 2"),
        format!("qgw_peer_qkd_source_up{{{p},qkd_source=\"0\",kme=\"kme\"}} 0"),
        "qgw_qkd_errors_total{interface=\"qgw0\",kme=\"kme\",kind=\"timeout\"} 2".to_owned(),
        "qgw_qkd_request_duration_seconds_bucket{interface=\"qgw0\",kme=\"kme\",le=\"0.005\"} 2".to_owned(),
        "qgw_qkd_request_duration_seconds_bucket{interface=\"qgw0\",kme=\"kme\",le=\"+Inf\"} 3".to_owned(),
        "qgw_qkd_request_duration_seconds_sum{interface=\"qgw0\",kme=\"kme\"} 1.5".to_owned(),
        "qgw_qkd_request_duration_seconds_count{interface=\"qgw0\",kme=\"kme\"} 3".to_owned(),
        "qgw_qkd_kme_reachable{interface=\"qgw0\",kme=\"kme\"} 0".to_owned(),
        "qgw_audit_records_total{interface=\"qgw0\"} 9".to_owned(),
        "qgw_control_connections_dropped_total{interface=\"qgw0\",socket=\"metrics\",reason=\"timeout\"} 4".to_owned(),
        "qgw_offload_in_use{interface=\"qgw0\",offload=\"tun_tso\"} 1".to_owned(),
        "qgw_offload_in_use{interface=\"qgw0\",offload=\"tun_uso\"} 0".to_owned(),
        "qgw_tun_segmented_total{interface=\"qgw0\"} 12".to_owned(),
        "qgw_crypto_threads{interface=\"qgw0\"} 2".to_owned(),
        "qgw_crypto_shared_batches_total{interface=\"qgw0\"} 15".to_owned(),
        "qgw_tun_coalesced_total{interface=\"qgw0\"} 13".to_owned(),
        "qgw_udp_coalesced_total{interface=\"qgw0\"} 14".to_owned(),
        "qgw_udp_send_dropped_total{interface=\"qgw0\"} 11".to_owned(),
        "qgw_tun_refused_total{interface=\"qgw0\",reason=\"too_short\"} 1".to_owned(),
        format!("qgw_class_drops_total{{{p},class=\"telemonitoring\",reason=\"codel\"}} 1"),
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
}

#[test]
fn families_are_declared_once_and_counters_end_in_total() {
    let text = render(full_status(), Format::Text);
    let mut seen = std::collections::BTreeSet::new();
    for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut w = l.split(' ').skip(2);
        let (name, kind) = (w.next().unwrap(), w.next().unwrap());
        assert!(seen.insert(name.to_owned()), "{name} declared twice");
        assert_eq!(kind == "counter", name.ends_with("_total"), "{l}");
    }
}

#[test]
fn renders_counters_and_escapes_labels() {
    let st = Status {
        interface: "qgw0".into(),
        cookie_replies_sent: 7,
        drops: [("replay".to_owned(), 3)].into_iter().collect(),
        // Through JSON, so fields added later (with serde defaults) need no change here.
        peers: vec![
            serde_json::from_value(serde_json::json!({
                "name": "a\"b", "public_key": "", "endpoint": null, "allowed_ips": [],
                "latest_handshake_unix": null, "rx_bytes": 10, "tx_bytes": 20,
                "key_epoch": 2, "persistent_keepalive": null, "hybrid": "off"
            }))
            .unwrap(),
        ],
        ..Default::default()
    };
    assert_lines(
        st,
        &[
            "qgw_cookie_replies_sent_total{interface=\"qgw0\"} 7",
            "qgw_dropped_total{interface=\"qgw0\",reason=\"replay\"} 3",
            "qgw_peer_rx_bytes_total{interface=\"qgw0\",peer=\"a\\\"b\"} 10",
            "qgw_peer_key_epoch{interface=\"qgw0\",peer=\"a\\\"b\"} 2",
        ],
    );
}

/// Asserts that the text exposition of `st` has each of `lines`; returns it.
#[track_caller]
fn assert_lines(st: Status, lines: &[&str]) -> String {
    let text = render(st, Format::Text);
    for line in lines {
        assert!(text.lines().any(|l| l == *line), "missing {line}:\n{text}");
    }
    text
}

#[test]
fn hybrid_peers_export_epoch_sources_drops_and_rejects_but_no_key_id() {
    let peer = serde_json::json!({
        "name": "site-b", "public_key": "", "endpoint": null, "allowed_ips": [],
        "latest_handshake_unix": null, "rx_bytes": 0, "tx_bytes": 0, "key_epoch": 9,
        "persistent_keepalive": null, "hybrid": "master", "epoch": 7,
        "epoch_age_seconds": 3, "key_sources": ["x25519", "mlkem", "qkd"],
        "qkd_key_id": "bc490419-7d60-487f-adc1-4ddcc177c139",
        "hybrid_drops": {"bad_mac": 5}, "pq_signature_verifications": 7,
        "pq_kem_operations": 14, "hybrid_rejects": {"qkd_refused": 1}
    });
    let st = Status {
        interface: "qgw0".into(),
        peers: vec![serde_json::from_value(peer).unwrap()],
        ..Default::default()
    };
    let text = assert_lines(
        st,
        &[
            "qgw_peer_hybrid_epoch{interface=\"qgw0\",peer=\"site-b\"} 7",
            "qgw_peer_epoch_age_seconds{interface=\"qgw0\",peer=\"site-b\"} 3",
            "qgw_peer_epoch_sources{interface=\"qgw0\",peer=\"site-b\",source=\"x25519+mlkem+qkd\"} 1",
            "qgw_hybrid_dropped_total{interface=\"qgw0\",peer=\"site-b\",reason=\"bad_mac\"} 5",
            "qgw_hybrid_rejects_total{interface=\"qgw0\",peer=\"site-b\",reason=\"qkd_refused\"} 1",
            "qgw_peer_pq_signature_verifications_total{interface=\"qgw0\",peer=\"site-b\"} 7",
        ],
    );
    assert!(
        !text.contains("bc490419"),
        "a key ID is never a label or value"
    );
}

/// A bucket's `le` label moved to the end of its labels: the two encoders place it before and
/// after the family's own labels (`kme`), and label order carries no meaning.
fn le_last(line: &str) -> String {
    let Some(start) = line.find(",le=\"") else {
        return line.to_owned();
    };
    let Some(len) = line[start + 5..].find('"') else {
        return line.to_owned();
    };
    let le = &line[start..start + 5 + len + 1];
    let rest = line.replacen(le, "", 1);
    rest.replacen('}', &format!("{le}}}"), 1)
}

#[test]
fn openmetrics_has_the_same_series_counters_declared_without_total_and_an_end() {
    let text = render(full_status(), Format::Text);
    let om = render(full_status(), Format::OpenMetrics);
    let series = |t: &str| -> Vec<String> {
        let mut lines: Vec<String> =
            (t.lines().filter(|l| !l.starts_with('#')).map(le_last)).collect();
        // OpenMetrics puts a histogram's sum and count before its buckets.
        lines.sort();
        lines
    };
    assert_eq!(series(&text), series(&om));
    assert!(om.ends_with("\n# EOF\n"), "{om}");
    assert!(om.contains("\n# TYPE qgw_dropped counter\n"), "{om}");
    assert!(om.contains("\n# TYPE qgw_qkd_request_duration_seconds histogram\n"));
    assert!(!om.contains("_total counter"), "{om}");
}

#[test]
fn each_kme_and_each_source_is_labelled_with_its_name() {
    let mut st = full_status();
    let q = st.qkd.take().unwrap();
    st.kmes = ["east", "west"]
        .map(|name| crate::control::status::KmeStatus {
            name: name.into(),
            client: q.clone(),
        })
        .into();
    st.peers[0].qkd_sources = ["east", "west"]
        .map(|kme| crate::control::status::SourceStatus {
            kme: kme.into(),
            peer_sae_id: "SAE_H".into(),
            last: Some("delivered".into()),
            delivered: 1,
            failed: 0,
        })
        .into();
    let text = render(st, Format::Text);
    for line in [
        "qgw_qkd_kme_reachable{interface=\"qgw0\",kme=\"east\"} 0",
        "qgw_qkd_kme_reachable{interface=\"qgw0\",kme=\"west\"} 0",
        "qgw_qkd_requests_total{interface=\"qgw0\",kme=\"west\"} 3",
        "qgw_qkd_request_duration_seconds_count{interface=\"qgw0\",kme=\"east\"} 3",
        "qgw_peer_qkd_source_up{interface=\"qgw0\",peer=\"site-b\",qkd_source=\"1\",kme=\"west\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
}

#[test]
fn the_families_are_those_of_the_documented_list() {
    let text = render(full_status(), Format::Text);
    let served: std::collections::BTreeSet<&str> = (text.lines())
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    let names = include_str!("../../../configs/prometheus/metric-names.txt");
    let documented: std::collections::BTreeSet<&str> = (names.lines())
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(served, documented, "configs/prometheus/metric-names.txt");
}

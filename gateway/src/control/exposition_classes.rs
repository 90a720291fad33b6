//! The traffic-class families of the exposition ([`super::render`]; docs/gateway-decisions.md,
//! "Traffic classes"): per peer with classes and per class (`class` label: `telemonitoring`,
//! `telemedicine`, `imaging`, `default`), what the egress scheduler released, dropped and
//! marked, what waits now, and the queue delay (enqueue to release) as a histogram over
//! `crate::classes::stats::DELAY_BUCKETS`. The families are declared even when no peer has
//! classes, so the list of names does not depend on the configuration.

use super::{Sample, Text};
use crate::control::status::{ClassStatus, PeerStatus};

/// A class's counter or gauge.
type Get = fn(&ClassStatus) -> u64;

pub(super) fn classes(t: &mut Text, peers: &[PeerStatus]) {
    let all: Vec<(&str, &ClassStatus)> = (peers.iter())
        .flat_map(|p| p.classes.iter().map(|c| (p.name.as_str(), c)))
        .collect();
    let c = "counter";
    let g = "gauge";
    let families: [(&'static str, &str, &'static str, Get); 5] = [
        (
            "qgw_class_packets_total",
            c,
            "Inner packets of the class released to the tunnel by the egress scheduler.",
            |c| c.packets,
        ),
        (
            "qgw_class_bytes_total",
            c,
            "Inner bytes of the class released to the tunnel by the egress scheduler.",
            |c| c.bytes,
        ),
        (
            "qgw_class_ecn_marked_total",
            c,
            "Packets of the class CoDel marked Congestion Experienced instead of dropping them.",
            |c| c.ecn_marked,
        ),
        (
            "qgw_class_queued_packets",
            g,
            "Packets of the class waiting in the egress scheduler now.",
            |c| c.queued_packets,
        ),
        (
            "qgw_class_queued_bytes",
            g,
            "Bytes of the class waiting in the egress scheduler now.",
            |c| c.queued_bytes,
        ),
    ];
    for (name, kind, help, get) in families {
        t.family(name, kind, help);
        for (peer, class) in &all {
            t.sample(&[("peer", peer), ("class", &class.name)], get(class));
        }
    }
    t.family(
        "qgw_class_drops_total",
        c,
        "Packets of the class dropped at the egress scheduler, by reason: overflow (queue full) or codel (sojourn time too long, not ECN-capable).",
    );
    for (peer, class) in &all {
        for (reason, n) in [
            ("overflow", class.drops_overflow),
            ("codel", class.drops_codel),
        ] {
            let labels = [("peer", *peer), ("class", class.name.as_str())];
            t.sample(&[labels[0], labels[1], ("reason", reason)], n);
        }
    }
    t.family(
        "qgw_class_queue_delay_seconds",
        "histogram",
        "Time packets of the class waited in the egress scheduler, from enqueue to release.",
    );
    for (peer, class) in &all {
        let buckets = (class.queue_delay_buckets.iter())
            .map(|(le_us, n)| (le_us.map_or(f64::INFINITY, |us| us as f64 / 1e6), *n))
            .collect();
        let sum = class.queue_delay_sum_us as f64 / 1e6;
        let labels = vec![("peer", (*peer).to_owned()), ("class", class.name.clone())];
        t.push(Sample::Histogram(
            labels,
            buckets,
            sum,
            class.queue_delay_count(),
        ));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{Format, render};
    use crate::classes::ClassId;
    use crate::classes::stats::ClassStats;
    use crate::control::status::{ClassStatus, Status};
    use crate::control::status_classes::tests::telemonitoring;

    fn with_classes(classes: Vec<ClassStatus>) -> Status {
        let mut peer: crate::control::status::PeerStatus =
            serde_json::from_value(serde_json::json!({
                "name": "site-b", "public_key": "", "endpoint": null, "allowed_ips": [],
                "latest_handshake_unix": null, "rx_bytes": 0, "tx_bytes": 0, "key_epoch": 1,
                "persistent_keepalive": null, "hybrid": "off"
            }))
            .unwrap();
        peer.classes = classes;
        Status {
            interface: "qgw0".into(),
            peers: vec![peer],
            ..Default::default()
        }
    }

    /// The class families' lines of the text exposition, in order.
    fn class_lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| l.contains("qgw_class_")).collect()
    }

    #[test]
    fn one_class_is_exposed_exactly() {
        let st = with_classes(vec![ClassStatus::from(&telemonitoring())]);
        let text = render(st, Format::Text);
        let l = "interface=\"qgw0\",peer=\"site-b\",class=\"telemonitoring\"";
        let h = "qgw_class_queue_delay_seconds";
        let bucket = |le: &str, n: u64| format!("{h}_bucket{{{l},le=\"{le}\"}} {n}");
        let expected = [
            "# HELP qgw_class_packets_total Inner packets of the class released to the tunnel by the egress scheduler.".to_owned(),
            "# TYPE qgw_class_packets_total counter".to_owned(),
            format!("qgw_class_packets_total{{{l}}} 1204"),
            "# HELP qgw_class_bytes_total Inner bytes of the class released to the tunnel by the egress scheduler.".to_owned(),
            "# TYPE qgw_class_bytes_total counter".to_owned(),
            format!("qgw_class_bytes_total{{{l}}} 317440"),
            "# HELP qgw_class_ecn_marked_total Packets of the class CoDel marked Congestion Experienced instead of dropping them.".to_owned(),
            "# TYPE qgw_class_ecn_marked_total counter".to_owned(),
            format!("qgw_class_ecn_marked_total{{{l}}} 3"),
            "# HELP qgw_class_queued_packets Packets of the class waiting in the egress scheduler now.".to_owned(),
            "# TYPE qgw_class_queued_packets gauge".to_owned(),
            format!("qgw_class_queued_packets{{{l}}} 2"),
            "# HELP qgw_class_queued_bytes Bytes of the class waiting in the egress scheduler now.".to_owned(),
            "# TYPE qgw_class_queued_bytes gauge".to_owned(),
            format!("qgw_class_queued_bytes{{{l}}} 640"),
            "# HELP qgw_class_drops_total Packets of the class dropped at the egress scheduler, by reason: overflow (queue full) or codel (sojourn time too long, not ECN-capable).".to_owned(),
            "# TYPE qgw_class_drops_total counter".to_owned(),
            format!("qgw_class_drops_total{{{l},reason=\"overflow\"}} 1"),
            format!("qgw_class_drops_total{{{l},reason=\"codel\"}} 1"),
            format!("# HELP {h} Time packets of the class waited in the egress scheduler, from enqueue to release."),
            format!("# TYPE {h} histogram"),
            bucket("0.00025", 1000),
            bucket("0.0005", 1000),
            bucket("0.001", 1200),
            bucket("0.002", 1200),
            bucket("0.005", 1200),
            bucket("0.01", 1200),
            bucket("0.02", 1200),
            bucket("0.05", 1200),
            bucket("0.1", 1200),
            bucket("0.2", 1200),
            bucket("0.5", 1200),
            bucket("+Inf", 1204),
            format!("{h}_sum{{{l}}} 2.7505"),
            format!("{h}_count{{{l}}} 1204"),
        ];
        assert_eq!(class_lines(&text), expected, "{text}");
    }

    #[test]
    fn buckets_are_cumulative_and_the_count_is_the_inf_bucket() {
        let mut imaging = ClassStats::new(ClassId::Imaging);
        imaging.delay_buckets = [5, 0, 7, 1, 0, 0, 2, 0, 0, 9, 3, 6];
        imaging.packets = 33;
        let st = with_classes(vec![ClassStatus::from(&imaging)]);
        let text = render(st, Format::Text);
        let counts: Vec<u64> = (text.lines())
            .filter(|l| l.starts_with("qgw_class_queue_delay_seconds_bucket{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(counts, [5, 5, 12, 13, 13, 13, 15, 15, 15, 24, 27, 33]);
        let count = "qgw_class_queue_delay_seconds_count{interface=\"qgw0\",peer=\"site-b\",class=\"imaging\"} 33";
        assert!(text.lines().any(|l| l == count), "{text}");
    }

    #[test]
    fn without_classes_the_families_are_declared_with_no_samples() {
        let text = render(with_classes(Vec::new()), Format::Text);
        let lines = class_lines(&text);
        assert!(lines.iter().all(|l| l.starts_with('#')), "{text}");
        assert!(lines.contains(&"# TYPE qgw_class_queue_delay_seconds histogram"));
    }
}

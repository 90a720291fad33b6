//! Operations end to end (docs/operations.md, docs/audit.md): two hybrid sites with `qkd.policy: required`, each with its KME
//! from the simulator, `/metrics`, `/healthz`, `/readyz`, the systemd notification protocol and the
//! audit log. The metrics are checked by `promtool check metrics` (the Prometheus project's own
//! linter) while healthy and while fail-closed; the policy state, readiness and KME counters must
//! follow a KME outage at the slave and its recovery. See `netns/mod.rs` for the harness rules.
#![allow(clippy::unwrap_used)]

use crate::netns;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netns::hybrid::{SiteOptions, start_sites_opts};
use netns::lab::Lab;

/// `curl` inside `ns`: (HTTP status, body).
fn http(lab: &Lab, ns: &str, path: &str) -> (u16, String) {
    let url = format!("http://127.0.0.1:9586{path}");
    let out = lab.exec(ns, &["curl", "-s", "-m", "5", "-w", "\n%{http_code}", &url]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// `promtool check metrics` on `text`: its complaints (empty when clean).
fn promtool_check(text: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.success() {
        true => complaints.trim().to_owned(),
        false => format!("exit {:?}: {complaints}", out.status.code()),
    }
}

/// The value of the sample `series` (exact name and labels) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Waits up to `deadline` for `f` to return `Some`.
fn eventually<T>(deadline: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn notifications(sock: &UnixDatagram, until: Instant) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < until {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

#[test]
fn metrics_readiness_and_notify_follow_a_kme_outage() {
    let notify_dir = tempfile::tempdir().unwrap();
    let socket = |site: &str| notify_dir.path().join(format!("notify-{site}.sock"));
    let (sock_a, sock_b) = (
        UnixDatagram::bind(socket("a")).unwrap(),
        UnixDatagram::bind(socket("b")).unwrap(),
    );
    let notify = format!("{}/notify-{{site}}.sock", notify_dir.path().display());
    let opts = SiteOptions {
        extra_top: "metrics:\n  listen: 127.0.0.1:9586\naudit:\n  path: {dir}/{site}.audit.jsonl\n  checkpoint_seconds: 2\n",
        env: &[("NOTIFY_SOCKET", &notify), ("WATCHDOG_USEC", "1000000")],
        ..SiteOptions::default()
    };
    // Sessions are refused after 20 s instead of 180 s, so the fail-closed point comes quickly.
    let tools = ["promtool", "curl"];
    let reject = "danger_reject_after_seconds: 20";
    let Some(s) = start_sites_opts(&tools, "required", reject, &opts) else {
        return;
    };

    // systemd: READY=1 once the tunnel is configured, then watchdog pings every 0.5 s.
    for (site, sock) in [("a", &sock_a), ("b", &sock_b)] {
        let got = notifications(sock, Instant::now() + Duration::from_secs(2));
        assert!(
            got.first().is_some_and(|m| m.starts_with("READY=1\n")),
            "site {site}: first notification is READY=1: {got:?}"
        );
        let pings = got.iter().filter(|m| *m == "WATCHDOG=1").count();
        assert!(pings >= 2, "site {site}: watchdog pings in 2 s: {got:?}");
    }

    // Healthy: live, ready, clean metrics with QKD epochs and keys.
    let (ia, ib) = (s.ia.as_str(), s.ib.as_str());
    for (ns, iface) in [(&s.na, ia), (&s.nb, ib)] {
        assert_eq!(http(&s.lab, ns, "/healthz"), (200, "ok\n".to_owned()));
        assert_eq!(http(&s.lab, ns, "/readyz").0, 200, "{iface} ready");
        assert_eq!(http(&s.lab, ns, "/nonsense").0, 404);
        let (code, text) = http(&s.lab, ns, "/metrics");
        assert_eq!(code, 200);
        assert_eq!(promtool_check(&text), "", "promtool on {iface}:\n{text}");
        let p = format!("interface=\"{iface}\",peer=\"peer\"");
        for (series, min) in [
            (
                format!("qgw_peer_epochs_total{{{p},source=\"x25519+mlkem+qkd\"}}"),
                1.0,
            ),
            (
                format!("qgw_peer_policy_state{{{p},state=\"normal\"}}"),
                1.0,
            ),
            (format!("qgw_peer_handshakes_total{{{p}}}"), 1.0),
            (format!("qgw_peer_rx_packets_total{{{p}}}"), 1.0),
            (format!("qgw_peer_up{{{p}}}"), 1.0),
            (format!("qgw_peer_qkd_configured{{{p}}}"), 1.0),
            (
                format!("qgw_qkd_keys_fetched_total{{interface=\"{iface}\",kme=\"kme\"}}"),
                1.0,
            ),
            (
                format!("qgw_qkd_kme_reachable{{interface=\"{iface}\",kme=\"kme\"}}"),
                1.0,
            ),
            (
                format!(
                    "qgw_qkd_request_duration_seconds_count{{interface=\"{iface}\",kme=\"kme\"}}"
                ),
                1.0,
            ),
            (format!("qgw_uptime_seconds{{interface=\"{iface}\"}}"), 0.0),
        ] {
            let v = sample(&text, &series);
            assert!(
                v.is_some_and(|v| v >= min),
                "{series} = {v:?} (want >= {min}):\n{text}"
            );
        }
        assert!(text.contains("qgw_build_info{"), "{text}");
        // The documented list (alerts and dashboard are checked against it) is what is served.
        let served: std::collections::BTreeSet<String> = (text.lines())
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(str::to_owned)
            .collect();
        let names = include_str!("../../../configs/prometheus/metric-names.txt");
        let documented: std::collections::BTreeSet<String> = (names.lines())
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.trim().to_owned())
            .collect();
        assert_eq!(
            served, documented,
            "configs/prometheus/metric-names.txt vs /metrics"
        );
    }

    // The slave's KME goes down: keys age out, the peer fails closed, readiness says so.
    s.sim.kme_down("KME_B", true);
    let fail_closed =
        format!("qgw_peer_policy_state{{interface=\"{ia}\",peer=\"peer\",state=\"fail_closed\"}}");
    let text = eventually(Duration::from_secs(60), || {
        let (_, text) = http(&s.lab, &s.na, "/metrics");
        (sample(&text, &fail_closed) == Some(1.0)).then_some(text)
    })
    .unwrap_or_else(|| panic!("site a never fails closed: {}", s.lab.log("qa.log")));
    assert_eq!(
        promtool_check(&text),
        "",
        "promtool while fail-closed:\n{text}"
    );
    let (code, body) = http(&s.lab, &s.na, "/readyz");
    assert_eq!(
        (code, body.trim()),
        (503, "not ready: no usable session with peer")
    );
    let (_, text_b) = http(&s.lab, &s.nb, "/metrics");
    // The one-KME form's series carry kme="kme".
    let b = |name: &str| {
        sample(
            &text_b,
            &format!("{name}{{interface=\"{ib}\",kme=\"kme\"}}"),
        )
    };
    assert_eq!(b("qgw_qkd_kme_reachable"), Some(0.0), "{text_b}");
    let errors: f64 = (text_b.lines())
        .filter(|l| l.starts_with("qgw_qkd_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(errors >= 1.0, "KME errors counted at b: {text_b}");

    // Recovery: back to normal and ready without intervention.
    s.sim.kme_down("KME_B", false);
    let normal =
        format!("qgw_peer_policy_state{{interface=\"{ia}\",peer=\"peer\",state=\"normal\"}}");
    eventually(Duration::from_secs(45), || {
        let (_, text) = http(&s.lab, &s.na, "/metrics");
        (sample(&text, &normal) == Some(1.0)).then_some(())
    })
    .unwrap_or_else(|| panic!("no recovery: {}", s.lab.log("qa.log")));
    assert_eq!(http(&s.lab, &s.na, "/readyz").0, 200);
    let log = s.lab.log("qa.log");
    for line in [
        "fail-closed: traffic to this peer is refused",
        "fail-closed ended",
    ] {
        assert!(log.contains(line), "{line:?} missing from the log:\n{log}");
    }
    audit_trail_tells_the_story_and_verifies(s);
}

/// The audit log of site a after the outage: every fact is there, the chain and signatures
/// verify under the site's pinned key after a clean stop, and an altered copy does not.
fn audit_trail_tells_the_story_and_verifies(mut s: netns::hybrid::Sites) {
    let qgw = env!("CARGO_BIN_EXE_qgw");
    s.lab.stop(s.ha, "-TERM"); // site a's qgw: a clean stop writes `stop` and a signed checkpoint
    let path = s.lab.dir.join("a.audit.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&str> = records
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    for want in [
        "file_start",
        "start",
        "config_loaded",
        "policy_transition",
        "peer_up",
        "epoch_installed",
        "peer_down",
        "fail_closed_enter",
        "fail_closed_exit",
        "checkpoint",
        "stop",
    ] {
        assert!(events.contains(&want), "no {want} record in {events:?}");
    }
    assert_eq!(
        events.last(),
        Some(&"checkpoint"),
        "a clean stop ends signed"
    );
    let epochs: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["event"] == "epoch_installed")
        .collect();
    assert!(
        epochs
            .iter()
            .all(|r| r["qkd_key_ids"].as_array().is_some_and(|a| a.len() == 1))
    );
    assert!(
        epochs
            .iter()
            .all(|r| r["sources"] == serde_json::json!(["x25519", "mlkem", "qkd"]))
    );
    let key = s.lab.dir.join("a.mldsa.pub");
    let verify = |file: &std::path::Path| {
        Command::new(qgw)
            .args([
                "audit",
                "verify",
                "--key",
                key.to_str().unwrap(),
                file.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let ok = verify(&path);
    let out = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert!(
        ok.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        out.contains("0 records after the last signed checkpoint"),
        "{out}"
    );
    // An epoch record whose key ID was changed after the fact.
    let line = text
        .lines()
        .position(|l| l.contains("\"epoch_installed\""))
        .unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let id = epochs[0]["qkd_key_ids"][0].as_str().unwrap();
    lines[line] = lines[line].replacen(id, &id.chars().rev().collect::<String>(), 1);
    let altered = s.lab.dir.join("altered.jsonl");
    std::fs::write(&altered, lines.join("\n") + "\n").unwrap();
    let bad = verify(&altered);
    let msg =
        String::from_utf8_lossy(&bad.stdout).into_owned() + &String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains(&format!(":{}:", line + 1)),
        "names line {}: {msg}",
        line + 1
    );
}

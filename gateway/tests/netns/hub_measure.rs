//! Measurements of the 100-peer hub in namespaces ([`super::hub`]; docs/gateway-decisions.md
//! §11), printed, never asserted: the hub's RSS with 0 and 100 peers, its CPU time per epoch over
//! a steady window, QKD key consumed per link per hour against each link's rate, `qgw status` and
//! `/metrics` size and render time, and, after `kill -9` of the hub and a restart, the time until
//! every peer has a fresh epoch and the hub's KME requests per second at the peak.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::hub::{Hub, SPOKES, audit_path, hub_yaml, spawn_qgw, wait_up};
use super::qgw::{crash_qgw, status};
use super::traffic::in_netns;

const QGW_BIN: &str = env!("CARGO_BIN_EXE_qgw");
/// The steady window over which CPU and key consumption are measured: at the 10 s rotation
/// measuring uses, a pool (7 keys, refilled 4 at a time at 3) fetches every 40 s, so three of
/// its cycles.
const WINDOW: Duration = Duration::from_secs(120);

/// `GET /metrics` of the hub's namespace's qgw listening on 127.0.0.1:`port`: the body.
pub fn metrics(hub: &Hub, port: u16) -> String {
    try_metrics(hub, port).expect("/metrics answers")
}

/// As [`metrics`], `None` if the endpoint does not answer (yet).
fn try_metrics(hub: &Hub, port: u16) -> Option<String> {
    in_netns(&hub.ns, move || {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
        let mut text = String::new();
        c.read_to_string(&mut text).ok()?;
        Some(text.split_once("\r\n\r\n")?.1.to_owned())
    })
}

/// A field of `/proc/PID/status` in kB (`VmRSS`, `VmHWM`).
fn proc_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    (text.lines().find(|l| l.starts_with(field)))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of process `pid`, seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = text.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after.split(' ').map(|f| f.parse().unwrap_or(0)).collect();
    // Fields 14 and 15 of stat, 12 and 13 after the command's closing parenthesis (field 3 on).
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0 // USER_HZ is 100 on Linux
}

/// Epochs the hub installed since it started, over all peers.
fn epochs_installed(hub: &Hub) -> u64 {
    let st = status(&hub.lab, &hub.ns, &hub.iface);
    let peers = st["peers"].as_array().cloned().unwrap_or_default();
    (peers.iter())
        .filter_map(|p| p["epochs_by_source"].as_object())
        .flat_map(|m| m.values().filter_map(serde_json::Value::as_u64))
        .sum()
}

/// Series (sample lines) of a metrics text, and those with a `peer` label.
fn series(text: &str) -> (usize, usize) {
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty());
    let all = samples.clone().count();
    (all, samples.filter(|l| l.contains("peer=\"")).count())
}

/// The hub's process ID.
fn hub_pid(hub: &Hub) -> u32 {
    hub.lab.pid(hub.handle).expect("the hub runs")
}

/// Runs every measurement and prints it.
pub fn measure(hub: &mut Hub) {
    let rss_100 = proc_kb(hub_pid(hub), "VmRSS:");
    let (rss_0, series_0) = empty_hub(hub);
    println!(
        "hub RSS: 0 peers {rss_0} kB, 100 peers (every epoch established) {rss_100} kB: {:.1} kB per peer",
        (rss_100 as f64 - rss_0 as f64) / SPOKES as f64
    );
    render_sizes(hub, series_0);
    steady(hub);
    restart(hub);
}

/// A hub with no peer in the same namespace (its own interface, port and metrics port): its
/// RSS after 2 s and its metrics series. Stopped again.
fn empty_hub(hub: &mut Hub) -> (u64, usize) {
    let iface = format!("qz{}", hub.lab.id);
    let yaml = hub_yaml(&hub.lab, &iface, 51821, &[], None);
    let config = hub.lab.write("hub0.yaml", &yaml);
    let ns = hub.ns.clone();
    let h = spawn_qgw(&mut hub.lab, &ns, &config, "hub0.log");
    wait_up(&hub.lab, &ns, &iface, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(2));
    let rss = proc_kb(hub.lab.pid(h).unwrap(), "VmRSS:");
    let (series_0, _) = series(&metrics(hub, 9587));
    hub.lab.stop(h, "-TERM");
    (rss, series_0)
}

/// `qgw status` (text and JSON) and `/metrics` at the hub: bytes, lines, time to render.
fn render_sizes(hub: &Hub, series_0: usize) {
    for args in [
        vec!["status", &hub.iface],
        vec!["status", &hub.iface, "--json"],
    ] {
        let mut cmd = vec![QGW_BIN];
        cmd.extend(args.iter().copied());
        let start = Instant::now();
        let out = hub.lab.check(&hub.ns, &cmd);
        println!(
            "`qgw {}`: {} bytes, {} lines, {:.0?} (process start included)",
            args.join(" "),
            out.len(),
            out.lines().count(),
            start.elapsed()
        );
    }
    let start = Instant::now();
    let text = metrics(hub, 9586);
    let took = start.elapsed();
    let (all, per_peer) = series(&text);
    println!(
        "/metrics: {} bytes, {} lines, {all} series ({per_peer} with a peer label; {series_0} with no peer configured: {:.1} series per peer), {took:.0?}",
        text.len(),
        text.lines().count(),
        (all - series_0) as f64 / SPOKES as f64
    );
}

/// CPU per epoch and QKD key per link per hour over [`WINDOW`].
fn steady(hub: &Hub) {
    let pid = hub_pid(hub);
    let log = audit_path(&hub.lab.dir, 51820);
    let audit = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        (text.len(), text.lines().count())
    };
    let audit0 = audit();
    let (cpu0, epochs0, state0) = (cpu_seconds(pid), epochs_installed(hub), hub.sim.state());
    let start = Instant::now();
    std::thread::sleep(WINDOW);
    let (cpu1, epochs1, state1) = (cpu_seconds(pid), epochs_installed(hub), hub.sim.state());
    let secs = start.elapsed().as_secs_f64();
    let epochs = epochs1 - epochs0;
    let audit1 = audit();
    let verify_start = Instant::now();
    let verified = std::process::Command::new(QGW_BIN)
        .args(["audit", "verify", "--key"])
        .args([&hub.lab.dir.join("hub.mldsa.pub"), &log])
        .output()
        .is_ok_and(|o| o.status.success());
    println!(
        "audit log: {} records, {} bytes in the window: {:.1} records and {:.0} bytes per epoch; `qgw audit verify` of the whole {} kB: {} in {:.0} ms",
        audit1.1 - audit0.1,
        audit1.0 - audit0.0,
        (audit1.1 - audit0.1) as f64 / epochs.max(1) as f64,
        (audit1.0 - audit0.0) as f64 / epochs.max(1) as f64,
        audit1.0 / 1000,
        if verified { "passes" } else { "FAILS" },
        verify_start.elapsed().as_secs_f64() * 1000.0
    );
    let issued = |s: &serde_json::Value| s["stats"]["keys_issued"].as_u64().unwrap_or(0);
    println!(
        "steady {secs:.0} s: {epochs} epochs, {} QKD keys issued, hub CPU {:.2} s: {:.2} ms per epoch ({:.1} % of one core)",
        issued(&state1) - issued(&state0),
        cpu1 - cpu0,
        1000.0 * (cpu1 - cpu0) / epochs.max(1) as f64,
        100.0 * (cpu1 - cpu0) / secs
    );
    let consumed = |s: &serde_json::Value| -> BTreeMap<String, (u64, u64)> {
        (s["links"].as_array().unwrap().iter())
            .map(|l| {
                let name = format!(
                    "{}-{}",
                    l["kmes"][0].as_str().unwrap(),
                    l["kmes"][1].as_str().unwrap()
                );
                let v = |k: &str| l[k].as_u64().unwrap_or(0);
                (name, (v("consumed_bits"), v("secret_key_rate_bps")))
            })
            .collect()
    };
    let (before, after) = (consumed(&state0), consumed(&state1));
    for (link, (bits, rate)) in &after {
        let per_hour = (bits - before[link].0) as f64 * 3600.0 / secs;
        println!(
            "  {link}: {:.0} bit/h of QKD key = {:.4} % of its {rate} bit/s",
            per_hour,
            100.0 * per_hour / (*rate as f64 * 3600.0)
        );
    }
}

/// `kill -9` of the hub, a restart, and the time until every peer has a fresh epoch with QKD,
/// with the hub's KME requests per second: its `/metrics` (`qgw_peer_epoch_sources`,
/// `qgw_qkd_requests_total`) read every 20 ms until 2 s after the last peer is fresh.
fn restart(hub: &mut Hub) {
    let (ns, iface) = (hub.ns.clone(), hub.iface.clone());
    crash_qgw(&mut hub.lab, hub.handle, &ns, &iface);
    let config = hub.config.clone();
    let start = Instant::now();
    hub.handle = spawn_qgw(&mut hub.lab, &ns, &config, "hub-restarted.log");
    let mut fresh: BTreeMap<String, Duration> = BTreeMap::new();
    let mut requests: Vec<(Duration, u64)> = Vec::new();
    let mut all_fresh = None;
    while start.elapsed() < Duration::from_secs(60)
        && all_fresh.is_none_or(|t: Duration| start.elapsed() < t + Duration::from_secs(2))
    {
        std::thread::sleep(Duration::from_millis(20));
        let Some(text) = try_metrics(hub, 9586) else {
            continue;
        };
        let now = start.elapsed();
        let mut total = 0.0;
        for l in text.lines() {
            if l.starts_with("qgw_peer_epoch_sources{") && l.contains("qkd") {
                let peer = l.split("peer=\"").nth(1).and_then(|r| r.split('"').next());
                fresh.entry(peer.unwrap_or("?").to_owned()).or_insert(now);
            } else if l.starts_with("qgw_qkd_requests_total") {
                total += l
                    .rsplit(' ')
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0.0);
            }
        }
        requests.push((now, total as u64));
        if fresh.len() == SPOKES && all_fresh.is_none() {
            all_fresh = Some(now);
        }
    }
    let mut times: Vec<Duration> = fresh.values().copied().collect();
    times.sort();
    let at =
        |q: f64| times.get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1)));
    println!(
        "restart (kill -9, start again): {} of {SPOKES} peers fresh; p50 {:.2?}, p99 {:.2?}, last {:.2?} after the start ({} /metrics reads)",
        times.len(),
        at(0.5).copied().unwrap_or_default(),
        at(0.99).copied().unwrap_or_default(),
        times.last().copied().unwrap_or_default(),
        requests.len()
    );
    let peak = |window: Duration| -> f64 {
        let mut best = 0.0f64;
        for (i, (t0, n0)) in requests.iter().enumerate() {
            for (t1, n1) in &requests[i + 1..] {
                if *t1 - *t0 >= window {
                    best = best.max((n1 - n0) as f64 / (*t1 - *t0).as_secs_f64());
                    break;
                }
            }
        }
        best
    };
    println!(
        "  hub KME requests after the restart: {} in all, peak {:.0}/s over 1 s, {:.0}/s over 0.2 s",
        requests.last().map_or(0, |r| r.1),
        peak(Duration::from_secs(1)),
        peak(Duration::from_millis(200))
    );
}

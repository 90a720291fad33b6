//! Control clients cannot stall the packet path (docs/gateway-decisions.md §5, docs/operations.md
//! "Control plane limits"): a qgw pair in two namespaces, and at site a, while pings cross the
//! tunnel, trickle clients (one byte every 400 ms) on the metrics port, the status socket and
//! the UAPI socket plus a client that opens connections in bursts and never reads. The pings must
//! be answered as without them, systemd's watchdog pings (from the packet thread) must keep
//! coming, and a well-behaved client must still get its answers on all three sockets. See
//! `netns/mod.rs` for the harness and its CI rules.
#![allow(clippy::unwrap_used)]

use crate::netns;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use netns::control::{Target, hoard, trickle};
use netns::lab::{Lab, PingStats};
use netns::pair::{PairOptions, SiteSetup, start_qgw_pair};
use netns::traffic::spawn_in;

/// How long the abuse lasts, in seconds (`QGW_CONTROL_ABUSE_SECONDS` sets another, for a
/// measurement); the pings under abuse take all of it but 3 s, one every 200 ms.
const ABUSE_SECONDS: u32 = 15;
/// Pings without the abuse.
const QUIET_PINGS: u32 = 25;
/// Pings that may go unanswered under abuse: noise on a loaded machine, not a stall (before the
/// node/shell split a trickle client cost 44 %).
const LOSS_ALLOWED: u32 = 2;
/// A round trip this long means the packet path stood still (a quiet one takes well under 10 ms).
const STALL_RTT_MS: f64 = 1000.0;
/// Longest a well-behaved control request may take under abuse (answers take milliseconds).
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// Systemd asks for a watchdog ping every 1 s; qgw pings every 0.5 s. A gap this long means the
/// packet thread stood still.
const WATCHDOG_USEC: &str = "1000000";
const WATCHDOG_GAP: Duration = Duration::from_secs(2);

const METRICS: &str = "127.0.0.1:9586";
const GET_METRICS: &[u8] = b"GET /metrics HTTP/1.0\r\n\r\n";

#[test]
fn control_clients_stall_neither_packets_nor_watchdog_nor_each_other() {
    let notify_dir = tempfile::tempdir().unwrap();
    let notify_path = notify_dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let notify_env = notify_path.to_str().unwrap().to_owned();
    let env = [
        ("NOTIFY_SOCKET", notify_env.as_str()),
        ("WATCHDOG_USEC", WATCHDOG_USEC),
    ];
    let Some(mut lab) = Lab::for_test(&[], None) else {
        return;
    };
    let a_setup = SiteSetup {
        top: "metrics:\n  listen: 127.0.0.1:9586\n",
        env: &env,
        ..SiteSetup::default()
    };
    let p = start_qgw_pair(&mut lab, PairOptions::with_a(a_setup));
    let a = lab.a.clone();
    let up = lab.ping_until(&a, "10.201.0.2", Duration::from_secs(15));
    assert!(up, "tunnel up: {}", lab.log("qa.log"));

    let quiet = lab.ping_stats(&a, "10.201.0.2", QUIET_PINGS);

    let status = Target::Unix(gateway::control::status_path(&p.ia));
    let uapi = Target::Unix(gateway::control::uapi_path(&p.ia));
    let metrics = Target::Tcp(METRICS.parse().unwrap());
    let seconds = std::env::var("QGW_CONTROL_ABUSE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ABUSE_SECONDS)
        .clamp(5, 300);
    let until = Instant::now() + Duration::from_secs(seconds.into());
    let watchdog = std::thread::spawn(move || watchdog_gaps(&notify, until));
    let tricklers = [&metrics, &status, &uapi].map(|t| trickle(&a, t.clone(), until));
    let requests = [
        (metrics.clone(), GET_METRICS),
        (status.clone(), &b"status\n\n"[..]),
        (uapi.clone(), &b"get=1\n\n"[..]),
    ];
    let hoarder = hoard(&a, requests.to_vec(), until);
    let probes = spawn_in(&a, move || probe(&requests, until - Duration::from_secs(2)));
    std::thread::sleep(Duration::from_secs(1));

    let abused = lab.ping_stats(&a, "10.201.0.2", (seconds - 3) * 5);

    let answers = probes.join().unwrap();
    let reconnects = tricklers.map(|t| t.join().unwrap());
    let opened = hoarder.join().unwrap();
    let (pings, max_gap) = watchdog.join().unwrap();
    let slowest = answers.iter().filter_map(|a| a.as_ref().ok()).max();
    println!("without control clients: {quiet}");
    println!("with control clients:    {abused}");
    println!(
        "trickle clients cut off and reconnected (metrics, status, uapi): {reconnects:?}; \
         hoarder connections: {opened}; well-behaved requests: {}, slowest {slowest:?}; \
         watchdog pings: {pings}, longest gap {max_gap:?}",
        answers.len()
    );

    assert_packets_unaffected(&abused, &lab);
    let failed: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "well-behaved control requests failed under abuse: {failed:?}"
    );
    assert!(
        max_gap < WATCHDOG_GAP && pings >= seconds as usize,
        "watchdog: {pings} pings, longest gap {max_gap:?}"
    );
    assert!(
        reconnects.iter().all(|n| *n >= 2),
        "the daemon cuts off a request that has not arrived in time: {reconnects:?}"
    );
    let scrape = spawn_in(&a, move || metrics.ask(GET_METRICS, Duration::from_secs(5)));
    let (text, _) = scrape.join().unwrap().unwrap();
    assert_drops_counted(&text, &p.ia);
}

/// Well-behaved requests to each target in turn, about one per target per second until `until`:
/// how long each took, or why it failed.
fn probe(requests: &[(Target, &[u8])], until: Instant) -> Vec<Result<Duration, String>> {
    let mut out = Vec::new();
    while Instant::now() < until {
        let round = Instant::now();
        for (target, request) in requests {
            let result = target.ask(request, Duration::from_secs(5));
            out.push(match result {
                Ok((_, took)) if took < ANSWER_WITHIN => Ok(took),
                Ok((_, took)) => Err(format!("{target:?} answered after {took:?}")),
                Err(e) => Err(format!("{target:?}: {e}")),
            });
        }
        let next = round + Duration::from_secs(1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    out
}

/// `WATCHDOG=1` notifications received until `until`, and the longest time between two.
fn watchdog_gaps(sock: &UnixDatagram, until: Instant) -> (usize, Duration) {
    let (mut pings, mut last, mut max_gap) = (0, Instant::now(), Duration::ZERO);
    let mut buf = [0u8; 512];
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // What arrived before the abuse (READY=1, earlier pings) does not count.
    while sock.recv(&mut buf).is_ok() {}
    while Instant::now() < until {
        if let Ok(n) = sock.recv(&mut buf)
            && &buf[..n] == b"WATCHDOG=1"
        {
            pings += 1;
            max_gap = max_gap.max(last.elapsed());
            last = Instant::now();
        }
    }
    (pings, max_gap.max(last.elapsed()))
}

#[track_caller]
fn assert_packets_unaffected(abused: &PingStats, lab: &Lab) {
    assert!(
        abused.received + LOSS_ALLOWED >= abused.sent,
        "pings lost under control-plane abuse: {abused}\n{}",
        lab.log("qa.log")
    );
    assert!(
        abused.rtt_ms[2] < STALL_RTT_MS,
        "the packet path stalled under control-plane abuse: {abused}"
    );
}

/// The connections the daemon cut off are in the `/metrics` answer `text`: trickle clients as
/// `timeout`, the hoarder's as `evicted`.
#[track_caller]
fn assert_drops_counted(text: &str, iface: &str) {
    let count = |socket: &str, reason: &str| {
        let series = format!(
            "qgw_control_connections_dropped_total{{interface=\"{iface}\",socket=\"{socket}\",reason=\"{reason}\"}} "
        );
        (text.lines())
            .find_map(|l| l.strip_prefix(&series)?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    for socket in ["metrics", "status", "uapi"] {
        assert!(count(socket, "timeout") >= 1, "{socket} timeouts:\n{text}");
        assert!(count(socket, "evicted") >= 1, "{socket} evictions:\n{text}");
    }
}

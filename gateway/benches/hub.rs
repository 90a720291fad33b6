//! A hub at scale, in the simulation (issue 13 item 2; docs/gateway-decisions.md §11): one hub
//! node, master of `QGW_HUB_PEERS` (default 1000) hybrid peers with QKD `required` at the default
//! 120 s rotation, each peer its own X25519 + ML-DSA-65 identity and `peer_sae_id`, and that many
//! spoke nodes (slaves), on `gateway/tests/sim`'s simulated clock, network and KMEs. It prints
//! numbers; it asserts nothing about time:
//!
//! 1. memory per peer at the hub: heap bytes the hub's `Node` owns (this binary's counting
//!    allocator: bytes requested and not yet freed), empty, configured, and with every session and
//!    epoch established (measured by dropping it), divided by the peers;
//! 2. CPU per epoch at the hub: real time in the hub's `handle_*` calls and the `poll_transmit`
//!    calls that follow them (`SimNode::busy`), over the epochs it installed;
//! 3. after a hub restart (all its sessions and hybrid state gone, the spokes keep theirs), the
//!    simulated time until every peer has a fresh epoch in force, and the KME requests per second
//!    of simulated time at the peak, with the hub's requests queued as behind the daemon's gate
//!    (`qkd_link::gate::scaled_in_flight`: 4 in flight up to 256 peers, 16 from 961) and
//!    without a limit;
//! 4. QKD key consumed per link per hour, against the secret-key rates of
//!    /work/shared/reference/etsi-qkd-014.md §9.
//!
//! Run: `cargo bench -p gateway --bench hub` (release). `QGW_HUB_PEERS=100`, `QGW_HUB_MINUTES`
//! (the steady window, default 20 simulated minutes: ten rotations; per hour is scaled from it) and `QGW_HUB_KME_MS=lo-hi` (KME answer
//! latency, default 2-20: a KME on the LAN) change the conditions.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gateway::hybrid::{HybridEvent, QkdPolicy, Role};
use gateway::node::testing::{HybridLink, Site, hybrid, node};
use gateway::node::{NodeConfig, NodeEvent, PeerId};
use gateway::proto::peer::Event;

#[path = "../tests/sim/mod.rs"]
mod sim;

use sim::World;

#[path = "hub/counting.rs"]
mod counting;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// The hub's site; spoke `k` is site `2 + k`.
const HUB: Site = Site(1);
/// The default rotation (`rekey_after_seconds`, protocol.md §8).
const ROTATION: Duration = Duration::from_secs(120);
/// Bits of one QKD key (the simulated KMEs hand out 256-bit keys, as every real one here).
const KEY_BITS: u64 = 256;
/// The daemon's `FetchGate` for `peers` master pools: `enc_keys` requests in flight at most (§11).
fn gate(peers: usize) -> usize {
    qkd_link::gate::scaled_in_flight(peers)
}
/// How long a phase may take in simulated time before the bench gives up on it and says so.
const PHASE_LIMIT: Duration = Duration::from_secs(300);

fn spoke(k: usize) -> Site {
    Site(u16::try_from(2 + k).expect("at most 65533 spokes"))
}

fn hub_config(peers: usize) -> NodeConfig {
    let links: Vec<_> = (0..peers)
        .map(|k| HybridLink {
            peer: spoke(k),
            role: Role::Master,
            policy: QkdPolicy::Required,
            rekey_after: ROTATION,
        })
        .collect();
    hybrid(HUB, &links)
}

fn spoke_config(k: usize) -> NodeConfig {
    let link = HybridLink {
        peer: HUB,
        role: Role::Slave,
        policy: QkdPolicy::Required,
        rekey_after: ROTATION,
    };
    hybrid(spoke(k), &[link])
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn kme_latency() -> (Duration, Duration) {
    let spec = std::env::var("QGW_HUB_KME_MS").unwrap_or_else(|_| "2-20".into());
    let (lo, hi) = spec.split_once('-').unwrap_or((&spec, &spec));
    let ms = |s: &str| Duration::from_millis(s.trim().parse().expect("QGW_HUB_KME_MS=lo-hi"));
    (ms(lo), ms(hi))
}

/// What the hub (node 0) did in simulated time, read from the world's events (which it clears).
#[derive(Debug, Default)]
struct HubLog {
    /// Per peer: when its first session keyed by an epoch of this phase was confirmed.
    fresh: BTreeMap<PeerId, Instant>,
    /// Epochs the hub installed.
    epochs: u64,
    /// Sessions the hub confirmed with a hybrid PSK.
    sessions: u64,
    /// Exchanges blocked for want of a QKD key (`QkdBlocked`), abandoned or rejected.
    blocked: u64,
    abandoned: u64,
    rejected: u64,
}

impl HubLog {
    fn take(&mut self, w: &mut World) {
        for (at, i, e) in w.events.drain(..) {
            if i != 0 {
                continue;
            }
            match e {
                NodeEvent::Session {
                    peer,
                    event:
                        Event::SessionConfirmed {
                            psk_id: Some(_), ..
                        },
                } => {
                    self.sessions += 1;
                    self.fresh.entry(peer).or_insert(at);
                }
                NodeEvent::Hybrid { event, .. } => match event {
                    HybridEvent::EpochInstalled(_) => self.epochs += 1,
                    HybridEvent::QkdBlocked { .. } => self.blocked += 1,
                    HybridEvent::ExchangeAbandoned { .. } => self.abandoned += 1,
                    HybridEvent::Rejected { .. } => self.rejected += 1,
                    _ => {}
                },
                _ => {}
            }
        }
        // Nobody replays in this bench: the recording would only grow.
        w.net.recorded.clear();
    }
}

/// Runs `w` in 100 ms slices until every one of `peers` has a fresh epoch in force at the hub
/// (or [`PHASE_LIMIT`] passed); the log of the phase.
fn until_all_fresh(w: &mut World, peers: usize) -> HubLog {
    let mut log = HubLog::default();
    let start = w.now;
    while log.fresh.len() < peers && w.now < start + PHASE_LIMIT {
        w.run_for(Duration::from_millis(100));
        log.take(w);
    }
    log
}

/// Runs `w` for `d` in 1 s slices; the log.
fn run_logged(w: &mut World, d: Duration) -> HubLog {
    let mut log = HubLog::default();
    let end = w.now + d;
    while w.now < end {
        w.run_until(end.min(w.now + Duration::from_secs(1)));
        log.take(w);
    }
    log
}

/// The hub's crypto work so far, summed over its peers: (signatures, verifications, ML-KEM
/// operations, KME requests).
/// What `hub_ops` counted between `before` and `now`, per epoch.
fn per_epoch(now: [u64; 4], before: [u64; 4], epochs: u64) -> [f64; 4] {
    std::array::from_fn(|i| (now[i] - before[i]) as f64 / epochs.max(1) as f64)
}

fn hub_ops(w: &World) -> [u64; 4] {
    let hub = &w.nodes[0].node;
    let mut sum = [0; 4];
    for id in hub.peer_ids() {
        if let Some(s) = hub.hybrid_peer(id).map(|h| h.stats()) {
            sum[0] += s.signatures;
            sum[1] += s.signature_verifications;
            sum[2] += s.kem_operations;
            sum[3] += s.kme_requests;
        }
    }
    sum
}

/// Peak KME requests per second of simulated time since `from`: the highest count in any whole
/// second and in any 100 ms (×10), of the hub's KME and of all KMEs together; and the totals.
fn kme_peaks(w: &World, from: Instant) -> String {
    let peak = |hub_only: bool, slice: Duration| {
        let mut buckets: BTreeMap<u128, u64> = BTreeMap::new();
        for (at, site) in &w.kmes.asked {
            if (!hub_only || *site == HUB.0) && *at >= from {
                *buckets
                    .entry((*at - from).as_nanos() / slice.as_nanos())
                    .or_default() += 1;
            }
        }
        let max = buckets.values().copied().max().unwrap_or(0);
        max * (Duration::from_secs(1).as_nanos() / slice.as_nanos()) as u64
    };
    let total = |hub_only: bool| {
        (w.kmes.asked.iter())
            .filter(|(at, site)| (!hub_only || *site == HUB.0) && *at >= from)
            .count()
    };
    let (s, ds) = (Duration::from_secs(1), Duration::from_millis(100));
    format!(
        "hub's KME {} requests, peak {}/s (per 1 s) {}/s (per 100 ms); all KMEs {} requests, peak {}/s {}/s",
        total(true),
        peak(true, s),
        peak(true, ds),
        total(false),
        peak(false, s),
        peak(false, ds)
    )
}

/// Percentiles of the times since `from` at which the peers got a fresh epoch.
fn spread(log: &HubLog, from: Instant, peers: usize) -> String {
    let mut t: Vec<Duration> = log.fresh.values().map(|at| *at - from).collect();
    t.sort();
    if t.is_empty() {
        return "no peer got a fresh epoch".into();
    }
    let p = |q: f64| t[((t.len() - 1) as f64 * q).round() as usize];
    format!(
        "{}/{peers} peers fresh; p50 {:.2?} p90 {:.2?} p99 {:.2?} last {:.2?}",
        t.len(),
        p(0.5),
        p(0.9),
        p(0.99),
        t[t.len() - 1]
    )
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn proc_status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .map(|l| l[field.len()..].trim().to_owned())
        })
        .unwrap_or_else(|| "?".into())
}

/// Restarts the hub (a crash: every session and all hybrid state gone; the spokes keep theirs),
/// with the hub's KME requests limited to `gate` in flight (0: no limit), and reports how long
/// until every peer has a fresh epoch again and the KME load meanwhile.
fn restart(w: &mut World, peers: usize, gate: usize, label: &str) {
    w.kmes.max_in_flight = gate;
    w.kmes.asked.clear();
    w.crash(0);
    w.restart(0, hub_config(peers));
    let (from, wall, busy) = (w.now, Instant::now(), w.nodes[0].busy);
    let log = until_all_fresh(w, peers);
    println!(
        "restart, {label}: {}; hub busy {:.2?}; {} (wall {:.1?})",
        spread(&log, from, peers),
        w.nodes[0].busy - busy,
        kme_peaks(w, from),
        wall.elapsed()
    );
    println!(
        "  exchanges blocked for a QKD key {}, abandoned {}, rejected {}",
        log.blocked, log.abandoned, log.rejected
    );
}

fn main() {
    let peers: usize = env("QGW_HUB_PEERS", 1000);
    let minutes: u64 = env("QGW_HUB_MINUTES", 20);
    let latency = kme_latency();
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "hub bench: {peers} peers, hub master of all, QKD required, rotation {ROTATION:?}, \
         KME latency {latency:?}, clean 1 ms network; cores {}, load average {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        loadavg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    // 1a. The hub's heap, empty and configured (no session yet).
    let now = Instant::now();
    let before = counting::live();
    let empty = node(now, hybrid(HUB, &[]), 1);
    let empty_bytes = counting::live() - before;
    drop(empty);
    let before = counting::live();
    let configured = node(now, hub_config(peers), 1);
    let configured_bytes = counting::live() - before;
    drop(configured);

    // The world: the hub (node 0) and its spokes, all starting now.
    let wall = Instant::now();
    let mut w = World::new(13);
    w.kmes.latency = latency;
    w.kmes.max_in_flight = gate(peers);
    w.add(HUB, hub_config(peers));
    for k in 0..peers {
        w.add(spoke(k), spoke_config(k));
    }
    println!(
        "world built: {peers} spokes + hub, live heap {:.1} MiB, RSS {} (wall {:.1?})",
        mib(counting::live()),
        proc_status("VmRSS:"),
        wall.elapsed()
    );

    // First start of everything: every peer's epoch 1.
    let (wall, from, steps) = (Instant::now(), w.now, w.steps);
    let (ops0, issued0) = (hub_ops(&w), w.kmes.issued);
    let log = until_all_fresh(&mut w, peers);
    let busy = w.nodes[0].busy;
    println!(
        "first start: {}; hub busy {busy:.2?} for {} epochs = {:.3?}/epoch; {} (steps {}, wall {:.1?})",
        spread(&log, from, peers),
        log.epochs,
        busy / u32::try_from(log.epochs.max(1)).unwrap_or(u32::MAX),
        kme_peaks(&w, from),
        w.steps - steps,
        wall.elapsed()
    );
    let [sign, verify, kem, kme] = per_epoch(hub_ops(&w), ops0, log.epochs);
    println!(
        "  hub per epoch: {sign:.2} signatures, {verify:.2} verifications, {kem:.2} ML-KEM ops, {kme:.2} KME requests; keys issued {}",
        w.kmes.issued - issued0
    );

    // 2 and 4. The steady state: rotation every 120 s per peer for `minutes`.
    w.kmes.asked.clear();
    let window = Duration::from_secs(60 * minutes);
    let (wall, from, steps) = (Instant::now(), w.now, w.steps);
    let (busy, transmit) = (w.nodes[0].busy, w.nodes[0].busy_transmit);
    let issued = w.kmes.issued;
    let ops0 = hub_ops(&w);
    let log = run_logged(&mut w, window);
    let busy = w.nodes[0].busy - busy;
    let transmit = w.nodes[0].busy_transmit - transmit;
    let epochs = log.epochs.max(1);
    println!(
        "steady {minutes} min: hub installed {} epochs ({} sessions), busy {busy:.2?} = {:.3?}/epoch \
         (of which poll_transmit {transmit:.2?}); {} (steps {}, wall {:.1?})",
        log.epochs,
        log.sessions,
        busy / u32::try_from(epochs).unwrap_or(u32::MAX),
        kme_peaks(&w, from),
        w.steps - steps,
        wall.elapsed()
    );
    let [sign, verify, kem, _] = per_epoch(hub_ops(&w), ops0, epochs);
    println!(
        "  hub per epoch: {sign:.2} signatures, {verify:.2} verifications, {kem:.2} ML-KEM ops; blocked {}, abandoned {}, rejected {}",
        log.blocked, log.abandoned, log.rejected
    );
    let keys = w.kmes.issued - issued;
    let per_link_hour = keys as f64 / peers as f64 * 60.0 / minutes as f64;
    let bits = per_link_hour * KEY_BITS as f64;
    println!(
        "QKD key: {keys} keys issued in {minutes} min = {per_link_hour:.1} keys = {bits:.0} bit per link per hour \
         = {:.2} bit/s per link, {:.0} bit/s for the hub's {peers} links together",
        bits / 3600.0,
        bits / 3600.0 * peers as f64
    );
    for (profile, rate) in [
        ("long-100km, 1 kb/s", 1e3),
        ("long-100km, 10 kb/s", 1e4),
        ("commodity-25km, 20 kb/s", 2e4),
        ("metro-50km, 0.3 Mb/s", 3e5),
        ("lab-10km, 10 Mb/s", 1e7),
    ] {
        println!(
            "  vs {profile}: one link uses {:.4} % of it; {peers} links over one such link {:.2} %",
            100.0 * bits / 3600.0 / rate,
            100.0 * bits / 3600.0 * peers as f64 / rate
        );
    }

    // 1b. The hub's heap with every session and epoch established: what dropping it frees.
    w.crash(0);
    let old = std::mem::replace(&mut w.nodes[0].node, node(w.now, hybrid(HUB, &[]), 1));
    let before = counting::live();
    drop(old);
    let established_bytes = before - counting::live();
    println!(
        "hub heap: empty {empty_bytes} B; configured {configured_bytes} B = {} B/peer; \
         established {established_bytes} B = {} B/peer (process: live heap {:.1} MiB, RSS {}, peak RSS {})",
        (configured_bytes - empty_bytes) / peers,
        (established_bytes - empty_bytes) / peers,
        mib(counting::live()),
        proc_status("VmRSS:"),
        proc_status("VmHWM:")
    );

    // 3. Hub restarts: with the daemon's gate, then without a limit.
    let label = format!("hub's KME requests gated at {} in flight", gate(peers));
    restart(&mut w, peers, gate(peers), &label);
    restart(&mut w, peers, 0, "no limit on the hub's KME requests");
    println!("total steps {}", w.steps);
}

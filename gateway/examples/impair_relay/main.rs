//! impair_relay: an impairing UDP relay for the bench scripts (`gateway/bench/impaired.sh`), for
//! kernels without `sch_netem`. It sits between two tunnel endpoints A and B: what A sends to
//! `--a-listen` goes to `--b-peer` from `--b-listen`, and back. Each datagram is dropped with
//! `--loss-pct`, released after `--delay-ms` plus up to `--jitter-ms`, and with `--reorder-pct`
//! held back `--reorder-ms` longer so that later datagrams overtake it. Datagrams from any other
//! source are counted and ignored: it only ever sends to the two configured peers. It is bounded
//! by `--max-seconds` and `--max-datagrams`, and by `--queue` datagrams waiting at once (more are
//! dropped as `queue`). Std only; the decisions take an injected clock and a seeded RNG, so they
//! are unit-tested (`decide.rs`) without sockets or sleeps.
//!
//! Output: `--stats FILE` (key=value, rewritten every 250 ms and at exit) and `--drops FILE`
//! (one line per dropped datagram: `unix_ms dir len reason`, dir `a2b`/`b2a`, reason
//! `loss`/`queue`).
//!
//!   impair_relay --a-listen 10.210.1.2:51820 --a-peer 10.210.1.1:51820 \
//!     --b-listen 10.210.2.1:51820 --b-peer 10.210.2.2:51820 --loss-pct 2 --delay-ms 20 \
//!     --seed 7 --max-seconds 120 --stats relay.stats --drops relay.drops

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod decide;

use decide::{Dir, Impairment, Profile, Schedule, Verdict};

/// What the relay counts, per direction (in the stats file as `a2b_received`, ...).
#[derive(Debug, Clone, Copy)]
enum Counter {
    Received,
    Forwarded,
    Lost,
    QueueFull,
    Held,
    Foreign,
    SendErrors,
}
const COUNTERS: [&str; 7] = [
    "received",
    "forwarded",
    "lost",
    "queue_full",
    "held",
    "foreign",
    "send_errors",
];
const DIRS: [&str; 2] = ["a2b", "b2a"];

struct Shared {
    start: Instant,
    schedule: Mutex<Schedule>,
    wake: Condvar,
    stats: [[AtomicU64; COUNTERS.len()]; 2],
    drops: Option<Mutex<BufWriter<File>>>,
    /// (socket to send from, destination) per direction.
    out: [(UdpSocket, SocketAddr); 2],
    stop: AtomicBool,
}

impl Shared {
    fn count(&self, dir: Dir, counter: Counter) {
        self.stats[dir as usize][counter as usize].fetch_add(1, Relaxed);
    }
    fn send(&self, dir: Dir, bytes: &[u8]) {
        let (sock, to) = &self.out[dir as usize];
        let sent = sock.send_to(bytes, to).is_ok();
        self.count(
            dir,
            if sent {
                Counter::Forwarded
            } else {
                Counter::SendErrors
            },
        );
    }
    fn log_drop(&self, dir: Dir, len: usize, reason: &str) {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH);
        let ms = since_epoch.unwrap_or_default().as_millis();
        if let Some(Ok(mut w)) = self.drops.as_ref().map(Mutex::lock) {
            let _ = writeln!(w, "{ms} {} {len} {reason}", DIRS[dir as usize]);
        }
    }
    fn stats_text(&self) -> String {
        let mut s = format!("elapsed_ms={}\n", self.start.elapsed().as_millis());
        for (d, counters) in self.stats.iter().enumerate() {
            for (c, value) in counters.iter().enumerate() {
                s += &format!("{}_{}={}\n", DIRS[d], COUNTERS[c], value.load(Relaxed));
            }
        }
        s
    }
}

/// Receives from `sock` (only from `peer`) and impairs towards the other side.
fn receive(shared: &Shared, sock: &UdpSocket, peer: SocketAddr, dir: Dir, mut imp: Impairment) {
    let mut buf = vec![0u8; 65536];
    while !shared.stop.load(Relaxed) {
        // A read timeout (no datagram) comes back here to check `stop`.
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if from != peer {
            shared.count(dir, Counter::Foreign);
            continue;
        }
        shared.count(dir, Counter::Received);
        let now = shared.start.elapsed();
        match imp.decide(now) {
            Verdict::Drop => {
                shared.count(dir, Counter::Lost);
                shared.log_drop(dir, n, "loss");
            }
            Verdict::Deliver { at, held: false } if at <= now => shared.send(dir, &buf[..n]),
            Verdict::Deliver { at, held } => {
                let mut schedule = shared.schedule.lock();
                if !schedule
                    .as_mut()
                    .is_ok_and(|s| s.push(at, dir, buf[..n].to_vec()))
                {
                    shared.count(dir, Counter::QueueFull);
                    shared.log_drop(dir, n, "queue");
                } else if held {
                    shared.count(dir, Counter::Held);
                }
                shared.wake.notify_one();
            }
        }
    }
}

/// Sends queued datagrams when they are due.
fn release(shared: &Shared) {
    while !shared.stop.load(Relaxed) {
        let Ok(mut schedule) = shared.schedule.lock() else {
            return;
        };
        let now = shared.start.elapsed();
        if let Some((dir, bytes)) = schedule.pop_due(now) {
            drop(schedule);
            shared.send(dir, &bytes);
        } else {
            let wait = schedule
                .next_due()
                .map_or(Duration::from_millis(100), |at| at - now);
            let _ = shared.wake.wait_timeout(schedule, wait);
        }
    }
}

type Error = Box<dyn std::error::Error>;

/// `--key value` options, each taken once.
struct Args(HashMap<String, String>);

impl Args {
    fn get<T: std::str::FromStr>(&mut self, key: &str, default: Option<&str>) -> Result<T, Error> {
        let value = self.0.remove(key).or(default.map(str::to_owned));
        let value = value.ok_or(format!("--{key} is required"))?;
        Ok(value
            .parse()
            .map_err(|_| format!("--{key}: cannot parse {value:?}"))?)
    }
    fn ms(&mut self, key: &str, default: &str) -> Result<Duration, Error> {
        Ok(Duration::from_secs_f64(
            self.get::<f64>(key, Some(default))?.max(0.0) / 1000.0,
        ))
    }
}

fn run() -> Result<(), Error> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut a = Args(HashMap::new());
    for pair in raw.chunks(2) {
        match pair {
            [k, v] if k.starts_with("--") => a.0.insert(k[2..].to_owned(), v.clone()),
            _ => return Err(format!("expected --key value pairs, got {pair:?}").into()),
        };
    }
    let sock_a = UdpSocket::bind(a.get::<SocketAddr>("a-listen", None)?)?;
    let sock_b = UdpSocket::bind(a.get::<SocketAddr>("b-listen", None)?)?;
    let peer_a: SocketAddr = a.get("a-peer", None)?;
    let peer_b: SocketAddr = a.get("b-peer", None)?;
    let profile = Profile {
        loss_pct: a.get("loss-pct", Some("0"))?,
        delay: a.ms("delay-ms", "0")?,
        jitter: a.ms("jitter-ms", "0")?,
        reorder_pct: a.get("reorder-pct", Some("0"))?,
        reorder_hold: a.ms("reorder-ms", "15")?,
    };
    let seed: u64 = a.get("seed", Some("1"))?;
    let cap: usize = a.get("queue", Some("4096"))?;
    let max_time = Duration::from_secs(a.get("max-seconds", None)?);
    let max_datagrams: u64 = a.get("max-datagrams", Some("10000000"))?;
    let stats_path: String = a.get("stats", Some(""))?;
    let drops_path: String = a.get("drops", Some(""))?;
    if let Some(k) = a.0.keys().next() {
        return Err(format!("unknown option --{k}").into());
    }
    let drops = match drops_path.as_str() {
        "" => None,
        path => Some(Mutex::new(BufWriter::new(File::create(path)?))),
    };
    for s in [&sock_a, &sock_b] {
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
    }
    let shared = Arc::new(Shared {
        start: Instant::now(),
        schedule: Mutex::new(Schedule::new(cap)),
        wake: Condvar::new(),
        stats: Default::default(),
        drops,
        out: [(sock_b.try_clone()?, peer_b), (sock_a.try_clone()?, peer_a)],
        stop: AtomicBool::new(false),
    });
    // Each direction its own RNG stream, so its decisions do not depend on the other's traffic.
    let imp = |d: u64| Impairment::new(profile, seed ^ d.wrapping_mul(0x9E37_79B9));
    let mut threads = Vec::new();
    for (sock, peer, dir, imp) in [
        (sock_a, peer_a, Dir::AtoB, imp(1)),
        (sock_b, peer_b, Dir::BtoA, imp(2)),
    ] {
        let sh = Arc::clone(&shared);
        threads.push(std::thread::spawn(move || {
            receive(&sh, &sock, peer, dir, imp)
        }));
    }
    let sh = Arc::clone(&shared);
    threads.push(std::thread::spawn(move || release(&sh)));
    let write_stats = || {
        if let Some(Ok(mut w)) = shared.drops.as_ref().map(Mutex::lock) {
            let _ = w.flush();
        }
        if !stats_path.is_empty() {
            let tmp = format!("{stats_path}.tmp");
            let _ = std::fs::write(&tmp, shared.stats_text())
                .and_then(|()| std::fs::rename(&tmp, &stats_path));
        }
    };
    let received = || {
        shared
            .stats
            .iter()
            .map(|d| d[Counter::Received as usize].load(Relaxed))
            .sum::<u64>()
    };
    while shared.start.elapsed() < max_time && received() < max_datagrams {
        std::thread::sleep(Duration::from_millis(250));
        write_stats();
    }
    shared.stop.store(true, Relaxed);
    shared.wake.notify_all();
    for t in threads {
        let _ = t.join();
    }
    write_stats();
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("impair_relay: {e}");
        std::process::exit(2);
    }
}

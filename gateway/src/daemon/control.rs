//! The control thread and the metrics thread: the first serves the status socket and the
//! WireGuard UAPI socket (`crate::control`, through its event loop `crate::control::server`), the
//! second the metrics endpoint (`crate::control::metrics`), both off the packet thread. It reads the status the packet thread last published ([`Published`]) and completes it
//! with what only the daemon knows (process, KME client, audit log and control-connection
//! counters); a `wg set` goes to the packet thread as a [`Command`] and waits for its answer there.
//! The packet thread never waits for this thread, and this thread never waits for a client: the
//! only waits here are bounded waits for the packet thread (a refreshed status, a `wg set`).
//!
//! Every answer is a zeroizing [`Message`]: a UAPI `get=1` answer holds the private key (issue 11,
//! property 10). The UAPI's zeroizing answer becomes one without a copy, and of a `set=1` only the
//! `errno=` line is logged.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::control::conn::Message;
use crate::control::metrics::{self, Endpoint, MetricsThread};
use crate::control::server::{Answer, Drops, Server, Socket};
use crate::control::status::{
    AuditStatus, KmeStatus, ProcessStatus, QkdStatus, Status, asks_for_status,
};
use crate::control::uapi::{self, Device, Plan, Target};
use crate::control::{Listener, status_path, uapi_path};
use crate::proto::secret::Secret;

/// Longest wait for the packet thread to apply a `wg set`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// `errno` when the packet thread does not answer.
const EIO: i32 = 5;
/// A published status younger than this answers a request as it is; an older one is refreshed
/// first, so `qgw status`, `wg show` and a scrape see counters at most this old. Refreshes are
/// thereby also bounded to one per this interval, whatever clients do.
const FRESH: Duration = Duration::from_millis(20);
/// Longest wait for a refreshed status (a stalled packet thread answers with the last one).
const REFRESH_TIMEOUT: Duration = Duration::from_millis(100);

/// The git commit the binary was built from (`build.rs`), `unknown` outside a checkout.
pub const COMMIT: &str = match option_env!("QGW_GIT_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

/// What the packet thread publishes and the control thread reads: the node's latest status and
/// when it was published (the liveness of the packet thread).
#[derive(Debug, Default)]
pub struct Published {
    status: Mutex<(Arc<Status>, Option<Instant>)>,
    newer: Condvar,
}

impl Published {
    /// Replaces the status (the lock is held only to swap a pointer).
    pub fn publish(&self, status: Status) {
        let status = (Arc::new(status), Some(Instant::now()));
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
        self.newer.notify_all();
    }

    fn latest(&self) -> Arc<Status> {
        Arc::clone(&self.status.lock().unwrap_or_else(|p| p.into_inner()).0)
    }

    /// How long ago the status was published.
    fn age(&self) -> Duration {
        let at = self.status.lock().unwrap_or_else(|p| p.into_inner()).1;
        at.map_or(Duration::MAX, |t| t.elapsed())
    }

    /// Waits (at most `timeout`) for a status published after `since`.
    fn wait_newer(&self, since: Instant, timeout: Duration) {
        let guard = self.status.lock().unwrap_or_else(|p| p.into_inner());
        let stale = |s: &mut (Arc<Status>, Option<Instant>)| s.1.is_none_or(|t| t <= since);
        let _ = self.newer.wait_timeout_while(guard, timeout, stale);
    }
}

/// Counters the audit thread keeps for the status.
#[derive(Debug, Default)]
pub struct AuditCounters {
    /// Where the log is written.
    pub path: String,
    /// Records written.
    pub records: AtomicU64,
    /// Records the log could not write.
    pub write_errors: AtomicU64,
    /// Records dropped before the audit thread took them (its queue was full); the log
    /// announces them as `records_lost`.
    pub lost: AtomicU64,
}

/// A request from the control plane that only the packet thread may carry out.
#[derive(Debug)]
pub enum Command {
    /// Apply a checked `wg set` plan; answer `Ok` or an errno.
    Uapi(Plan, Sender<Result<(), i32>>),
    /// Publish the status now (a client asked and the published one is not fresh).
    Publish,
}

/// Everything the control thread reads, and the way back to the packet thread.
#[derive(Debug)]
pub struct Shared {
    /// Interface name.
    pub interface: String,
    /// Bound UDP port.
    pub listen_port: u16,
    /// The private key, for the UAPI's `get=1` (root-only socket, as wireguard-go).
    pub private_key: Secret<32>,
    /// The node's published status.
    pub published: Arc<Published>,
    /// Each KME's name and client counters, in `qkd:` order (empty without a KME).
    pub kmes: Vec<(String, Arc<qkd_link::Metrics>)>,
    /// The audit thread's counters, with an audit log.
    pub audit: Option<Arc<AuditCounters>>,
    /// When the daemon started.
    pub started: Instant,
    /// The same, in Unix seconds.
    pub started_unix: u64,
    /// Commands for the packet thread.
    pub commands: Sender<Command>,
    /// The byte that wakes the packet thread for a command.
    pub wake: UnixStream,
}

impl Shared {
    /// Hands `command` to the packet thread.
    fn send(&self, command: Command) -> Result<(), i32> {
        self.commands.send(command).map_err(|_| EIO)?;
        let _ = (&self.wake).write(&[1]);
        Ok(())
    }

    /// The node's status, refreshed first unless it is fresh.
    fn node_status(&self) -> Arc<Status> {
        if self.published.age() >= FRESH {
            let asked = Instant::now();
            if self.send(Command::Publish).is_ok() {
                self.published.wait_newer(asked, REFRESH_TIMEOUT);
            }
        }
        self.published.latest()
    }

    /// The full status: the node's, with the daemon's fields.
    fn status(&self, drops: &Drops) -> Status {
        let mut st = Status::clone(&self.node_status());
        st.interface = self.interface.clone();
        st.listen_port = self.listen_port;
        st.process = Some(ProcessStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            commit: COMMIT.to_owned(),
            start_time_unix: self.started_unix,
            uptime_seconds: self.started.elapsed().as_secs(),
        });
        st.kmes = (self.kmes.iter())
            .map(|(name, m)| KmeStatus {
                name: name.clone(),
                client: QkdStatus::from_snapshot(&m.snapshot()),
            })
            .collect();
        st.qkd = st.kmes.first().map(|k| k.client.clone());
        st.audit = self.audit.as_ref().map(|a| AuditStatus {
            path: a.path.clone(),
            records: a.records.load(Ordering::Relaxed),
            write_errors: a.write_errors.load(Ordering::Relaxed) + a.lost.load(Ordering::Relaxed),
        });
        st.control_dropped = drops.snapshot();
        st
    }
}

/// The interface's control sockets and metrics endpoint, bound before the daemon touches the
/// network.
#[derive(Debug)]
pub struct Listeners {
    control: Vec<(Socket, Listener)>,
    metrics: Option<Endpoint>,
}

impl Listeners {
    /// Binds the status socket of interface `name`, its UAPI socket if asked, and the metrics
    /// endpoint. A second instance for the same interface fails here, untouched.
    pub fn bind(
        name: &str,
        uapi: bool,
        metrics: Option<std::net::SocketAddr>,
    ) -> std::io::Result<Self> {
        let mut control = vec![(Socket::Status, Listener::bind(&status_path(name), 0o700)?)];
        if uapi {
            control.push((Socket::Uapi, Listener::bind(&uapi_path(name), 0o755)?));
        }
        let metrics = metrics.map(Endpoint::bind).transpose()?;
        Ok(Self { control, metrics })
    }
}

/// The running control thread, and the metrics thread if there is an endpoint.
#[derive(Debug)]
pub struct ControlThread {
    stop: UnixStream,
    thread: Option<JoinHandle<()>>,
    metrics: Option<MetricsThread>,
}

impl ControlThread {
    /// Starts serving.
    pub fn start(listeners: Listeners, shared: Shared) -> std::io::Result<Self> {
        let mut served: Vec<Socket> = listeners.control.iter().map(|(s, _)| *s).collect();
        served.extend(listeners.metrics.as_ref().map(|_| Socket::Metrics));
        let drops = Arc::new(Drops::new(&served));
        let answers = Arc::new(Answers { shared, drops });
        let metrics = match listeners.metrics {
            Some(endpoint) => {
                let source = Arc::clone(&answers) as Arc<dyn metrics::Source>;
                let drops = Arc::clone(&answers.drops);
                let limits = metrics::Limits::default();
                Some(MetricsThread::start(endpoint, source, drops, limits)?)
            }
            None => None,
        };
        let (stop, stopped) = UnixStream::pair()?;
        let thread = std::thread::Builder::new()
            .name("qgw-control".into())
            .spawn(move || {
                let mut server = Server::new(listeners.control, Arc::clone(&answers.drops));
                server.run(stopped.as_fd(), &mut &*answers);
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
            metrics,
        })
    }
}

impl Drop for ControlThread {
    fn drop(&mut self) {
        let _ = self.stop.write_all(&[1]);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.metrics.take();
    }
}

/// The daemon's answers to control requests.
struct Answers {
    shared: Shared,
    drops: Arc<Drops>,
}

impl Answer for &Answers {
    fn answer(&mut self, socket: Socket, request: &[u8]) -> Message {
        match socket {
            Socket::Status => self.status(request),
            Socket::Uapi => self.uapi(request),
            // Served by the metrics thread, never by this loop.
            Socket::Metrics => Zeroizing::new(Vec::new()),
        }
    }
}

impl metrics::Source for Answers {
    fn status(&self) -> Status {
        self.shared.status(&self.drops)
    }

    fn age(&self) -> Duration {
        self.shared.published.age()
    }
}

impl Answers {
    fn status(&self, request: &[u8]) -> Message {
        let answer = if asks_for_status(request) {
            serde_json::to_string(&self.shared.status(&self.drops)).unwrap_or_default()
        } else {
            "{\"error\":\"unknown request\"}".to_owned()
        };
        Zeroizing::new((answer + "\n").into_bytes())
    }

    /// `request` (keys and all) is the server's zeroizing buffer, read here in place.
    fn uapi(&self, request: &[u8]) -> Message {
        let Ok(request) = std::str::from_utf8(request) else {
            return Zeroizing::new(format!("errno={}\n\n", uapi::EINVAL).into_bytes());
        };
        let device = Device {
            private_key: &self.shared.private_key,
            listen_port: self.shared.listen_port,
        };
        let mut answer = uapi::handle(request, &device, &mut NodeTarget(&self.shared));
        if request.starts_with("set=1") {
            tracing::info!(answer = answer.trim(), "UAPI set");
        }
        // The answer's bytes move out without a copy; the emptied string is wiped on drop.
        Zeroizing::new(std::mem::take(&mut *answer).into_bytes())
    }
}

/// `wg show` / `wg set` against the node on the packet thread.
struct NodeTarget<'a>(&'a Shared);

impl Target for NodeTarget<'_> {
    fn status(&mut self) -> Status {
        Status::clone(&self.0.node_status())
    }

    fn apply(&mut self, plan: Plan) -> Result<(), i32> {
        let (tx, rx) = channel();
        self.0.send(Command::Uapi(plan, tx))?;
        rx.recv_timeout(COMMAND_TIMEOUT).unwrap_or(Err(EIO))
    }
}

/// Seconds since the Unix epoch now.
pub fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A channel for [`Command`]s.
pub fn commands() -> (Sender<Command>, Receiver<Command>) {
    channel()
}

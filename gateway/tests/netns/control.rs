//! Control-plane clients run by the test process itself, good and bad, against a qgw's status
//! socket, UAPI socket and metrics port: a well-behaved client timed against a deadline for the
//! whole request, a trickle client that sends one byte every 400 ms (and connects again when the
//! daemon cuts it off), and a hoarder that opens connections in bursts and never reads. Each runs
//! on its own thread, inside the site's namespace (the metrics port is there; the Unix sockets are
//! files, reachable from any namespace), and stops by itself at its deadline. Every connect is
//! bounded too: a listener whose backlog is full fails the connect instead of blocking it.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};

use super::traffic::spawn_in;

/// How long a connect may take before the client gives up on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The trickle clients' pace.
pub const TRICKLE_EVERY: Duration = Duration::from_millis(400);
/// Connections a hoarder opens per burst and target, and how often.
const HOARD_BURST: usize = 32;
const HOARD_EVERY: Duration = Duration::from_secs(2);
/// Connections a hoarder keeps open per target (the oldest are let go beyond that).
const HOARD_KEEP: usize = 64;

/// One control endpoint of a qgw.
#[derive(Clone, Debug)]
pub enum Target {
    /// A Unix stream socket (status or UAPI).
    Unix(PathBuf),
    /// A TCP address (the metrics port).
    Tcp(SocketAddr),
}

/// A connected control client.
pub enum Conn {
    /// To a Unix socket.
    Unix(UnixStream),
    /// To the metrics port.
    Tcp(TcpStream),
}

impl Conn {
    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Conn::Unix(s) => s,
            Conn::Tcp(s) => s,
        }
    }

    fn set_timeouts(&self, t: Duration) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
            Conn::Tcp(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

impl Target {
    /// Connects without ever blocking for longer than [`CONNECT_TIMEOUT`].
    pub fn connect(&self) -> std::io::Result<Conn> {
        match self {
            Target::Tcp(a) => TcpStream::connect_timeout(a, CONNECT_TIMEOUT).map(Conn::Tcp),
            Target::Unix(p) => {
                // Non-blocking: a full backlog answers EAGAIN instead of blocking the connect.
                let fd: OwnedFd = socket(
                    AddressFamily::Unix,
                    SockType::Stream,
                    SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                    None,
                )?;
                let addr = UnixAddr::new(p.as_path())?;
                connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr)?;
                let s = UnixStream::from(fd);
                s.set_nonblocking(false)?;
                Ok(Conn::Unix(s))
            }
        }
    }

    /// Sends `request` and reads the answer to its end, all within `deadline` (a whole-request
    /// deadline, not one per read); returns the answer and how long it took.
    pub fn ask(&self, request: &[u8], deadline: Duration) -> Result<(String, Duration), String> {
        let start = Instant::now();
        let mut c = self.connect().map_err(|e| format!("connect: {e}"))?;
        c.set_timeouts(deadline).map_err(|e| e.to_string())?;
        c.io()
            .write_all(request)
            .map_err(|e| format!("write: {e}"))?;
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(format!("no complete answer within {deadline:?}"));
            }
            c.set_timeouts(left).map_err(|e| e.to_string())?;
            match c.io().read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read after {:?}: {e}", start.elapsed())),
            }
        }
        if out.is_empty() {
            return Err("closed without an answer".to_owned());
        }
        Ok((String::from_utf8_lossy(&out).into_owned(), start.elapsed()))
    }
}

/// Sends one byte every [`TRICKLE_EVERY`] to `target` until `until`, never completing a request;
/// connects again whenever the daemon closes the connection. Returns how many times it did.
pub fn trickle(ns: &str, target: Target, until: Instant) -> JoinHandle<usize> {
    spawn_in(ns, move || {
        let mut reconnects = 0;
        let mut conn: Option<Conn> = None;
        while Instant::now() < until {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match target.connect() {
                    Ok(c) => conn.insert(c),
                    Err(_) => {
                        std::thread::sleep(TRICKLE_EVERY);
                        continue;
                    }
                },
            };
            let _ = c.set_timeouts(CONNECT_TIMEOUT);
            if c.io().write_all(b"a").is_err() {
                conn = None;
                reconnects += 1;
                continue;
            }
            std::thread::sleep(TRICKLE_EVERY);
        }
        reconnects
    })
}

/// Every [`HOARD_EVERY`] until `until`, opens [`HOARD_BURST`] connections to each of `targets`:
/// half send `requests[i]` and never read the answer, half send nothing. It keeps the newest
/// [`HOARD_KEEP`] per target open. Returns how many connections it opened.
pub fn hoard(ns: &str, targets: Vec<(Target, &'static [u8])>, until: Instant) -> JoinHandle<usize> {
    spawn_in(ns, move || {
        let mut held: Vec<Vec<Conn>> = targets.iter().map(|_| Vec::new()).collect();
        let mut opened = 0;
        while Instant::now() < until {
            let burst = Instant::now();
            for ((target, request), held) in targets.iter().zip(&mut held) {
                for i in 0..HOARD_BURST {
                    let Ok(mut c) = target.connect() else {
                        continue;
                    };
                    opened += 1;
                    if i % 2 == 0 {
                        let _ = c.set_timeouts(CONNECT_TIMEOUT);
                        let _ = c.io().write_all(request);
                    }
                    held.push(c);
                }
                let excess = held.len().saturating_sub(HOARD_KEEP);
                held.drain(..excess);
            }
            let next = (burst + HOARD_EVERY).min(until);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        opened
    })
}

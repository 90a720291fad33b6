//! The control thread's event loop: every control socket and every open connection in one
//! `poll(2)`, all non-blocking, each connection driven by its [`Conn`] state machine. No client
//! can hold the loop: reads and writes never block, each phase of a connection has a deadline
//! for the whole phase, each socket keeps at most [`Limits::max_connections`] open (the oldest
//! goes first), and the connections the daemon cuts off are counted in [`Drops`]. The answers
//! come from an [`Answer`] (the daemon's: `crate::daemon::control`). The metrics endpoint is
//! served by hyper on a thread of its own under the same limits (`super::metrics`), and counts
//! into the same [`Drops`].
//!
//! UAPI requests and answers carry keys (issue 11, property 10): the chunk each read lands in is
//! wiped when the connection's turn ends, the request and the answer are [`Message`]s (zeroizing
//! buffers) from the read to the last byte written, and what a connection holds is wiped when it
//! is closed, whether done, evicted, timed out or too large.
//!
//! | socket | framing | request | request in within | answer out within | connections |
//! |---|---|---|---|---|---|
//! | status | blank line | 256 KiB | 2 s | 2 s | 16 |
//! | UAPI | blank line | 256 KiB | 2 s | 2 s | 16 |
//! | metrics (`super::metrics`) | HTTP headers | 8 KiB | 2 s | 2 × 2 s for the whole exchange | 16 |

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tracing::{debug, warn};
use zeroize::Zeroizing;

use super::Listener;
use super::conn::{Dropped, Framing, Limits, Message, Table};

/// Time for a whole request to arrive, and for a whole answer to be taken.
pub const PHASE_TIME: Duration = Duration::from_secs(2);
/// Connections open at once per socket.
pub const MAX_CONNECTIONS: usize = 16;

/// One of the control sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Socket {
    /// `qgw status`.
    Status,
    /// WireGuard's UAPI (`wg`).
    Uapi,
    /// `/metrics`, `/healthz`, `/readyz`.
    Metrics,
}

impl Socket {
    const ALL: [Self; 3] = [Self::Status, Self::Uapi, Self::Metrics];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Uapi => "uapi",
            Self::Metrics => "metrics",
        }
    }

    /// What a control socket allows a connection (the metrics endpoint's limits, the same in
    /// spirit, are `super::metrics`'s).
    pub fn limits(self) -> Limits {
        Limits {
            framing: Framing::BlankLine,
            max_request: super::MAX_REQUEST,
            request_time: PHASE_TIME,
            response_time: PHASE_TIME,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Connections the daemon closed, by socket and reason.
#[derive(Debug, Default)]
pub struct Drops {
    served: [bool; 3],
    counts: [[AtomicU64; 3]; 3],
}

impl Drops {
    /// Counters for `sockets` (only those are reported).
    pub fn new(sockets: &[Socket]) -> Self {
        let mut drops = Self::default();
        for s in sockets {
            drops.served[*s as usize] = true;
        }
        drops
    }

    /// Counts a connection closed on `socket` for `why`.
    pub fn count(&self, socket: Socket, why: Dropped) {
        let (s, r) = (socket as usize, why as usize);
        self.counts[s][r].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts of the sockets served: socket label → reason label → connections.
    pub fn snapshot(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let served = Socket::ALL.into_iter().filter(|s| self.served[*s as usize]);
        let reasons = |s: Socket| -> BTreeMap<String, u64> {
            let count = |r: Dropped| self.counts[s as usize][r as usize].load(Ordering::Relaxed);
            (Dropped::ALL.into_iter())
                .map(|r| (r.label().to_owned(), count(r)))
                .collect()
        };
        served.map(|s| (s.label().to_owned(), reasons(s))).collect()
    }
}

/// Where answers come from.
pub trait Answer {
    /// The complete answer to `request` on `socket` (it may be empty: nothing is sent then),
    /// wiped once written.
    fn answer(&mut self, socket: Socket, request: &[u8]) -> Message;
}

/// One socket and its connections.
#[derive(Debug)]
struct Endpoint {
    socket: Socket,
    listener: Listener,
    conns: Table<UnixStream>,
}

/// What became of a connection after some I/O.
enum Next {
    Keep,
    Close,
    Dropped(Dropped),
}

/// The control sockets and their connections.
#[derive(Debug)]
pub struct Server {
    endpoints: Vec<Endpoint>,
    drops: Arc<Drops>,
}

impl Server {
    /// Serves `sockets`, each with its [`Socket::limits`], counting into `drops`.
    pub fn new(sockets: Vec<(Socket, Listener)>, drops: Arc<Drops>) -> Self {
        let sockets = (sockets.into_iter())
            .map(|(s, l)| (s, l, s.limits()))
            .collect();
        Self::with_limits(sockets, drops)
    }

    /// As [`Server::new`], with the limits given (tests).
    pub fn with_limits(sockets: Vec<(Socket, Listener, Limits)>, drops: Arc<Drops>) -> Self {
        let endpoints = (sockets.into_iter())
            .map(|(socket, listener, limits)| Endpoint {
                socket,
                listener,
                conns: Table::new(limits),
            })
            .collect();
        Self { endpoints, drops }
    }

    /// Serves until `stop` becomes readable (or `poll` fails, which is logged).
    pub fn run(&mut self, stop: BorrowedFd<'_>, answer: &mut impl Answer) {
        loop {
            let now = Instant::now();
            self.expire(now);
            let wait = (self.endpoints.iter())
                .filter_map(|e| e.conns.next_deadline())
                .min()
                .map_or(PollTimeout::NONE, |d| {
                    // Round up: waking a moment early would only poll again.
                    let ms = d.saturating_duration_since(now).as_micros().div_ceil(1000);
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
                });
            let mut fds = vec![PollFd::new(stop, PollFlags::POLLIN)];
            for e in &self.endpoints {
                fds.push(PollFd::new(e.listener.as_fd(), PollFlags::POLLIN));
                for (conn, stream) in e.conns.iter() {
                    let want = match conn.is_reading() {
                        true => PollFlags::POLLIN,
                        false => PollFlags::POLLOUT,
                    };
                    fds.push(PollFd::new(stream.as_fd(), want));
                }
            }
            match poll(&mut fds, wait) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    warn!(error = %e, "control plane poll failed; control sockets no longer served");
                    return;
                }
            }
            let ready: Vec<bool> = (fds.iter())
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            if ready[0] {
                return;
            }
            self.turn(&ready[1..], answer);
        }
    }

    /// Closes the connections whose phase ran out of time.
    fn expire(&mut self, now: Instant) {
        for e in &mut self.endpoints {
            for stream in e.conns.expire(now) {
                debug!(socket = e.socket.label(), "control connection timed out");
                self.drops.count(e.socket, Dropped::Timeout);
                drop(stream);
            }
        }
    }

    /// Serves what `poll` found ready (`ready`: per endpoint its listener, then its connections).
    fn turn(&mut self, mut ready: &[bool], answer: &mut impl Answer) {
        for e in &mut self.endpoints {
            let (listener, conns) = (ready[0], &ready[1..=e.conns.len()]);
            ready = &ready[1 + e.conns.len()..];
            // Newest first, so removing one does not move the ones still to serve.
            for i in (0..conns.len()).rev() {
                if conns[i] {
                    e.serve(i, answer, &self.drops);
                }
            }
            if listener {
                e.accept(answer, &self.drops);
            }
        }
    }
}

impl Endpoint {
    /// Accepts waiting connections (a bounded number) and reads each once right away: a
    /// well-behaved client's request is usually there already.
    fn accept(&mut self, answer: &mut impl Answer, drops: &Drops) {
        // Fewer than the limit, so a connection just accepted is read at least once more
        // before a burst of newer ones can evict it.
        for _ in 0..self.conns.limits().max_connections.div_ceil(2) {
            let stream = match self.listener.accept().and_then(|s| {
                s.set_nonblocking(true)?;
                Ok(s)
            }) {
                Ok(s) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    debug!(socket = self.socket.label(), error = %e, "control accept failed");
                    return;
                }
            };
            if let Some(oldest) = self.conns.admit(Instant::now(), stream) {
                debug!(socket = self.socket.label(), "control connection evicted");
                drops.count(self.socket, Dropped::Evicted);
                drop(oldest);
            }
            self.serve(self.conns.len() - 1, answer, drops);
        }
    }

    /// Reads or writes connection `i` as far as it goes without blocking.
    fn serve(&mut self, i: usize, answer: &mut impl Answer, drops: &Drops) {
        let next = self.advance(i, answer);
        if let Next::Dropped(why) = next {
            debug!(
                socket = self.socket.label(),
                reason = why.label(),
                "control connection dropped"
            );
            drops.count(self.socket, why);
        }
        if !matches!(next, Next::Keep) {
            self.conns.remove(i);
        }
    }

    fn advance(&mut self, i: usize, answer: &mut impl Answer) -> Next {
        let (socket, limits) = (self.socket, *self.conns.limits());
        let Some((conn, stream)) = self.conns.get_mut(i) else {
            return Next::Keep;
        };
        // Wiped on return; each request is copied out of it into its connection's buffer.
        let mut buf = Zeroizing::new([0u8; 4096]);
        while conn.is_reading() {
            let request = match stream.read(&mut *buf) {
                Ok(0) => match conn.ended() {
                    Some(r) => r,
                    None => return Next::Close,
                },
                Ok(n) => match conn.received(&buf[..n], &limits) {
                    Ok(Some(r)) => r,
                    Ok(None) => continue,
                    Err(why) => return Next::Dropped(why),
                },
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Keep,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return Next::Close,
            };
            let out = answer.answer(socket, &request);
            conn.respond(Instant::now(), out, &limits);
        }
        while !conn.unsent().is_empty() {
            match stream.write(conn.unsent()) {
                Ok(n) if n > 0 => {
                    conn.wrote(n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Keep,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Ok(_) | Err(_) => return Next::Close,
            }
        }
        Next::Close
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;

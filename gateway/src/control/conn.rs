//! One control connection as a state machine, with no socket and no clock (`now` comes in): the
//! bytes a client sends go in, the request comes out once complete, the answer goes in and the
//! bytes still to write come out. Each phase has a deadline for the whole phase, not for one
//! read or write, so a client that trickles bytes cannot keep a connection past it:
//!
//! | phase | ends when | deadline (from) |
//! |---|---|---|
//! | reading | the request is complete ([`Framing`]) or the client half-closes | [`Limits::request_time`] (accept) |
//! | writing | every byte of the answer is written | [`Limits::response_time`] (the answer) |
//!
//! A request longer than [`Limits::max_request`] ends the connection. [`Table`] holds one
//! socket's connections, at most [`Limits::max_connections`]; a new one closes the oldest.
//! The I/O around it is `super::server`; docs/gateway-decisions.md §5 has the limits' rationale.
//!
//! UAPI requests and answers carry keys in hex (issue 11, property 10; docs/design.md §5), so the
//! request and the answer live only in zeroizing buffers, wiped when dropped. The request buffer
//! grows by copying into a new zeroizing buffer (never by reallocation, which would free the old
//! block unwiped), and never past [`Limits::max_request`] + 1 bytes: at most 16 × 256 KiB per
//! control socket, plus one buffer while it is copied.

use std::time::{Duration, Instant};

use zeroize::Zeroizing;

/// The first capacity of a request buffer: a typical request fits, a `wg setconf` grows it.
const FIRST_CAPACITY: usize = 1024;

/// Where a request ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// The control sockets (wireguard.com/xplatform, `qgw status`): at an empty line (`\n\n`),
    /// or a request that is only `\n`. (The metrics endpoint's HTTP is hyper's: `super::metrics`.)
    BlankLine,
}

impl Framing {
    /// The length of the complete request at the start of `buf`, if it is complete; `buf[..from]`
    /// is known not to hold the end (only the bytes since then, and the few before, are searched).
    pub fn complete(self, buf: &[u8], from: usize) -> Option<usize> {
        let end: &[u8] = match self {
            Self::BlankLine if buf == b"\n" => return Some(1),
            Self::BlankLine => b"\n\n",
        };
        let start = from.min(buf.len()).saturating_sub(end.len() - 1);
        let at = buf[start..].windows(end.len()).position(|w| w == end)?;
        Some(start + at + end.len())
    }
}

/// What one socket allows a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How a request ends.
    pub framing: Framing,
    /// Largest request, in bytes.
    pub max_request: usize,
    /// Time from accept until the whole request has arrived.
    pub request_time: Duration,
    /// Time from the answer until it is written in full.
    pub response_time: Duration,
    /// Connections open at once; one more closes the oldest.
    pub max_connections: usize,
}

/// Why the daemon closed a connection (the `reason` label of
/// `qgw_control_connections_dropped_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Closed to make room: the socket had [`Limits::max_connections`] open.
    Evicted,
    /// The request did not arrive, or the answer was not taken, in time.
    Timeout,
    /// The request was longer than [`Limits::max_request`].
    TooLarge,
}

impl Dropped {
    /// Every reason, in label order.
    pub const ALL: [Self; 3] = [Self::Evicted, Self::Timeout, Self::TooLarge];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Evicted => "evicted",
            Self::Timeout => "timeout",
            Self::TooLarge => "too_large",
        }
    }
}

/// A request or an answer (it may hold keys).
pub type Message = Zeroizing<Vec<u8>>;

#[derive(Debug)]
enum Phase {
    Reading(Message),
    Writing { out: Message, sent: usize },
}

/// One connection's progress and deadline.
#[derive(Debug)]
pub struct Conn {
    phase: Phase,
    deadline: Instant,
}

impl Conn {
    /// A connection accepted at `now`.
    pub fn new(now: Instant, limits: &Limits) -> Self {
        Self {
            phase: Phase::Reading(Message::default()),
            deadline: now + limits.request_time,
        }
    }

    /// Whether it still waits for (more of) its request.
    pub fn is_reading(&self) -> bool {
        matches!(self.phase, Phase::Reading(_))
    }

    /// When it is closed if it has not finished its phase.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether its phase has run out of time at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        now >= self.deadline
    }

    /// Takes `bytes` from the client: `Ok(Some(request))` once the request is complete, `Ok(None)`
    /// while it is not, `Err` if it is too large. Bytes after a complete request are ignored,
    /// as are bytes that arrive while the answer is written.
    pub fn received(&mut self, bytes: &[u8], limits: &Limits) -> Result<Option<Message>, Dropped> {
        let Phase::Reading(buf) = &mut self.phase else {
            return Ok(None);
        };
        let from = buf.len();
        // One byte past the cap tells a request that is too large; more would only be dropped.
        let bytes = &bytes[..bytes
            .len()
            .min((limits.max_request + 1).saturating_sub(from))];
        append(buf, bytes, limits.max_request + 1);
        match limits.framing.complete(buf, from) {
            Some(n) if n <= limits.max_request => {
                // The bytes past `n` stay in the spare capacity, which is wiped with the rest.
                buf.truncate(n);
                Ok(Some(std::mem::take(buf)))
            }
            Some(_) => Err(Dropped::TooLarge),
            None if buf.len() > limits.max_request => Err(Dropped::TooLarge),
            None => Ok(None),
        }
    }

    /// The client half-closed while its request was being read: what arrived is the request
    /// (`None` if nothing did, or the request was complete already).
    pub fn ended(&mut self) -> Option<Message> {
        match &mut self.phase {
            Phase::Reading(buf) if !buf.is_empty() => Some(std::mem::take(buf)),
            _ => None,
        }
    }

    /// Starts writing `answer` at `now`.
    pub fn respond(&mut self, now: Instant, answer: Message, limits: &Limits) {
        self.phase = Phase::Writing {
            out: answer,
            sent: 0,
        };
        self.deadline = now + limits.response_time;
    }

    /// The bytes still to write (empty while reading).
    pub fn unsent(&self) -> &[u8] {
        match &self.phase {
            Phase::Writing { out, sent } => &out[*sent..],
            Phase::Reading(_) => &[],
        }
    }

    /// `n` more bytes were written; returns whether the whole answer is out.
    pub fn wrote(&mut self, n: usize) -> bool {
        match &mut self.phase {
            Phase::Writing { out, sent } => {
                *sent = (*sent + n).min(out.len());
                *sent == out.len()
            }
            Phase::Reading(_) => false,
        }
    }
}

/// Appends `bytes` to `buf`. When they do not fit, `buf` is copied into a new buffer, twice as
/// large but at most `cap` (or what is needed, if more), and the old one is wiped as it drops: a
/// `Vec` grown in place would free its old block unwiped.
fn append(buf: &mut Message, bytes: &[u8], cap: usize) {
    let needed = buf.len() + bytes.len();
    if needed > buf.capacity() {
        let capacity = (2 * buf.capacity())
            .max(FIRST_CAPACITY)
            .min(cap)
            .max(needed);
        let mut grown = Message::new(Vec::with_capacity(capacity));
        grown.extend_from_slice(buf);
        *buf = grown;
    }
    buf.extend_from_slice(bytes);
}

/// One socket's open connections, oldest first, with whatever the I/O side keeps for each.
#[derive(Debug)]
pub struct Table<S> {
    limits: Limits,
    conns: Vec<(Conn, S)>,
}

impl<S> Table<S> {
    /// An empty table under `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            conns: Vec::with_capacity(limits.max_connections),
        }
    }

    /// The socket's limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Adds a connection accepted at `now`; at the limit the oldest one makes room and is
    /// returned (to be closed and counted as [`Dropped::Evicted`]). A well-behaved client is done
    /// within milliseconds, so the oldest is the one that has kept its slot longest: a client
    /// that trickles or does not read.
    pub fn admit(&mut self, now: Instant, io: S) -> Option<S> {
        let evicted = (self.conns.len() >= self.limits.max_connections.max(1))
            .then(|| self.conns.remove(0).1);
        self.conns.push((Conn::new(now, &self.limits), io));
        evicted
    }

    /// Removes and returns the connections whose phase ran out of time at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<S> {
        let mut gone = Vec::new();
        let mut i = 0;
        while i < self.conns.len() {
            if self.conns[i].0.expired(now) {
                gone.push(self.conns.remove(i).1);
            } else {
                i += 1;
            }
        }
        gone
    }

    /// The earliest deadline of any connection.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().map(|(c, _)| c.deadline()).min()
    }

    /// The connections, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &(Conn, S)> {
        self.conns.iter()
    }

    /// Connection `i` (in [`Table::iter`] order).
    pub fn get_mut(&mut self, i: usize) -> Option<&mut (Conn, S)> {
        self.conns.get_mut(i)
    }

    /// Removes connection `i`.
    pub fn remove(&mut self, i: usize) -> S {
        self.conns.remove(i).1
    }

    /// How many are open.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;

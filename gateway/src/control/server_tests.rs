//! The event loop over real sockets (two Unix sockets in a temporary directory):
//! a client that trickles holds nobody up and is cut off at its deadline, a full socket evicts its
//! oldest connection, an oversized request and an answer nobody reads are dropped, and each is
//! counted. Every wait is bounded; nothing sleeps.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;

/// The bound on every wait in these tests.
const BOUND: Duration = Duration::from_secs(10);

/// Answers `answer to <request>`, or 16 MiB for `big`.
struct Echo;

impl Answer for Echo {
    fn answer(&mut self, socket: Socket, request: &[u8]) -> Message {
        if request == b"big\n\n" {
            return Zeroizing::new(vec![b'x'; 16 << 20]);
        }
        let mut out = format!("{} answer to ", socket.label()).into_bytes();
        out.extend_from_slice(request);
        Zeroizing::new(out)
    }
}

/// A server on its own thread with a status socket and a UAPI socket under `limits`.
struct Running {
    _dir: tempfile::TempDir,
    unix: PathBuf,
    uapi: PathBuf,
    drops: Arc<Drops>,
    stop: UnixStream,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn start(limits: Limits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let unix = dir.path().join("s.sock");
        let status = Listener::bind(&unix, 0o700).unwrap();
        let uapi = dir.path().join("u.sock");
        let uapi_listener = Listener::bind(&uapi, 0o700).unwrap();
        let drops = Arc::new(Drops::new(&[Socket::Status, Socket::Uapi]));
        let sockets = vec![
            (Socket::Status, status, limits),
            (Socket::Uapi, uapi_listener, limits),
        ];
        let mut server = Server::with_limits(sockets, Arc::clone(&drops));
        let (stop, stopped) = UnixStream::pair().unwrap();
        let thread = std::thread::spawn(move || server.run(stopped.as_fd(), &mut Echo));
        Self {
            _dir: dir,
            unix,
            uapi,
            drops,
            stop,
            thread: Some(thread),
        }
    }

    fn unix(&self) -> UnixStream {
        let s = UnixStream::connect(&self.unix).unwrap();
        s.set_read_timeout(Some(BOUND)).unwrap();
        s
    }

    fn uapi(&self) -> UnixStream {
        let s = UnixStream::connect(&self.uapi).unwrap();
        s.set_read_timeout(Some(BOUND)).unwrap();
        s
    }

    fn dropped(&self, socket: &str, reason: &str) -> u64 {
        self.drops.snapshot()[socket][reason]
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.write_all(&[1]);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn limits(request_time: Duration, max_connections: usize) -> Limits {
    Limits {
        framing: Framing::BlankLine,
        max_request: 64,
        request_time,
        response_time: request_time,
        max_connections,
    }
}

/// Sends `request` and reads to the end of the answer.
fn ask(mut s: impl Read + Write, request: &[u8]) -> String {
    s.write_all(request).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Whether the server closed `s` (end of stream or reset) before [`BOUND`]; the bytes before.
fn closed(mut s: impl Read) -> (bool, usize) {
    let (start, mut got, mut buf) = (Instant::now(), 0, vec![0u8; 1 << 16]);
    while start.elapsed() < BOUND {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return (true, got),
            Ok(n) => got += n,
        }
    }
    (false, got)
}

#[test]
fn a_trickling_client_holds_nobody_up() {
    let r = Running::start(limits(BOUND * 3, 16));
    let mut slow_uapi = r.uapi();
    slow_uapi.write_all(b"g").unwrap();
    let mut slow_unix = r.unix();
    slow_unix.write_all(b"s").unwrap();
    assert_eq!(ask(r.unix(), b"status\n\n"), "status answer to status\n\n");
    assert_eq!(ask(r.uapi(), b"get=1\n\n"), "uapi answer to get=1\n\n");
    // A client that half-closes has sent its request.
    let mut s = r.unix();
    s.write_all(b"status").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(ask(s, b""), "status answer to status");
}

#[test]
fn a_request_that_does_not_arrive_in_time_is_cut_off_and_counted() {
    let r = Running::start(limits(Duration::from_millis(100), 16));
    let mut s = r.unix();
    s.write_all(b"sta").unwrap();
    assert_eq!(closed(&mut s), (true, 0), "cut off without an answer");
    assert_eq!(r.dropped("status", "timeout"), 1);
    assert_eq!(r.dropped("uapi", "timeout"), 0);
}

#[test]
fn a_full_socket_evicts_its_oldest_connection() {
    let r = Running::start(limits(BOUND * 3, 2));
    let oldest = r.unix();
    let _second = r.unix();
    assert_eq!(ask(r.unix(), b"status\n\n"), "status answer to status\n\n");
    assert_eq!(closed(oldest), (true, 0));
    assert_eq!(r.dropped("status", "evicted"), 1);
}

#[test]
fn an_oversized_request_is_refused_and_counted() {
    let r = Running::start(limits(BOUND * 3, 16));
    let mut s = r.unix();
    s.write_all(&[b'a'; 65]).unwrap();
    assert_eq!(closed(&mut s), (true, 0));
    assert_eq!(r.dropped("status", "too_large"), 1);
}

#[test]
fn an_answer_nobody_takes_is_dropped_at_its_deadline() {
    let r = Running::start(limits(Duration::from_millis(100), 16));
    let mut s = r.unix();
    s.write_all(b"big\n\n").unwrap();
    // The client reads nothing until the server has given up on it.
    let start = Instant::now();
    while r.dropped("status", "timeout") == 0 && start.elapsed() < BOUND {
        std::thread::yield_now();
    }
    assert_eq!(r.dropped("status", "timeout"), 1);
    let (was_closed, got) = closed(&mut s);
    assert!(was_closed && got < 16 << 20, "closed after {got} bytes");
}

//! Bodies of the cargo-fuzz targets (`fuzz/fuzz_targets/gateway_*.rs`), here so that plain unit
//! and property tests exercise them on stable Rust in CI, and the fuzzers on nightly go deeper.
//!
//! | target | body | what it feeds |
//! |---|---|---|
//! | `gateway_message` | [`message`] | the wire parser of all four message types |
//! | `gateway_ip` | [`ip_packet`] | the IP header parser (decrypted packets, TUN packets) |
//! | `gateway_classify` | [`classify`] | the traffic-class rules on a TUN packet (built-in and administrator rules) |
//! | `gateway_datagram` | [`datagram`] | the node's datagram entry point, raw or mutating a real handshake/transport message, then a tunnel packet |
//! | `gateway_uapi` | [`uapi_request`] | the UAPI `get=1`/`set=1` parser and applier |
//! | `gateway_config` | [`config_text`] | the YAML config parser (no validation: that reads key files) |
//! | `gateway_audit_verify` | [`audit_verify`] | the audit-log verifier, raw or mutating a real signed log, and the writer's restart check of a file's tail |
//! | `gateway_tun_offload` | [`tun_offload`] | a TUN read (vnet header + packet) split into segments, which then go through the coalescer (TCP only, and TCP + UDP) and out as TUN writes |
//! | `gateway_control` | [`control_request`] | a control connection's request reader ([`Conn`](crate::control::conn::Conn)), in reads of any size, and the handler of its socket (status check, UAPI parser); the metrics endpoint's HTTP is parsed by hyper (httparse) |
//!
//! Every body must return without panicking on any input; memory stays bounded because the
//! node bounds its queues and tables.
//!
//! **Pure parsers** hand their result to [`black_box`]: a parse whose result is unused has no
//! effect, so the optimizer removes it whole, and the fuzzer then runs nothing (before, the
//! `message` and `ip_packet` bodies compiled to an empty function and reached 16 edges).
//!
//! **Node bodies** ([`datagram`], [`uapi_request`]) start every input from the same state, a node
//! built afresh, so that a crash replays from its input alone. What does not depend on that node
//! is built once per process ([`start`]: the start instant and the peer's real messages), and the
//! X25519 operations the fresh node repeats come from a memo in fuzz builds (`cfg(fuzzing)`,
//! `proto/crypto_memo.rs`: a pure function, so the results are the same, only faster).

use std::hint::black_box;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::control::conn::{Conn, Dropped, Framing, Limits};
use crate::control::status::Status;
use crate::control::uapi::{self, Device, Plan, Target};
use crate::node::testing::{Site, ipv4, node, plain};
use crate::node::{Node, Received};
use crate::proto::messages::Message;
use crate::proto::secret::Secret;

/// Parses `data` as a WireGuard message: an accepted message spans the whole datagram and has
/// the type its first byte names.
pub fn message(data: &[u8]) {
    use crate::proto::constants::{
        COOKIE_REPLY_LEN, INITIATION_LEN, RESPONSE_LEN, TRANSPORT_HEADER_LEN,
    };
    if let Ok(m) = black_box(Message::parse(data)) {
        let len = match m {
            Message::Initiation(_) => INITIATION_LEN,
            Message::Response(_) => RESPONSE_LEN,
            Message::CookieReply(_) => COOKIE_REPLY_LEN,
            Message::Transport(_, rest) => TRANSPORT_HEADER_LEN + rest.len(),
        };
        assert_eq!(len, data.len());
        assert_eq!(Some(&m.msg_type()), data.first());
    }
}

/// Parses `data` as an IP packet header: the length it finds fits the buffer, and the addresses
/// are of the version the first nibble names.
pub fn ip_packet(data: &[u8]) {
    if let Some(info) = black_box(crate::proto::ip::parse(data)) {
        assert!(info.len <= data.len());
        let v4 = data.first().is_some_and(|b| b >> 4 == 4);
        assert_eq!((info.src.is_ipv4(), info.dst.is_ipv4()), (v4, v4));
    }
}

const A: Site = Site(1);
const B: Site = Site(2);

/// The next datagram `node` sends, if any.
fn next(node: &mut Node, now: Instant) -> Vec<u8> {
    let mut out = vec![0u8; 2048];
    node.poll_transmit(now, &mut out)
        .map(|t| out[..t.len].to_vec())
        .unwrap_or_default()
}

/// Hands `packet` to `node` as if read from its tunnel.
fn from_tunnel(node: &mut Node, now: Instant, packet: &[u8]) {
    let mut buf = vec![0u8; packet.len() + 64];
    buf[16..16 + packet.len()].copy_from_slice(packet);
    let _ = node.handle_tun_packet(now, &mut buf, packet.len());
}

/// What every input of the node bodies starts from, built once per process.
#[derive(Debug)]
struct Start {
    /// The instant every input's node starts at.
    t0: Instant,
    /// Real messages from `b` to `a`: `[initiation, response to a's initiation, transport]`.
    bases: [Vec<u8>; 3],
}

/// The process's [`Start`]: `b` and `a` handshake both ways, `b` sends a packet.
fn start() -> &'static Start {
    static START: OnceLock<Start> = OnceLock::new();
    START.get_or_init(|| {
        let t0 = Instant::now();
        let mut b = node(t0, plain(B, &[A], false), 2);
        from_tunnel(&mut b, t0, &ipv4(B.ip(1), A.ip(1), b"b to a"));
        let init = next(&mut b, t0);
        let (_, mut a_init, mut a_resp) = a_side(t0, &init);
        // b's response to a's initiation.
        let _ = b.handle_datagram(t0, A.addr(), &mut a_init);
        let resp = next(&mut b, t0);
        // a's response completes b's handshake, so b sends its staged packet in the new session.
        let _ = b.handle_datagram(t0, A.addr(), &mut a_resp);
        let transport = next(&mut b, t0);
        Start {
            t0,
            bases: [init, resp, transport],
        }
    })
}

/// Node `a` with peer `b` at `t0`, after `a` sent its initiation to `b` and answered `b`'s
/// `initiation`; returns `a` with what it sent (`[initiation, response]`). Seeded, so the same
/// every time: `b`'s response in [`Start`] answers the initiation of every such `a`.
fn a_side(t0: Instant, initiation: &[u8]) -> (Node, Vec<u8>, Vec<u8>) {
    let mut a = node(t0, plain(A, &[B], false), 1);
    from_tunnel(&mut a, t0, &ipv4(A.ip(1), B.ip(1), b"a to b"));
    let init = next(&mut a, t0);
    let _ = a.handle_datagram(t0, B.addr(), &mut initiation.to_vec());
    let resp = next(&mut a, t0);
    (a, init, resp)
}

/// A fresh node `a` for one input, and the [`Start`] it belongs to.
fn fixture() -> (Node, &'static Start) {
    let s = start();
    (a_side(s.t0, &s.bases[0]).0, s)
}

/// Feeds `data` to a node's datagram entry point. `data[0]` picks a base: 0–2 overlay the rest
/// onto a real initiation, response or transport message (so mutations get past the parser),
/// anything else sends the rest raw; then the rest is also tried as a tunnel packet.
pub fn datagram(data: &[u8]) {
    let (mut a, Start { t0, bases }) = fixture();
    let t0 = *t0;
    let (mode, rest) = data.split_first().map_or((255, data), |(m, r)| (*m, r));
    let mut d = match bases.get(usize::from(mode)) {
        Some(base) => {
            let mut d = base.clone();
            for (i, x) in rest.iter().enumerate() {
                if let Some(b) = d.get_mut(i) {
                    *b ^= x;
                } else {
                    d.push(*x);
                }
            }
            d
        }
        None => rest.to_vec(),
    };
    let mut out = vec![0u8; 2048];
    for when in [t0, t0 + Duration::from_secs(200)] {
        let len = d.len();
        if let Received::Packet { packet, .. } = a.handle_datagram(when, B.addr(), &mut d) {
            assert!(packet.end <= len);
        }
        a.handle_timeout(when);
        while a.poll_transmit(when, &mut out).is_some() {}
    }
    let mut buf = vec![0u8; rest.len() + 64];
    buf[16..16 + rest.len()].copy_from_slice(rest);
    let _ = a.handle_tun_packet(t0, &mut buf, rest.len());
}

/// A UAPI target that is the node itself (as the daemon's, without the thread hop).
struct Local<'a>(&'a mut Node, Instant);

impl Target for Local<'_> {
    fn status(&mut self) -> Status {
        self.0.snapshot(self.1)
    }

    fn apply(&mut self, plan: Plan) -> Result<(), i32> {
        self.0.apply_uapi(self.1, plan).map(|_| ())
    }
}

/// Feeds `data` as a UAPI request to a node with one peer.
pub fn uapi_request(data: &[u8]) {
    let (mut a, s) = fixture();
    let t0 = s.t0;
    let key = Secret::new([1; 32]);
    let answer = uapi::handle(
        &String::from_utf8_lossy(data),
        &device(&key),
        &mut Local(&mut a, t0),
    );
    assert!(answer.ends_with("\n\n"));
}

/// The device the UAPI bodies answer for.
fn device(private_key: &Secret<32>) -> Device<'_> {
    Device {
        private_key,
        listen_port: 51820,
    }
}

/// Parses `data` as a YAML config.
pub fn config_text(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse(Path::new("fuzz.yaml"), text);
    }
}

/// Feeds `data` to the audit-log verifier (docs/audit.md §6). `data[0]`: bit 0 overlays the rest
/// onto a real signed log (XOR: zero bytes leave it valid, so the fuzzer starts from a log that
/// verifies), otherwise the rest is the file; bit 1 pins the signer key; bit 2 splits the bytes
/// into two files; bit 3 clear: the bytes are a whole file for the restart check, set: its end.
pub fn audit_verify(data: &[u8]) {
    use crate::audit::{testing, verify_bytes};
    static BASE: std::sync::OnceLock<(Vec<u8>, keymix::mldsa::VerifyingKey)> =
        std::sync::OnceLock::new();
    let (base, key) = BASE.get_or_init(|| {
        let k = testing::signing_key(1);
        (testing::sample_log(Some(&k), 6), k.verifying_key().clone())
    });
    let (mode, rest) = data.split_first().map_or((0, data), |(m, r)| (*m, r));
    let mut bytes = if mode & 1 == 1 {
        base.clone()
    } else {
        Vec::new()
    };
    for (i, x) in rest.iter().enumerate() {
        match bytes.get_mut(i) {
            Some(b) if mode & 1 == 1 => *b ^= x,
            _ => bytes.push(*x),
        }
    }
    let pinned = (mode & 2 != 0).then(|| key.clone());
    let cut = if mode & 4 != 0 {
        bytes.len() / 2
    } else {
        bytes.len()
    };
    let (a, b) = bytes.split_at(cut);
    let _ = verify_bytes(&[("a.jsonl", a), ("b.jsonl", b)], pinned);
    // The writer's restart check reads the same kind of bytes: the end of an existing file.
    let _ = black_box(crate::audit::tail::classify(&bytes, mode & 8 == 0));
}

/// Feeds `data` to a control connection ([`Conn`]) and its socket's request handler, as the
/// control thread does. `data[0]`: bit 0 picks the socket (status, UAPI), bit 1 a 64-byte cap (so
/// requests over the cap are reached), bits 2–6 the size of the reads (1–30 bytes; 30 and 31: all
/// at once). The request [`Conn::received`] or [`Conn::ended`] yields must be the one
/// [`first_request`] finds; then the status check or [`uapi::handle`] (with a node that accepts
/// every plan: `gateway_uapi` applies them) reads it.
pub fn control_request(data: &[u8]) {
    use crate::control::server::Socket;
    let (mode, stream) = data.split_first().map_or((0, data), |(m, r)| (*m, r));
    let socket = [Socket::Status, Socket::Uapi][usize::from(mode & 1)];
    let mut limits = socket.limits();
    if mode & 2 == 2 {
        limits.max_request = 64;
    }
    let step = match (mode >> 2) & 31 {
        30.. => stream.len().max(1),
        k => usize::from(k) + 1,
    };
    let t0 = Instant::now();
    let mut conn = Conn::new(t0, &limits);
    let mut got = Ok(None);
    for chunk in stream.chunks(step) {
        got = conn.received(chunk, &limits);
        if got != Ok(None) {
            break;
        }
    }
    if got == Ok(None) {
        got = Ok(conn.ended());
    }
    let expected = first_request(stream, &limits, step.min(stream.len()));
    let got = got.as_ref().map(|r| r.as_deref().map(|m| &m[..]));
    assert_eq!(got.map_err(|e| *e), expected);
    let Ok(Some(request)) = got else { return };
    // Bytes that arrive while the answer is written are ignored.
    conn.respond(t0, Default::default(), &limits);
    assert_eq!(conn.received(stream, &limits), Ok(None));
    assert_eq!(conn.ended(), None);
    match socket {
        Socket::Status => {
            if black_box(crate::control::status::asks_for_status(request)) {
                let text = String::from_utf8_lossy(request).replacen("status", "", 1);
                assert!(text.chars().all(char::is_whitespace), "{text:?}");
            }
        }
        Socket::Uapi => {
            let answer = match std::str::from_utf8(request) {
                Ok(text) => uapi::handle(text, &device(&Secret::new([1; 32])), &mut AcceptAll),
                Err(_) => return,
            };
            assert!(answer.ends_with("\n\n"));
        }
        // Not a socket of the control thread (the metrics thread's hyper serves it).
        Socket::Metrics => {}
    }
}

/// The request a control connection must yield for `stream` under `limits`, found by a plain search
/// of the whole stream (the connection searches only what each read adds): `Ok(None)` if the
/// client sends nothing. A lone `\n` is a request only if it came alone in the first read
/// (`first_read` bytes).
fn first_request<'a>(
    stream: &'a [u8],
    limits: &Limits,
    first_read: usize,
) -> Result<Option<&'a [u8]>, Dropped> {
    let end: &[u8] = match limits.framing {
        Framing::BlankLine if stream.first() == Some(&b'\n') && first_read == 1 => b"\n",
        Framing::BlankLine => b"\n\n",
    };
    let cap = limits.max_request;
    let window = &stream[..stream.len().min(cap + 1)];
    let n = (window.windows(end.len()).position(|w| w == end)).map(|i| i + end.len());
    match n {
        Some(n) if n <= cap => Ok(Some(&stream[..n])),
        Some(_) => Err(Dropped::TooLarge),
        None if stream.len() > cap => Err(Dropped::TooLarge),
        None => Ok((!stream.is_empty()).then_some(stream)),
    }
}

/// A UAPI target with no peers that accepts every checked plan.
struct AcceptAll;

impl Target for AcceptAll {
    fn status(&mut self) -> Status {
        Status::default()
    }

    fn apply(&mut self, _: Plan) -> Result<(), i32> {
        Ok(())
    }
}

#[path = "fuzzing_classify.rs"]
mod classify_body;
pub use classify_body::classify;
#[path = "fuzzing_offload.rs"]
mod offload_body;
pub use offload_body::tun_offload;

#[cfg(test)]
#[path = "fuzzing_tests.rs"]
mod tests;

//! The metrics endpoint (`metrics.listen`), plain HTTP/1.0 served by the control thread like the
//! control sockets:
//!
//! | path | answer |
//! |---|---|
//! | `/metrics` | the [`Status`] as Prometheus text ([`super::exposition`]) |
//! | `/healthz` | liveness: `200 ok` while the packet thread publishes its status (at least every 250 ms), `503` once it has not for [`STALL_AFTER`] |
//! | `/readyz` | readiness: `200 ready` when every peer has a session that may send, else `503` with the peers that have none |
//!
//! No authentication: bind it to loopback or a management network. Like the control sockets, a
//! request is read with a short timeout and a size cap, and only a few connections are served per
//! wake-up, so a slow client costs the control thread a bounded amount of time and the packet
//! thread none.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};

use super::IO_TIMEOUT;
pub use super::exposition::render;
use super::status::Status;

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics` (also `/`).
    Metrics,
    /// `GET /healthz`.
    Health,
    /// `GET /readyz`.
    Ready,
    /// Anything else.
    NotFound,
}

impl Route {
    /// Routes a request by its first line (`GET /path HTTP/1.x`); query strings are ignored.
    pub fn parse(request: &[u8]) -> Self {
        let line = request.split(|b| *b == b'\n').next().unwrap_or_default();
        let mut words = line.split(|b| *b == b' ');
        let (Some(b"GET" | b"HEAD"), Some(target)) = (words.next(), words.next()) else {
            return Self::NotFound;
        };
        let path = target.split(|b| *b == b'?').next().unwrap_or_default();
        match path {
            b"/metrics" | b"/" => Self::Metrics,
            b"/healthz" => Self::Health,
            b"/readyz" => Self::Ready,
            _ => Self::NotFound,
        }
    }
}

/// The packet thread is considered stalled once its status is this old.
pub const STALL_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// Largest request read (headers only; the body is ignored).
const MAX_REQUEST: usize = 8 * 1024;

/// The listening metrics socket.
#[derive(Debug)]
pub struct Metrics {
    listener: TcpListener,
}

impl Metrics {
    /// Binds `addr`, non-blocking.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Self { listener })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The next waiting connection with its request read and routed, if any.
    pub fn accept(&self) -> Option<(TcpStream, Route)> {
        let (mut s, _) = self.listener.accept().ok()?;
        s.set_nonblocking(false).ok()?;
        s.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
        s.set_write_timeout(Some(IO_TIMEOUT)).ok()?;
        let mut buf = [0u8; MAX_REQUEST];
        let mut n = 0;
        while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf[n..]) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        Some((s, Route::parse(&buf[..n])))
    }

    /// Answers `stream`'s request for `route` from `status`, published `age` ago.
    pub fn respond(mut stream: TcpStream, route: Route, status: &Status, age: std::time::Duration) {
        let (code, kind, body) = match route {
            Route::Metrics => (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                render(status),
            ),
            Route::Health if age < STALL_AFTER => ("200 OK", "text/plain", "ok\n".to_owned()),
            Route::Health => (
                "503 Service Unavailable",
                "text/plain",
                format!("packet loop stalled: no status for {} s\n", age.as_secs()),
            ),
            Route::Ready => match status.peers_not_ready().as_slice() {
                [] => ("200 OK", "text/plain", "ready\n".to_owned()),
                down => (
                    "503 Service Unavailable",
                    "text/plain",
                    format!("not ready: no usable session with {}\n", down.join(", ")),
                ),
            },
            Route::NotFound => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        };
        let head = format!(
            "HTTP/1.0 {code}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body.as_bytes());
    }
}

impl AsFd for Metrics {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_escapes_labels() {
        let st = Status {
            interface: "qgw0".into(),
            public_key: String::new(),
            listen_port: 1,
            cookie_replies_sent: 7,
            drops: [("replay".to_owned(), 3)].into_iter().collect(),
            // Through JSON, so fields added later (with serde defaults) need no change here.
            peers: vec![
                serde_json::from_value(serde_json::json!({
                    "name": "a\"b", "public_key": "", "endpoint": null, "allowed_ips": [],
                    "latest_handshake_unix": null, "rx_bytes": 10, "tx_bytes": 20,
                    "key_epoch": 2, "persistent_keepalive": null, "hybrid": "off"
                }))
                .unwrap(),
            ],
            ..Default::default()
        };
        let text = render(&st);
        for line in [
            "qgw_cookie_replies_sent_total{interface=\"qgw0\"} 7",
            "qgw_dropped_total{interface=\"qgw0\",reason=\"replay\"} 3",
            "qgw_peer_rx_bytes_total{interface=\"qgw0\",peer=\"a\\\"b\"} 10",
            "qgw_peer_key_epoch{interface=\"qgw0\",peer=\"a\\\"b\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
    }

    #[test]
    fn hybrid_peers_export_epoch_sources_drops_and_rejects_but_no_key_id() {
        let peer = serde_json::json!({
            "name": "site-b", "public_key": "", "endpoint": null, "allowed_ips": [],
            "latest_handshake_unix": null, "rx_bytes": 0, "tx_bytes": 0, "key_epoch": 9,
            "persistent_keepalive": null, "hybrid": "master", "epoch": 7,
            "epoch_age_seconds": 3, "key_sources": ["x25519", "mlkem", "qkd"],
            "qkd_key_id": "bc490419-7d60-487f-adc1-4ddcc177c139",
            "hybrid_drops": {"bad_mac": 5}, "pq_signature_verifications": 7,
            "pq_kem_operations": 14, "hybrid_rejects": {"qkd_refused": 1}
        });
        let st = Status {
            interface: "qgw0".into(),
            public_key: String::new(),
            listen_port: 1,
            cookie_replies_sent: 0,
            drops: Default::default(),
            peers: vec![serde_json::from_value(peer).unwrap()],
            ..Default::default()
        };
        let text = render(&st);
        for line in [
            "qgw_peer_hybrid_epoch{interface=\"qgw0\",peer=\"site-b\"} 7",
            "qgw_peer_epoch_age_seconds{interface=\"qgw0\",peer=\"site-b\"} 3",
            "qgw_peer_epoch_sources{interface=\"qgw0\",peer=\"site-b\",source=\"x25519+mlkem+qkd\"} 1",
            "qgw_hybrid_dropped_total{interface=\"qgw0\",peer=\"site-b\",reason=\"bad_mac\"} 5",
            "qgw_hybrid_rejects_total{interface=\"qgw0\",peer=\"site-b\",reason=\"qkd_refused\"} 1",
            "qgw_peer_pq_signature_verifications_total{interface=\"qgw0\",peer=\"site-b\"} 7",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
        }
        assert!(
            !text.contains("bc490419"),
            "a key ID is never a label or value"
        );
    }

    #[test]
    fn serves_http_on_loopback() {
        let m = Metrics::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = m.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).unwrap();
            out
        });
        let stream = (0..2000)
            .find_map(|_| {
                let s = m.accept();
                if s.is_none() {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                s
            })
            .expect("the client connects within 10 s");
        let st = Status {
            interface: "x".into(),
            public_key: String::new(),
            listen_port: 0,
            cookie_replies_sent: 0,
            drops: Default::default(),
            peers: Vec::new(),
            ..Default::default()
        };
        Metrics::respond(stream.0, stream.1, &st, std::time::Duration::ZERO);
        let out = client.join().unwrap();
        assert!(out.starts_with("HTTP/1.0 200 OK\r\n"), "{out}");
        assert!(out.contains("qgw_cookie_replies_sent_total{interface=\"x\"} 0"));
    }
}

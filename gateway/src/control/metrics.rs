//! The metrics endpoint (`metrics.listen`), plain HTTP/1.0 served by the control thread like the
//! control sockets:
//!
//! | path | answer |
//! |---|---|
//! | `/metrics` | the [`Status`] as Prometheus text ([`super::exposition`]) |
//! | `/healthz` | liveness: `200 ok` while the packet thread publishes its status (at least every 250 ms), `503` once it has not for [`STALL_AFTER`] |
//! | `/readyz` | readiness: `200 ready` when every peer has a session that may send, else `503` with the peers that have none |
//!
//! No authentication: bind it to loopback or a management network. Connections are served by the
//! control thread's event loop (`super::server`) under the same limits as the control sockets,
//! with an 8 KiB cap on the request headers, so a slow client costs the packet thread nothing and
//! other control clients nothing beyond its own connection slot.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};

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
pub const MAX_REQUEST: usize = 8 * 1024;

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

    /// The next waiting connection (`WouldBlock` when none waits).
    pub fn accept(&self) -> io::Result<TcpStream> {
        self.listener.accept().map(|(s, _)| s)
    }

    /// The whole HTTP answer to a request for `route`, from `status` published `age` ago.
    pub fn answer(route: Route, status: &Status, age: std::time::Duration) -> Vec<u8> {
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
        (head + &body).into_bytes()
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
    use std::time::Duration;

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
    fn answers_http_with_length_and_close() {
        let st = Status {
            interface: "x".into(),
            ..Default::default()
        };
        let route = Route::parse(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n");
        let out = String::from_utf8(Metrics::answer(route, &st, Duration::ZERO)).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{out}");
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
        assert!(head.ends_with("Connection: close"), "{head}");
        assert!(body.contains("qgw_cookie_replies_sent_total{interface=\"x\"} 0"));
        let stalled = Metrics::answer(Route::Health, &st, STALL_AFTER);
        assert!(stalled.starts_with(b"HTTP/1.0 503 "));
        assert!(
            Metrics::answer(Route::parse(b"POST / HTTP/1.0"), &st, Duration::ZERO)
                .starts_with(b"HTTP/1.0 404 ")
        );
    }
}

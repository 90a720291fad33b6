//! The metrics endpoint (`metrics.listen`): the [`Status`] counters in the Prometheus text format
//! (version 0.0.4) over plain HTTP/1.0, served by the event loop like the control sockets.
//!
//! No authentication: bind it to loopback or a management network. Like the control sockets, a
//! request is read with a short timeout and a size cap, and only a few connections are served per
//! wake-up, so a slow client costs the data path a bounded amount of time.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};

use super::IO_TIMEOUT;
use super::status::{PeerStatus, Status};

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

    /// The next waiting connection with its request read, if any.
    pub fn accept(&self) -> Option<TcpStream> {
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
        Some(s)
    }

    /// Answers `stream` with `status` as Prometheus text.
    pub fn respond(mut stream: TcpStream, status: &Status) {
        let body = render(status);
        let head = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n",
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

/// Escapes a label value (backslash, double quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A per-peer series: name, type, help, value.
type PerPeer = (
    &'static str,
    &'static str,
    &'static str,
    fn(&PeerStatus) -> u64,
);

/// The Prometheus text of `st`.
pub fn render(st: &Status) -> String {
    let i = esc(&st.interface);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# HELP qgw_cookie_replies_sent_total Cookie replies sent under handshake load."
    );
    let _ = writeln!(s, "# TYPE qgw_cookie_replies_sent_total counter");
    let _ = writeln!(
        s,
        "qgw_cookie_replies_sent_total{{interface=\"{i}\"}} {}",
        st.cookie_replies_sent
    );
    let _ = writeln!(
        s,
        "# HELP qgw_dropped_total Datagrams and packets dropped, by reason."
    );
    let _ = writeln!(s, "# TYPE qgw_dropped_total counter");
    for (reason, n) in &st.drops {
        let _ = writeln!(
            s,
            "qgw_dropped_total{{interface=\"{i}\",reason=\"{}\"}} {n}",
            esc(reason)
        );
    }
    let per_peer: [PerPeer; 7] = [
        (
            "qgw_peer_rx_bytes_total",
            "counter",
            "Transport bytes received.",
            |p| p.rx_bytes,
        ),
        (
            "qgw_peer_tx_bytes_total",
            "counter",
            "Transport bytes sent.",
            |p| p.tx_bytes,
        ),
        (
            "qgw_peer_key_epoch",
            "gauge",
            "Number of the session in force.",
            |p| p.key_epoch,
        ),
        (
            "qgw_peer_latest_handshake_seconds",
            "gauge",
            "Unix time of the last handshake (0: none).",
            |p| p.latest_handshake_unix.unwrap_or(0),
        ),
        (
            "qgw_peer_hybrid_epoch",
            "gauge",
            "Hybrid key-agreement epoch in force (0: none or plain WireGuard).",
            |p| p.epoch,
        ),
        (
            "qgw_peer_pq_signature_verifications_total",
            "counter",
            "ML-DSA-65 verifications performed for this peer.",
            |p| p.pq_signature_verifications,
        ),
        (
            "qgw_peer_pq_kem_operations_total",
            "counter",
            "ML-KEM-768 operations performed for this peer.",
            |p| p.pq_kem_operations,
        ),
    ];
    let hybrid: Vec<&PeerStatus> = st.peers.iter().filter(|p| p.hybrid != "off").collect();
    let _ = writeln!(
        s,
        "# HELP qgw_peer_epoch_age_seconds Age of the hybrid epoch in force.\n# TYPE qgw_peer_epoch_age_seconds gauge"
    );
    for p in hybrid.iter().filter(|p| p.epoch_age_seconds.is_some()) {
        let age = p.epoch_age_seconds.unwrap_or(0);
        let _ = writeln!(
            s,
            "qgw_peer_epoch_age_seconds{{interface=\"{i}\",peer=\"{}\"}} {age}",
            esc(&p.name)
        );
    }
    let _ = writeln!(
        s,
        "# HELP qgw_peer_epoch_sources Key sources of the epoch in force (1 for the current combination).\n# TYPE qgw_peer_epoch_sources gauge"
    );
    for p in hybrid.iter().filter(|p| !p.key_sources.is_empty()) {
        let sources = p.key_sources.join("+");
        let _ = writeln!(
            s,
            "qgw_peer_epoch_sources{{interface=\"{i}\",peer=\"{}\",source=\"{}\"}} 1",
            esc(&p.name),
            esc(&sources)
        );
    }
    for (name, help, get) in [
        (
            "qgw_hybrid_dropped_total",
            "Hybrid key-agreement datagrams or messages dropped, by reason.",
            (|p: &PeerStatus| &p.hybrid_drops)
                as fn(&PeerStatus) -> &std::collections::BTreeMap<String, u64>,
        ),
        (
            "qgw_hybrid_rejects_total",
            "Hybrid exchanges refused (Reject sent or received), by reason.",
            |p: &PeerStatus| &p.hybrid_rejects,
        ),
    ] {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
        for p in &hybrid {
            for (reason, n) in get(p) {
                let _ = writeln!(
                    s,
                    "{name}{{interface=\"{i}\",peer=\"{}\",reason=\"{}\"}} {n}",
                    esc(&p.name),
                    esc(reason)
                );
            }
        }
    }
    for (name, kind, help, get) in per_peer {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for p in &st.peers {
            let _ = writeln!(
                s,
                "{name}{{interface=\"{i}\",peer=\"{}\"}} {}",
                esc(&p.name),
                get(p)
            );
        }
    }
    s
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
        };
        Metrics::respond(stream, &st);
        let out = client.join().unwrap();
        assert!(out.starts_with("HTTP/1.0 200 OK\r\n"), "{out}");
        assert!(out.contains("qgw_cookie_replies_sent_total{interface=\"x\"} 0"));
    }
}

//! The endpoint's answers (routing, content negotiation, health and readiness) and the server on
//! loopback: a scrape in both formats, and the limits (a trickling client cut off at its
//! deadline, oversized headers refused, the oldest connection evicted), each counted. Every wait
//! is bounded; nothing sleeps.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;

use super::*;

/// The bound on every wait in these tests.
const BOUND: Duration = Duration::from_secs(10);

/// A status with one peer that has no usable session, published `age` ago.
#[derive(Debug)]
struct Fixed {
    status: Status,
    age: Mutex<Duration>,
}

impl Fixed {
    fn new() -> Self {
        let peer = serde_json::json!({
            "name": "site-b", "public_key": "", "endpoint": null, "allowed_ips": [],
            "latest_handshake_unix": null, "rx_bytes": 10, "tx_bytes": 20,
            "key_epoch": 2, "persistent_keepalive": null, "hybrid": "off"
        });
        let status = Status {
            interface: "qgw0".into(),
            drops: [("replay".to_owned(), 3)].into_iter().collect(),
            peers: vec![serde_json::from_value(peer).unwrap()],
            ..Default::default()
        };
        Self {
            status,
            age: Mutex::new(Duration::ZERO),
        }
    }
}

impl Source for Fixed {
    fn status(&self) -> Status {
        self.status.clone()
    }

    fn age(&self) -> Duration {
        *self.age.lock().unwrap()
    }
}

fn get(path: &str, accept: Option<&str>) -> Request<()> {
    let mut request = Request::get(path);
    if let Some(a) = accept {
        request = request.header(ACCEPT, a);
    }
    request.body(()).unwrap()
}

fn kind(answer: &Response<Full<Bytes>>) -> &str {
    answer.headers()[CONTENT_TYPE].to_str().unwrap()
}

#[test]
fn routes_by_path_and_method_and_negotiates_the_format() {
    let src = Fixed::new();
    let text = respond(&get("/metrics?x=1", None), &src);
    assert_eq!(text.status(), StatusCode::OK);
    assert_eq!(kind(&text), "text/plain; version=0.0.4; charset=utf-8");
    // What Prometheus 2.x sends: OpenMetrics preferred.
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let om = respond(&get("/", Some(prometheus)), &src);
    assert!(kind(&om).starts_with("application/openmetrics-text; version=1.0.0"));
    assert_eq!(respond(&get("/nope", None), &src).status(), 404);
    let post = respond(&Request::post("/metrics").body(()).unwrap(), &src);
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers()[ALLOW], "GET, HEAD");
}

#[test]
fn health_follows_the_packet_threads_publications_and_readiness_its_sessions() {
    let src = Fixed::new();
    assert_eq!(respond(&get("/healthz", None), &src).status(), 200);
    *src.age.lock().unwrap() = STALL_AFTER;
    assert_eq!(respond(&get("/healthz", None), &src).status(), 503);
    let ready = respond(&get("/readyz", None), &src);
    assert_eq!(ready.status(), 503, "site-b has no usable session");
}

/// A running endpoint on loopback under `limits`.
struct Running {
    addr: SocketAddr,
    drops: Arc<Drops>,
    _thread: MetricsThread,
}

impl Running {
    fn start(limits: Limits) -> Self {
        let endpoint = Endpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = endpoint.local_addr().unwrap();
        let drops = Arc::new(Drops::new(&[Socket::Metrics]));
        let source = Arc::new(Fixed::new());
        let thread = MetricsThread::start(endpoint, source, Arc::clone(&drops), limits).unwrap();
        Self {
            addr,
            drops,
            _thread: thread,
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(BOUND)).unwrap();
        s
    }

    /// Sends `request` and reads until the server closes.
    fn ask(&self, request: &[u8]) -> String {
        let mut s = self.connect();
        s.write_all(request).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    fn dropped(&self, reason: &str) -> u64 {
        self.drops.snapshot()["metrics"][reason]
    }
}

#[test]
fn serves_a_scrape_in_either_format_and_closes() {
    let r = Running::start(Limits::default());
    let text = r.ask(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    assert!(text.contains("\nqgw_dropped_total{interface=\"qgw0\",reason=\"replay\"} 3\n"));
    let om =
        r.ask(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text\r\n\r\n");
    assert!(om.contains("\n# TYPE qgw_dropped counter\n"), "{om}");
    assert!(om.ends_with("# EOF\n"), "{om}");
    let head = r.ask(b"HEAD /healthz HTTP/1.0\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.0 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    assert_eq!(r.dropped("timeout") + r.dropped("too_large"), 0);
}

#[test]
fn a_trickling_client_is_cut_off_and_oversized_headers_refused() {
    let limits = Limits {
        phase: Duration::from_millis(300),
        ..Limits::default()
    };
    let r = Running::start(limits);
    let mut slow = r.connect();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nX: ").unwrap();
    let start = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(start.elapsed() < BOUND, "cut off at its deadline");
    let big = format!(
        "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(2 * MAX_REQUEST)
    );
    let refused = r.ask(big.as_bytes());
    assert!(
        refused.is_empty() || refused.starts_with("HTTP/1.1 431"),
        "{refused}"
    );
    // A well-behaved scrape still works.
    assert!(
        r.ask(b"GET /metrics HTTP/1.0\r\n\r\n")
            .starts_with("HTTP/1.0 200")
    );
    let counted = |reason| {
        let deadline = std::time::Instant::now() + BOUND;
        while r.dropped(reason) == 0 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        r.dropped(reason)
    };
    assert_eq!((counted("timeout"), counted("too_large")), (1, 1));
}

#[test]
fn a_full_endpoint_closes_its_oldest_connection() {
    let r = Running::start(Limits {
        max_connections: 2,
        ..Limits::default()
    });
    let mut oldest = r.connect();
    oldest.write_all(b"GET").unwrap();
    let _second = r.connect();
    // The server has accepted the first two once a scrape on a third connection is answered.
    let third = r.ask(b"GET /healthz HTTP/1.0\r\n\r\n");
    assert!(third.starts_with("HTTP/1.0 200"), "{third}");
    let mut rest = Vec::new();
    let _ = oldest.read_to_end(&mut rest);
    assert!(rest.is_empty(), "evicted without an answer");
    assert!(r.dropped("evicted") >= 1);
}

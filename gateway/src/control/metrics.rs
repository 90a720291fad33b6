//! The metrics endpoint (`metrics.listen`): HTTP/1.1 served by hyper on the daemon's own
//! `qgw-metrics` thread (a single-threaded tokio runtime), so a scrape costs the packet thread
//! nothing and the control sockets nothing.
//!
//! | path | answer |
//! |---|---|
//! | `/metrics` (also `/`) | the [`Status`] as Prometheus text 0.0.4, or OpenMetrics 1.0 when `Accept` asks for it ([`super::exposition`]) |
//! | `/healthz` | liveness: `200 ok` while the packet thread publishes its status (at least every 250 ms), `503` once it has not for [`STALL_AFTER`] |
//! | `/readyz` | readiness: `200 ready` when every peer has a session that may send, else `503` with the peers that have none |
//!
//! `GET` and `HEAD` only (`405` otherwise). No authentication: bind it to loopback or a
//! management network. The limits are those of the control sockets (`super::server`): request
//! headers of at most [`MAX_REQUEST`] bytes (hyper answers `431` beyond), the headers in within
//! [`PHASE_TIME`] and the whole exchange within twice that, one request per connection, and
//! [`MAX_CONNECTIONS`] open at once (a new one closes the oldest). The connections cut off are
//! counted under `socket="metrics"` in `qgw_control_connections_dropped_total`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ACCEPT, ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::conn::Dropped;
use super::exposition::{Format, render};
use super::server::{Drops, MAX_CONNECTIONS, PHASE_TIME, Socket};
use super::status::Status;

/// The packet thread is considered stalled once its status is this old.
pub const STALL_AFTER: Duration = Duration::from_secs(5);

/// Largest request headers read (hyper's smallest buffer; the body is ignored).
pub const MAX_REQUEST: usize = 8 * 1024;

/// How long a connection may take and how many may be open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time for the request headers to arrive; the whole exchange gets twice this.
    pub phase: Duration,
    /// Connections open at once; one more closes the oldest.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            phase: PHASE_TIME,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Where the endpoint's answers come from (the daemon's: `crate::daemon::control`).
pub trait Source: Send + Sync + 'static {
    /// The full status, at most a few milliseconds old.
    fn status(&self) -> Status;
    /// How long ago the packet thread last published its status.
    fn age(&self) -> Duration;
}

/// The bound metrics socket (bound before the daemon touches the network, served later).
#[derive(Debug)]
pub struct Endpoint {
    listener: std::net::TcpListener,
}

impl Endpoint {
    /// Binds `addr`.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Self { listener })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// The running `qgw-metrics` thread; dropping it stops the server and joins the thread.
#[derive(Debug)]
pub struct MetricsThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsThread {
    /// Serves `endpoint` from `source` under `limits`, counting cut-off connections in `drops`.
    pub fn start(
        endpoint: Endpoint,
        source: Arc<dyn Source>,
        drops: Arc<Drops>,
        limits: Limits,
    ) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("qgw-metrics".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(endpoint.listener) {
                        Ok(listener) => serve(listener, source, drops, limits, stopped).await,
                        Err(e) => warn!(error = %e, "metrics endpoint not served"),
                    }
                });
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for MetricsThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts until `stop`, each connection a task; the oldest is aborted when too many are open.
async fn serve(
    listener: tokio::net::TcpListener,
    source: Arc<dyn Source>,
    drops: Arc<Drops>,
    limits: Limits,
    mut stop: oneshot::Receiver<()>,
) {
    let mut open: VecDeque<tokio::task::JoinHandle<()>> = VecDeque::new();
    loop {
        let stream = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, most likely: wait instead of spinning.
                    debug!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        open.retain(|task| !task.is_finished());
        if open.len() >= limits.max_connections
            && let Some(oldest) = open.pop_front()
        {
            oldest.abort();
            debug!("metrics connection evicted");
            drops.count(Socket::Metrics, Dropped::Evicted);
        }
        let (source, drops) = (Arc::clone(&source), Arc::clone(&drops));
        open.push_back(tokio::spawn(connection(
            stream,
            source,
            drops,
            limits.phase,
        )));
        // Let the new connection read (and, if its request is there, be answered) before the
        // next accept: a well-behaved scrape is then done, not counted among the open ones, and
        // its header deadline runs from now.
        tokio::task::yield_now().await;
    }
    for task in open {
        task.abort();
    }
}

/// Serves one connection (one request) within its limits.
async fn connection(
    stream: tokio::net::TcpStream,
    source: Arc<dyn Source>,
    drops: Arc<Drops>,
    phase: Duration,
) {
    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
        let answer = respond(&request, &*source);
        async move { Ok::<_, Infallible>(answer) }
    });
    let exchange = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(false)
        .header_read_timeout(phase)
        .max_buf_size(MAX_REQUEST)
        .serve_connection(TokioIo::new(stream), service);
    let dropped = match tokio::time::timeout(2 * phase, exchange).await {
        Err(_) => Some(Dropped::Timeout),
        Ok(Err(e)) if e.is_timeout() => Some(Dropped::Timeout),
        Ok(Err(e)) if e.is_parse_too_large() => Some(Dropped::TooLarge),
        Ok(_) => None,
    };
    if let Some(why) = dropped {
        debug!(reason = why.label(), "metrics connection dropped");
        drops.count(Socket::Metrics, why);
    }
}

/// The answer to `request` (its method, path and `Accept` header) from `source`.
pub fn respond<B>(request: &Request<B>, source: &dyn Source) -> Response<Full<Bytes>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut answer = plain(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n".into());
        answer
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return answer;
    }
    match request.uri().path() {
        "/metrics" | "/" => {
            let accept = request.headers().get(ACCEPT);
            let format = Format::negotiate(accept.and_then(|a| a.to_str().ok()));
            let mut answer = Response::new(Full::new(Bytes::from(render(source.status(), format))));
            let kind = HeaderValue::from_static(format.content_type());
            answer.headers_mut().insert(CONTENT_TYPE, kind);
            answer
        }
        "/healthz" => match source.age() {
            age if age < STALL_AFTER => plain(StatusCode::OK, "ok\n".into()),
            age => plain(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("packet loop stalled: no status for {} s\n", age.as_secs()),
            ),
        },
        "/readyz" => match source.status().peers_not_ready().as_slice() {
            [] => plain(StatusCode::OK, "ready\n".into()),
            down => plain(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: no usable session with {}\n", down.join(", ")),
            ),
        },
        _ => plain(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// A `text/plain` answer.
fn plain(code: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = code;
    let kind = HeaderValue::from_static("text/plain; charset=utf-8");
    answer.headers_mut().insert(CONTENT_TYPE, kind);
    answer
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;

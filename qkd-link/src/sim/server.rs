//! The simulator's I/O: one HTTPS listener per KME with mutual TLS (ETSI GS QKD 014 §4), HTTP/1.1
//! by hyper, requests handed to the sans-IO [`Engine`] with the SAE ID from the client
//! certificate ([`super::identity`]), replies delayed by the simulated latency.
//!
//! Bounds: TLS handshake 10 s, request headers 60 s (also closes idle keep-alive connections),
//! request body `max_request_bytes`, 256 concurrent connections per KME (more are closed at once).
//! Fault "KME down": new connections are closed before the TLS handshake (the client sees a
//! connection failure, as with a crashed KME), open connections are shut down gracefully, and a
//! request that races in is answered 503.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::config::SimConfig;
use super::control::SimControl;
use super::engine::{Engine, Reply};
use super::entropy::{Entropy, OsEntropy};
use super::error::SimError;
use super::identity::sae_id_from_cert;
use super::{admin, route};
use crate::ids::SaeId;
use crate::{Error, pem};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: usize = 256;

/// A running simulator.
#[derive(Debug)]
pub struct SimHandle {
    control: Arc<SimControl>,
    kmes: Vec<(SaeId, SocketAddr)>,
    admin: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl SimHandle {
    /// The bound address of a KME (useful with port 0).
    pub fn kme_addr(&self, id: &str) -> Option<SocketAddr> {
        self.kmes
            .iter()
            .find(|(k, _)| k.as_str() == id)
            .map(|(_, a)| *a)
    }

    /// `https://IP:PORT` of a KME.
    pub fn kme_url(&self, id: &str) -> Option<String> {
        self.kme_addr(id).map(|a| format!("https://{a}"))
    }

    /// The bound admin API address, if configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Fault injection and state, in-process.
    pub fn control(&self) -> &Arc<SimControl> {
        &self.control
    }

    /// Stops accepting, asks open connections to finish, and waits for the listeners to stop.
    pub async fn shutdown(self) {
        self.shutdown.send_replace(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts every KME (and the admin API) of `cfg`, reading certificates from `pki_dir`.
pub async fn start(cfg: SimConfig, pki_dir: &Path) -> Result<SimHandle, SimError> {
    start_with_entropy(cfg, pki_dir, Box::new(OsEntropy)).await
}

/// As [`start`], with an injected entropy source (tests).
pub async fn start_with_entropy(
    cfg: SimConfig,
    pki_dir: &Path,
    entropy: Box<dyn Entropy + Send>,
) -> Result<SimHandle, SimError> {
    let mut acceptors = Vec::with_capacity(cfg.kmes.len());
    for k in &cfg.kmes {
        let stem = k.id.as_str().to_lowercase();
        let cert = pki_dir.join(
            k.cert
                .clone()
                .unwrap_or_else(|| format!("{stem}.pem").into()),
        );
        let key = pki_dir.join(
            k.key
                .clone()
                .unwrap_or_else(|| format!("{stem}.key").into()),
        );
        acceptors.push(TlsAcceptor::from(Arc::new(server_tls(
            &pki_dir.join(&cfg.ca),
            &cert,
            &key,
        )?)));
    }
    let mut listeners = Vec::with_capacity(cfg.kmes.len());
    for k in &cfg.kmes {
        let l = TcpListener::bind(k.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: k.listen,
                source,
            })?;
        let addr = l.local_addr().map_err(|source| SimError::Bind {
            addr: k.listen,
            source,
        })?;
        listeners.push((k.id.clone(), l, addr));
    }
    let admin_listener = match &cfg.admin {
        Some(a) => Some(
            TcpListener::bind(a.listen)
                .await
                .map_err(|source| SimError::Bind {
                    addr: a.listen,
                    source,
                })?,
        ),
        None => None,
    };
    let engine = Engine::new(&cfg, Instant::now(), entropy);
    let control = Arc::new(SimControl::new(
        engine,
        cfg.kmes.len(),
        cfg.max_request_bytes,
    ));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut kmes = Vec::new();
    for (idx, ((id, listener, addr), acceptor)) in listeners.into_iter().zip(acceptors).enumerate()
    {
        tracing::info!(kme = %id, %addr, "KME listening (HTTPS, mutual TLS)");
        kmes.push((id, addr));
        tasks.push(tokio::spawn(accept_loop(
            idx,
            listener,
            acceptor,
            Arc::clone(&control),
            shutdown_rx.clone(),
        )));
    }
    let mut admin_addr = None;
    if let Some(l) = admin_listener {
        let addr = l.local_addr().map_err(|source| SimError::Bind {
            addr: cfg.admin.as_ref().map_or(addr_any(), |a| a.listen),
            source,
        })?;
        tracing::info!(%addr, "admin API listening (loopback only)");
        admin_addr = Some(addr);
        tasks.push(tokio::spawn(admin::serve(
            l,
            Arc::clone(&control),
            shutdown_rx.clone(),
        )));
    }
    Ok(SimHandle {
        control,
        kmes,
        admin: admin_addr,
        shutdown,
        tasks,
    })
}

fn addr_any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// rustls server config: the KME certificate, client certificates required and verified against
/// the CA bundle, TLS 1.2/1.3, ALPN http/1.1.
fn server_tls(ca: &Path, cert: &Path, key: &Path) -> Result<rustls::ServerConfig, SimError> {
    let roots = Arc::new(pem::load_roots(ca)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, pem::provider())
        .build()
        .map_err(|e| Error::Tls(format!("client verifier from {}: {e}", ca.display())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(pem::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(pem::load_certs(cert)?, pem::load_private_key(key)?)
        .map_err(|e| Error::Pem {
            path: key.to_path_buf(),
            problem: format!("does not fit {}: {e}", cert.display()),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

async fn accept_loop(
    idx: usize,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    control: Arc<SimControl>,
    shutdown: watch::Receiver<bool>,
) {
    let connection_shutdown = shutdown.clone();
    accept_until_shutdown(listener, MAX_CONNECTIONS, shutdown, move |tcp| {
        if control.engine().kme_is_down(idx) {
            return None;
        }
        let (control, acceptor, shutdown) = (
            Arc::clone(&control),
            acceptor.clone(),
            connection_shutdown.clone(),
        );
        Some(connection(idx, tcp, acceptor, control, shutdown))
    })
    .await;
}

/// Accepts TCP connections until `shutdown` changes, serving at most `max_connections` at once
/// (any beyond that are closed at once). `serve` makes the task that serves an accepted stream,
/// or returns `None` to close it at once; the task is spawned holding one connection permit.
/// Shared by the KME listeners and the admin API.
pub(super) async fn accept_until_shutdown<F, Fut>(
    listener: TcpListener,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
    mut serve: F,
) where
    F: FnMut(TcpStream) -> Option<Fut>,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(max_connections));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            a = listener.accept() => a,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(task) = serve(tcp) else {
            continue;
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::debug!("connection limit reached; closing");
            continue;
        };
        tokio::spawn(async move {
            task.await;
            drop(permit);
        });
    }
}

async fn connection(
    idx: usize,
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    control: Arc<SimControl>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let identity = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(sae_id_from_cert);
    let Some(mut down) = control.down_signal(idx) else {
        return;
    };
    let svc_control = Arc::clone(&control);
    let service = service_fn(move |req| {
        let (control, identity) = (Arc::clone(&svc_control), identity.clone());
        async move { Ok::<_, Infallible>(handle(control, idx, identity, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            r = down.changed(), if !closing => {
                if r.is_err() || *down.borrow() {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            _ = shutdown.changed(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = tokio::time::sleep(GRACE), if closing => break,
        }
    }
}

async fn handle(
    control: Arc<SimControl>,
    idx: usize,
    identity: Option<SaeId>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, control.max_request_bytes)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return respond(Reply::error(
                400,
                format!("request body exceeds {} bytes", control.max_request_bytes),
            ));
        }
    };
    let Some(caller) = identity else {
        return respond(Reply::error(
            401,
            "client certificate does not carry a valid SAE ID as its Common Name",
        ));
    };
    let reply =
        match route::parse_request(&parts.method, parts.uri.path(), parts.uri.query(), &body) {
            Err(reply) => reply,
            Ok(api) => {
                let mut engine = control.engine();
                if engine.kme_is_down(idx) {
                    Reply::error(503, "KME is down (simulated fault)")
                } else {
                    engine.handle(Instant::now(), idx, &caller, api)
                }
            }
        };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    respond(reply)
}

pub(crate) fn respond(mut reply: Reply) -> Response<Full<Bytes>> {
    // The body moves into hyper's buffer without a copy; hyper does not zeroize it (documented).
    let body = Bytes::from(std::mem::take(&mut *reply.body));
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() =
        http::StatusCode::from_u16(reply.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

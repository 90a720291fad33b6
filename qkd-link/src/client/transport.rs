//! HTTPS transport to the KME: hyper 1 over rustls with the SAE's client certificate (ETSI GS QKD
//! 014 §4, §5.1). One pooled HTTP/1.1 client per [`super::KmeClient`]; every attempt has a
//! deadline; response bodies are read into a zeroizing buffer up to a fixed limit.
//!
//! Failures are classified for the retry policy: TCP connect failures and connections closed
//! before TLS completes are [`Error::Connect`] (retryable); any rustls error (untrusted or expired
//! certificate, wrong host name, our certificate rejected) is [`Error::Tls`] (fatal, never
//! downgraded); other HTTP failures are [`Error::Http`].
//!
//! Response bodies (ETSI GS QKD 014 §6.3: a Key container carries the keys in Base64, so the
//! whole body is secret) are read by [`read_body`]. Wiped there: the buffer returned (on drop),
//! every buffer it outgrows, and each frame once its bytes are copied, if the client holds the
//! frame's only reference (`Bytes::try_into_mut`). Not reachable from here: hyper 1's HTTP/1
//! decoder splits frames off its connection read buffer, which still references them when they
//! arrive, so those bytes (and rustls' decrypted record buffers) are freed by hyper and rustls
//! without wiping (qkd-link/README.md, "Keys").

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use zeroize::{Zeroize, Zeroizing};

use super::ClientConfig;
use crate::error::Error;
use crate::pem;

/// Idle pooled connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(30);

pub(crate) struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    request_timeout: Duration,
    max_body: usize,
}

impl core::fmt::Debug for Transport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Transport")
            .field("request_timeout", &self.request_timeout)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

/// Builds the rustls client configuration: the CA bundle as the only trust anchors, the SAE's
/// certificate and key for client authentication, TLS 1.2 and 1.3 (§4: TLS >= 1.2).
fn tls_config(cfg: &ClientConfig) -> Result<rustls::ClientConfig, Error> {
    let roots = pem::load_roots(&cfg.ca)?;
    let certs = pem::load_certs(&cfg.cert)?;
    let key = pem::load_private_key(&cfg.key)?;
    rustls::ClientConfig::builder_with_provider(pem::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| Error::Pem {
            path: cfg.key.clone(),
            problem: format!("key does not fit certificate {}: {e}", cfg.cert.display()),
        })
}

impl Transport {
    pub(crate) fn new(cfg: &ClientConfig) -> Result<Self, Error> {
        let tls = tls_config(cfg)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_millis(cfg.connect_timeout_ms)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(4)
            .build(https);
        Ok(Self {
            client,
            request_timeout: Duration::from_millis(cfg.request_timeout_ms),
            max_body: cfg.max_response_bytes,
        })
    }

    /// Sends one request and reads the whole response body (bounded), within the deadline.
    pub(crate) async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Zeroizing<Vec<u8>>), Error> {
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::ACCEPT, "application/json");
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let req = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::InvalidArgument(format!("cannot build request for {uri}: {e}")))?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(classify)?;
            let status = resp.status();
            let body = read_body(resp.into_body(), self.max_body).await?;
            Ok((status, body))
        };
        match tokio::time::timeout(self.request_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout(self.request_timeout)),
        }
    }
}

/// Reads `body` frame by frame into a zeroizing buffer, failing once it passes `max` bytes. The
/// buffer grows by copying into a fresh zeroizing buffer, so no stale copy is left behind.
pub async fn read_body<B>(mut body: B, max: usize) -> Result<Zeroizing<Vec<u8>>, Error>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let hint = usize::try_from(body.size_hint().lower()).unwrap_or(max);
    let mut out = Zeroizing::new(Vec::with_capacity(hint.min(max)));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| match find_rustls_error(&e) {
            Some(tls) => Error::Tls(tls.to_string()),
            None => Error::Http(Box::new(e)),
        })?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max {
                return Err(Error::ResponseTooLarge { limit: max });
            }
            if out.len() + data.len() > out.capacity() {
                let mut bigger = Zeroizing::new(Vec::with_capacity(
                    (out.len() + data.len()).max(out.capacity() * 2).min(max),
                ));
                bigger.extend_from_slice(&out);
                out = bigger;
            }
            out.extend_from_slice(&data);
            wipe_if_unique(data);
        }
    }
    Ok(out)
}

/// Zeroes a frame's bytes if nobody else holds them (writing to shared bytes is impossible).
fn wipe_if_unique(data: Bytes) {
    if let Ok(mut only) = data.try_into_mut() {
        only[..].zeroize();
    }
}

/// Finds a rustls error anywhere in an error's source chain (including inside `io::Error`).
fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(e);
    for _ in 0..16 {
        let err = current?;
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        // `io::Error::source` skips the wrapped error itself, so step into it explicitly
        // (hyper-rustls wraps tokio-rustls' io::Error, which wraps the rustls::Error).
        current = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

fn classify(e: hyper_util::client::legacy::Error) -> Error {
    if let Some(tls) = find_rustls_error(&e) {
        return Error::Tls(tls.to_string());
    }
    if e.is_connect() {
        Error::Connect(Box::new(e))
    } else {
        Error::Http(Box::new(e))
    }
}

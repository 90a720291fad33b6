//! The ETSI GS QKD 014 client (§5): Get status (§5.2), Get key (§5.3, GET and POST) and Get key
//! with key IDs (§5.4, GET and POST), over mutual TLS, with bounded retries and metrics.
//!
//! Every reply goes through the checked parsers in [`crate::api::parse`]; HTTP 400/401/503 become
//! typed errors carrying the spec's `{message, details}`. Requests the KME would have to reject
//! (zero keys, sizes not a multiple of 8, duplicate key IDs) are refused locally.

mod config;
mod transport;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, StatusCode};

pub use config::{
    ClientConfig, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_REQUEST_TIMEOUT_MS,
};
pub use transport::read_body;

use crate::api::parse::{KeyExpectation, parse_error_body, parse_key_container, parse_status};
use crate::api::{API_PREFIX, Call, KeyIdEntry, KeyIds, KeyRequest, Status};
use crate::error::Error;
use crate::ids::{KeyId, SaeId};
use crate::key::QkdKey;
use crate::metrics::Metrics;
use crate::retry::jitter_draw;
use config::{BaseUrl, parse_base_url};
use transport::Transport;

/// Most keys the client asks for or accepts in one request (the KME's own limit is usually lower).
pub const MAX_KEYS_PER_CALL: u32 = 1024;

/// A client for one KME, acting as one SAE. Cheap to share behind an `Arc`; requests may run
/// concurrently over pooled connections.
#[derive(Debug)]
pub struct KmeClient {
    cfg: ClientConfig,
    base: BaseUrl,
    transport: Transport,
    metrics: Arc<Metrics>,
}

impl KmeClient {
    /// Validates the configuration and loads the TLS material (fails on insecure key files).
    pub fn new(cfg: ClientConfig) -> Result<Self, Error> {
        Self::with_metrics(cfg, Arc::new(Metrics::new()))
    }

    /// As [`KmeClient::new`], recording into shared metrics.
    pub fn with_metrics(cfg: ClientConfig, metrics: Arc<Metrics>) -> Result<Self, Error> {
        cfg.validate("<client config>")?;
        let base = parse_base_url(&cfg.kme_url).map_err(|problem| Error::Config {
            file: "<client config>".into(),
            field: "kme_url".into(),
            problem,
        })?;
        let transport = Transport::new(&cfg)?;
        Ok(Self {
            cfg,
            base,
            transport,
            metrics,
        })
    }

    /// This SAE's ID.
    pub fn sae_id(&self) -> &SaeId {
        &self.cfg.sae_id
    }

    /// The metrics this client records into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn url(&self, peer: &SaeId, call: Call, query: &str) -> String {
        format!(
            "{}{}{API_PREFIX}/{peer}/{}{query}",
            self.base.origin,
            self.base.prefix,
            call.segment()
        )
    }

    /// Get status (§5.2): the link state between this SAE's KME and the slave's KME.
    pub async fn status(&self, slave: &SaeId) -> Result<Status, Error> {
        let uri = self.url(slave, Call::Status, "");
        self.call(Method::GET, &uri, None, Retry::Transient, |body| {
            let status = parse_status(body)?;
            if status.master_sae_id != self.cfg.sae_id.as_str()
                || status.slave_sae_id != slave.as_str()
            {
                return Err(Error::malformed(format!(
                    "status names master {:?} and slave {:?}, expected {} and {slave}",
                    status.master_sae_id, status.slave_sae_id, self.cfg.sae_id
                )));
            }
            Ok(status)
        })
        .await
    }

    /// Get key by POST (§5.3, Key request §6.2): `request.number` keys (default 1) of
    /// `request.size` bits (default the KME's `key_size`) shared with `slave`.
    pub async fn enc_keys(
        &self,
        slave: &SaeId,
        request: &KeyRequest,
    ) -> Result<Vec<QkdKey>, Error> {
        let number = check_number_and_size(request.number, request.size)?;
        for id in &request.additional_slave_sae_ids {
            SaeId::new(id.as_str()).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        }
        let body = serde_json::to_vec(request)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode key request: {e}")))?;
        let uri = self.url(slave, Call::EncKeys, "");
        let expect = KeyExpectation {
            number,
            size_bits: request.size,
            ids: None,
        };
        self.call_keys(Method::POST, &uri, Some(body), &expect, Retry::Transient)
            .await
    }

    /// Get key by GET (§5.3): `?number=&size=`, both optional.
    pub async fn enc_keys_get(
        &self,
        slave: &SaeId,
        number: Option<u32>,
        size: Option<u32>,
    ) -> Result<Vec<QkdKey>, Error> {
        let n = check_number_and_size(number, size)?;
        let mut params = Vec::new();
        if let Some(number) = number {
            params.push(format!("number={number}"));
        }
        if let Some(size) = size {
            params.push(format!("size={size}"));
        }
        let query = if params.is_empty() {
            String::new()
        } else {
            format!("?{}", params.join("&"))
        };
        let uri = self.url(slave, Call::EncKeys, &query);
        let expect = KeyExpectation {
            number: n,
            size_bits: size,
            ids: None,
        };
        (self.call_keys(Method::GET, &uri, None, &expect, Retry::Transient)).await
    }

    /// Get key with key IDs by POST (§5.4, Key IDs §6.4): the slave fetches the keys `master`
    /// obtained, in the order given. Each key is erased at the KME once delivered, so the
    /// request is retried only if it never reached the KME ([`Error::is_unsent`]).
    pub async fn dec_keys(&self, master: &SaeId, ids: &[KeyId]) -> Result<Vec<QkdKey>, Error> {
        if ids.is_empty() || ids.len() > MAX_KEYS_PER_CALL as usize {
            return Err(Error::InvalidArgument(format!(
                "dec_keys needs 1..={MAX_KEYS_PER_CALL} key IDs, got {}",
                ids.len()
            )));
        }
        if ids.iter().collect::<HashSet<_>>().len() != ids.len() {
            return Err(Error::InvalidArgument("duplicate key IDs".into()));
        }
        let body = KeyIds {
            key_ids: ids
                .iter()
                .map(|id| KeyIdEntry {
                    key_id: id.to_string(),
                    key_id_extension: None,
                })
                .collect(),
            key_ids_extension: None,
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode key IDs: {e}")))?;
        let uri = self.url(master, Call::DecKeys, "");
        let expect = KeyExpectation {
            number: ids.len(),
            size_bits: None,
            ids: Some(ids),
        };
        self.call_keys(Method::POST, &uri, Some(body), &expect, Retry::OnlyUnsent)
            .await
    }

    /// Get key with key IDs by GET (§5.4): `?key_ID=` for exactly one key.
    pub async fn dec_key_get(&self, master: &SaeId, id: KeyId) -> Result<QkdKey, Error> {
        let uri = self.url(master, Call::DecKeys, &format!("?key_ID={id}"));
        let ids = [id];
        let expect = KeyExpectation {
            number: 1,
            size_bits: None,
            ids: Some(&ids),
        };
        let mut keys =
            (self.call_keys(Method::GET, &uri, None, &expect, Retry::OnlyUnsent)).await?;
        keys.pop()
            .ok_or_else(|| Error::malformed("key container is empty"))
    }

    async fn call_keys(
        &self,
        method: Method,
        uri: &str,
        body: Option<Vec<u8>>,
        expect: &KeyExpectation<'_>,
        retry: Retry,
    ) -> Result<Vec<QkdKey>, Error> {
        let keys = self
            .call(method, uri, body, retry, |b| parse_key_container(b, expect))
            .await?;
        let bytes = keys.iter().map(|k| k.expose().len()).sum();
        self.metrics.record_keys(keys.len(), bytes);
        Ok(keys)
    }

    /// One logical request: attempts, backoff, metrics, status-code mapping.
    async fn call<T>(
        &self,
        method: Method,
        uri: &str,
        body: Option<Vec<u8>>,
        retry_on: Retry,
        parse: impl Fn(&[u8]) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let policy = &self.cfg.retry;
        let mut retry = 0u32;
        loop {
            let started = Instant::now();
            let sent = self.transport.send(method.clone(), uri, body.clone()).await;
            self.metrics.record_latency(started.elapsed());
            let outcome = match sent {
                Ok((status, reply)) => {
                    self.metrics.set_reachable(true);
                    if status == StatusCode::OK {
                        parse(&reply)
                    } else {
                        Err(status_error(status, &reply))
                    }
                }
                Err(e) => {
                    if matches!(e, Error::Connect(_) | Error::Timeout(_) | Error::Tls(_)) {
                        self.metrics.set_reachable(false);
                    }
                    Err(e)
                }
            };
            match outcome {
                Ok(v) => return Ok(v),
                Err(e) => {
                    self.metrics.record_error(e.kind());
                    let retryable = match retry_on {
                        Retry::Transient => e.is_retryable(),
                        Retry::OnlyUnsent => e.is_unsent(),
                    };
                    if !retryable || retry + 1 >= policy.max_attempts {
                        return Err(e);
                    }
                    let pause = policy.backoff(retry, jitter_draw());
                    tracing::debug!(%method, uri, error = %e, ?pause, "retrying KME request");
                    tokio::time::sleep(pause).await;
                    retry += 1;
                }
            }
        }
    }
}

/// Which failures the retry policy may answer with another attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Connect failures, timeouts and 503 ([`Error::is_retryable`]): the request consumes
    /// nothing, or what it consumed is only wasted, never reused.
    Transient,
    /// Only a request that never reached the KME ([`Error::is_unsent`]): `dec_keys`.
    OnlyUnsent,
}

/// Local checks of `number` and `size` (§6.2); returns the number of keys expected.
fn check_number_and_size(number: Option<u32>, size: Option<u32>) -> Result<usize, Error> {
    let n = number.unwrap_or(1);
    if n == 0 || n > MAX_KEYS_PER_CALL {
        return Err(Error::InvalidArgument(format!(
            "number {n} is outside 1..={MAX_KEYS_PER_CALL}"
        )));
    }
    if let Some(size) = size
        && (size == 0 || size % 8 != 0)
    {
        return Err(Error::InvalidArgument(format!(
            "size {size} bits is not a positive multiple of 8"
        )));
    }
    Ok(n as usize)
}

/// Maps a non-200 reply to a typed error (§6.5; 401 bodies are optional, reference §5).
fn status_error(status: StatusCode, body: &[u8]) -> Error {
    let e = parse_error_body(body);
    match status {
        StatusCode::BAD_REQUEST => Error::BadRequest {
            message: e.message,
            details: e.details,
        },
        StatusCode::UNAUTHORIZED => Error::Unauthorized { message: e.message },
        StatusCode::SERVICE_UNAVAILABLE => Error::ServiceUnavailable { message: e.message },
        other => Error::UnexpectedStatus {
            status: other.as_u16(),
            message: e.message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_typed_errors() {
        let body = br#"{"message":"size shall be a multiple of 8","details":[{"a":1}]}"#;
        match status_error(StatusCode::BAD_REQUEST, body) {
            Error::BadRequest { message, details } => {
                assert_eq!(message, "size shall be a multiple of 8");
                assert_eq!(details.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            status_error(StatusCode::UNAUTHORIZED, b""),
            Error::Unauthorized { .. }
        ));
        assert!(status_error(StatusCode::SERVICE_UNAVAILABLE, b"{}").is_retryable());
        assert!(matches!(
            status_error(StatusCode::NOT_FOUND, b"no keys"),
            Error::UnexpectedStatus { status: 404, .. }
        ));
    }

    #[test]
    fn nonsensical_requests_are_refused_locally() {
        assert!(check_number_and_size(Some(0), None).is_err());
        assert!(check_number_and_size(Some(MAX_KEYS_PER_CALL + 1), None).is_err());
        assert!(check_number_and_size(None, Some(255)).is_err());
        assert!(check_number_and_size(None, Some(0)).is_err());
        assert_eq!(check_number_and_size(None, None).ok(), Some(1));
        assert_eq!(check_number_and_size(Some(5), Some(256)).ok(), Some(5));
    }
}

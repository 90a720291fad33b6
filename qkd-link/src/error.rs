//! The client's error type: every way an ETSI GS QKD 014 exchange can fail (§5, §6.5 "Error").
//!
//! HTTP 400/401/503 with the spec's `{message, details}` body become [`Error::BadRequest`],
//! [`Error::Unauthorized`] and [`Error::ServiceUnavailable`]. A KME that breaks the protocol (bad
//! JSON, wrong key count or length, non-UUID IDs, oversized bodies) is [`Error::MalformedResponse`]
//! or [`Error::ResponseTooLarge`]: peer misbehaviour, never a panic.

use std::path::PathBuf;
use std::time::Duration;

/// A boxed error source for transport failures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

use crate::api::msg::KEYS_NOT_FOUND as MSG_KEYS_NOT_FOUND;

/// Everything that can go wrong in qkd-link's client and configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is missing, unknown or out of range.
    #[error("{file}: field `{field}`: {problem}")]
    Config {
        /// The configuration file (or `<inline>`).
        file: String,
        /// The offending field, dotted path.
        field: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// A private key file is readable or writable by group or others.
    #[error(
        "refusing private key file {}: mode {mode:04o} gives group/other access; run `chmod 600 {}`",
        path.display(), path.display()
    )]
    InsecureKeyFile {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A private key file is a symbolic link, not a regular file, too large, or owned by neither
    /// this process's user nor root ([`crate::keyfile`]).
    #[error("refusing private key file {}: {problem}", path.display())]
    KeyFileRefused {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        problem: crate::keyfile::KeyFileProblem,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{}: {problem}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The caller asked for something the client refuses to send (for example `number = 0`).
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// HTTP 400 from the KME.
    #[error("KME rejected the request (400): {message}")]
    BadRequest {
        /// The `message` field of the error body.
        message: String,
        /// The `details` array of the error body, if any.
        details: Vec<serde_json::Value>,
    },
    /// HTTP 401 from the KME: this SAE may not make this call. Never retried.
    #[error("KME refused this SAE (401): {message}")]
    Unauthorized {
        /// The `message` field, or a placeholder when the body was empty.
        message: String,
    },
    /// HTTP 503 from the KME, typically "no key available". Retried with backoff.
    #[error("KME unavailable (503): {message}")]
    ServiceUnavailable {
        /// The `message` field of the error body.
        message: String,
    },
    /// Any other HTTP status (implementations in the field use 404, 409, 422, 500, 504...).
    #[error("KME answered HTTP {status}: {message}")]
    UnexpectedStatus {
        /// The HTTP status code.
        status: u16,
        /// The `message` field, or an excerpt of the body.
        message: String,
    },
    /// TCP connect failed, or the connection closed before TLS completed. Retried with backoff.
    #[error("cannot connect to the KME: {0}")]
    Connect(#[source] BoxError),
    /// The request did not complete within the configured deadline. Retried with backoff.
    #[error("KME request timed out after {0:?}")]
    Timeout(Duration),
    /// TLS failed: bad or untrusted certificate, wrong host name, client certificate rejected.
    /// Never retried and never downgraded.
    #[error("TLS failure with the KME: {0}")]
    Tls(String),
    /// The KME's reply breaks ETSI 014 (peer misbehaviour).
    #[error("malformed KME response: {what}")]
    MalformedResponse {
        /// What was wrong.
        what: String,
    },
    /// The KME's reply body is larger than the configured limit.
    #[error("KME response body exceeds {limit} bytes")]
    ResponseTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// HTTP-level failure after the connection was up (reset mid-response, protocol error).
    #[error("HTTP failure with the KME: {0}")]
    Http(#[source] BoxError),
}

/// The error categories counted by [`crate::Metrics`]; stable labels for Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Configuration, files, PEM.
    Config,
    /// Refused locally before sending.
    InvalidArgument,
    /// 400 (other than key-not-found).
    BadRequest,
    /// 400 "one or more keys specified are not found on KME".
    KeyNotFound,
    /// 401.
    Unauthorized,
    /// 503.
    ServiceUnavailable,
    /// Other HTTP status.
    UnexpectedStatus,
    /// Connect failure.
    Connect,
    /// Deadline exceeded.
    Timeout,
    /// TLS failure.
    Tls,
    /// Malformed or oversized reply.
    Malformed,
    /// HTTP failure.
    Http,
}

impl ErrorKind {
    /// Every kind, in a fixed order (index = position in the metrics array).
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::Config,
        ErrorKind::InvalidArgument,
        ErrorKind::BadRequest,
        ErrorKind::KeyNotFound,
        ErrorKind::Unauthorized,
        ErrorKind::ServiceUnavailable,
        ErrorKind::UnexpectedStatus,
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Tls,
        ErrorKind::Malformed,
        ErrorKind::Http,
    ];

    /// A stable snake_case label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::KeyNotFound => "key_not_found",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::ServiceUnavailable => "service_unavailable",
            ErrorKind::UnexpectedStatus => "unexpected_status",
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::Malformed => "malformed",
            ErrorKind::Http => "http",
        }
    }

    pub(crate) fn index(self) -> usize {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

impl Error {
    /// The metrics category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config { .. }
            | Error::InsecureKeyFile { .. }
            | Error::KeyFileRefused { .. }
            | Error::Io { .. } => ErrorKind::Config,
            Error::Pem { .. } => ErrorKind::Config,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::BadRequest { .. } if self.is_key_not_found() => ErrorKind::KeyNotFound,
            Error::BadRequest { .. } => ErrorKind::BadRequest,
            Error::Unauthorized { .. } => ErrorKind::Unauthorized,
            Error::ServiceUnavailable { .. } => ErrorKind::ServiceUnavailable,
            Error::UnexpectedStatus { .. } => ErrorKind::UnexpectedStatus,
            Error::Connect(_) => ErrorKind::Connect,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::Tls(_) => ErrorKind::Tls,
            Error::MalformedResponse { .. } | Error::ResponseTooLarge { .. } => {
                ErrorKind::Malformed
            }
            Error::Http(_) => ErrorKind::Http,
        }
    }

    /// Whether the retry policy may try again: connect failures, timeouts and 503 only.
    /// Retrying is safe for key secrecy (a KME never hands a key out twice); a retried `enc_keys`
    /// whose first attempt reached the KME may waste key material.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Connect(_) | Error::Timeout(_) | Error::ServiceUnavailable { .. }
        )
    }

    /// Whether the request certainly never reached the KME (the connection could not be made):
    /// the only failure after which a request that consumes keys (`dec_keys`, §5.4: the KME
    /// deletes a key once delivered) may be sent again.
    pub fn is_unsent(&self) -> bool {
        matches!(self, Error::Connect(_))
    }

    /// True for the spec's 400 "one or more keys specified are not found on KME". The slave's KME
    /// may not have synchronised yet; the caller decides whether to ask again (reference §10.3).
    pub fn is_key_not_found(&self) -> bool {
        matches!(self, Error::BadRequest { message, .. } if message == MSG_KEYS_NOT_FOUND)
    }

    pub(crate) fn malformed(what: impl Into<String>) -> Self {
        Error::MalformedResponse { what: what.into() }
    }
}

/// An error type with a "bad configuration field" case: the client's [`Error::Config`] and the
/// simulator's `SimError::Config`. The YAML reading both configurations share reports through it,
/// so each keeps its own error type.
pub(crate) trait ConfigError {
    /// The error for `field` of the configuration `file`: what is wrong and how to fix it.
    fn config(file: &str, field: &str, problem: String) -> Self;
}

impl ConfigError for Error {
    fn config(file: &str, field: &str, problem: String) -> Self {
        Error::Config {
            file: file.to_string(),
            field: field.to_string(),
            problem,
        }
    }
}

/// Parses configuration YAML into `T`, whose serde attributes reject unknown fields. A syntax
/// error, an unknown field or a wrong type is reported against `file` as the field `(yaml)`; the
/// caller validates the values.
pub(crate) fn parse_yaml<T, E>(text: &str, file: &str) -> Result<T, E>
where
    T: serde::de::DeserializeOwned,
    E: ConfigError,
{
    serde_saphyr::from_str(text).map_err(|e| E::config(file, "(yaml)", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_errors_are_retryable() {
        assert!(Error::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(Error::Connect("refused".into()).is_retryable());
        assert!(
            Error::ServiceUnavailable {
                message: "no key".into()
            }
            .is_retryable()
        );
        assert!(
            !Error::Unauthorized {
                message: String::new()
            }
            .is_retryable()
        );
        assert!(!Error::Tls("bad certificate".into()).is_retryable());
        assert!(!Error::malformed("x").is_retryable());
    }

    #[test]
    fn key_not_found_has_its_own_kind() {
        let e = Error::BadRequest {
            message: MSG_KEYS_NOT_FOUND.into(),
            details: vec![],
        };
        assert_eq!(e.kind(), ErrorKind::KeyNotFound);
        assert!(e.is_key_not_found());
        let other = Error::BadRequest {
            message: "size shall be a multiple of 8".into(),
            details: vec![],
        };
        assert_eq!(other.kind(), ErrorKind::BadRequest);
    }

    #[test]
    fn kinds_have_distinct_indices_and_labels() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
        let labels: std::collections::HashSet<_> =
            ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(labels.len(), ErrorKind::ALL.len());
    }
}

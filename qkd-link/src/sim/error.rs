//! The simulator's error type (configuration, PKI generation, serving).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::ConfigError;

/// Everything that stops `qkd-kme-sim` from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A configuration value is missing, unknown or inconsistent.
    #[error("{file}: field `{field}`: {problem}")]
    Config {
        /// The configuration file.
        file: String,
        /// The offending field, dotted path.
        field: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// Loading certificates or keys failed (includes key files with group/other permissions).
    #[error(transparent)]
    Tls(#[from] crate::Error),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A PKI file exists and `--force` was not given.
    #[error("{} already exists; pass --force to overwrite the demo PKI", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Pki(String),
    /// Bad command line.
    #[error("{0}")]
    Usage(String),
}

impl ConfigError for SimError {
    fn config(file: &str, field: &str, problem: String) -> Self {
        SimError::Config {
            file: file.to_string(),
            field: field.to_string(),
            problem,
        }
    }
}

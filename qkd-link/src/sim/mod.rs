//! `qkd-kme-sim`: a simulator of QKD Key Management Entities speaking ETSI GS QKD 014 v1.1.1.
//!
//! * [`config`]: the YAML file (KMEs, trusted nodes, links, limits, latency, faults).
//! * [`link`], [`engine`]: the sans-IO model (key production, ETSI semantics), clock injected.
//! * [`route`]: HTTP request to [`engine::ApiRequest`] (pure).
//! * [`server`]: one HTTPS listener per KME, mutual TLS, SAE identity from the client certificate.
//! * [`admin`]: the loopback-only fault-injection API.
//! * [`pki`]: the demo CA and certificates; [`cli`]: the command line.

pub mod admin;
pub mod cli;
pub mod config;
pub mod control;
pub mod engine;
pub mod entropy;
pub mod error;
pub mod identity;
pub mod link;
pub mod pki;
pub mod route;
pub mod server;

pub use config::SimConfig;
pub use control::SimControl;
pub use error::SimError;
pub use server::{SimHandle, start, start_with_entropy};

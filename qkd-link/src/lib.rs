//! qkd-link: the ETSI GS QKD 014 v1.1.1 key-delivery client the qgw gateway uses, and
//! `qkd-kme-sim`, a KME simulator that stands in for QKD hardware.
//!
//! Layout (one concern per module):
//! * [`api`]: the spec's data formats (§6) and the checked parsers of every response body.
//! * [`ids`], [`key`]: validated SAE/key IDs and the zeroizing [`QkdKey`].
//! * [`client`]: the mutual-TLS client for Get status, Get key and Get key with key IDs (§5).
//! * [`pool`] (no I/O) and [`prefetch`] (its tokio driver): the master-side key buffer, sized by
//!   [`prefetch_config`]; [`gate`] bounds the requests of all the buffers of one client.
//! * [`keyfile`]: reading private key files (one open, checked with `fstat`), used by [`pem`]
//!   and by the gateway's own key files.
//! * [`retry`], [`metrics`], [`error`].
//! * `sim` (cargo feature `sim`, off by default): the simulator (sans-IO KME logic, link model,
//!   HTTPS driver, admin API, PKI). The gateway links only the client.
//!
//! Roles (§4): the SAE that starts an epoch is the *master*: it calls `enc_keys` and sends only the
//! key ID to its peer; the peer, the *slave*, calls `dec_keys` with that ID on its own KME. Both end
//! with the same bytes.

pub mod api;
pub mod client;
pub mod error;
pub mod gate;
pub mod ids;
pub mod key;
pub mod keyfile;
pub mod metrics;
pub mod pem;
pub mod pool;
pub mod prefetch;
pub mod prefetch_config;
pub mod retry;
#[cfg(feature = "sim")]
pub mod sim;

pub use client::{ClientConfig, KmeClient};
pub use error::{Error, ErrorKind};
pub use gate::FetchGate;
pub use ids::{KeyId, SaeId};
pub use key::QkdKey;
pub use metrics::{Metrics, MetricsSnapshot};
pub use pool::KeyPool;
pub use prefetch::{KeySource, Prefetcher};
pub use prefetch_config::PrefetchConfig;
pub use retry::RetryPolicy;

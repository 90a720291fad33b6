//! `qgw`: a WireGuard-compatible tunnel whose preshared-key slot the hybrid key agreement fills.
//!
//! | module | what | I/O |
//! |---|---|---|
//! | [`node`] | one site's gateway as a sans-IO state machine: WireGuard, every peer's hybrid key agreement, the operations view | none: `handle_*` in, `poll_*` out |
//! | [`proto`] | the WireGuard protocol core (whitepaper §5–§6) | none |
//! | [`hybrid`] | the hybrid post-quantum + QKD key agreement (docs/protocol.md) | none |
//! | [`ops`] | policy state, peer up/down, audit events | none |
//! | [`audit`] | the hash-chained, signed audit log and its verifier | files |
//! | [`control`] | the control plane's protocols: status, UAPI, metrics | sockets |
//! | [`daemon`] | the shell: clocks, TUN, UDP, the KME client, threads | all of it |
//! | [`io`] | TUN (the one unsafe module), batched UDP, systemd notifications | devices |
//! | [`config`] | the YAML file, validated into a node configuration | files |

pub mod audit;
pub mod classes;
pub mod config;
pub mod config_audit;
pub mod config_classes;
pub mod config_hybrid;
pub mod config_hybrid_kme;
pub mod config_schema;
pub mod control;
pub mod daemon;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod hybrid;
pub mod io;
pub mod keyfile;
pub mod node;
pub mod ops;
pub mod proto;

pub use error::{DropReason, Error};

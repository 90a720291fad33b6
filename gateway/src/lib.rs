//! `qgw`: a WireGuard-compatible tunnel whose preshared-key slot the hybrid key agreement fills.
//!
//! [`proto`] is the sans-IO protocol core (whitepaper §5–§6); it never reads a clock or touches a
//! socket. The daemon's event loop feeds it bytes and `now`, and carries out what it returns.

pub mod audit;
pub mod config;
pub mod config_audit;
pub mod config_hybrid;
pub mod control;
pub mod daemon;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod hybrid;
pub mod hybrid_host;
pub mod io;
pub mod keyfile;
pub mod kme;
pub mod ops;
pub mod ops_host;
pub mod proto;

pub use error::{DropReason, Error};

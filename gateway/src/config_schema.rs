//! The YAML schema of one `qgw` interface as serde reads it (every key is documented in
//! `configs/README.md`): unknown keys are errors; values keep their line numbers (`Spanned`) so
//! [`crate::config`]'s validation can name the file, line and field of any mistake.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The local interface.
    pub interface: InterfaceConfig,
    /// Remote sites.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Metrics endpoint.
    pub metrics: Option<MetricsConfig>,
    /// This site's KME or KMEs (ETSI GS QKD 014 over mutual TLS), for hybrid peers with QKD.
    pub qkd: Option<Spanned<crate::config_hybrid::KmeConfig>>,
    /// The tamper-evident audit trail (docs/audit.md).
    pub audit: Option<crate::config_audit::AuditConfig>,
    /// Traffic-class rules, tried in order before the built-in ones.
    #[serde(default)]
    pub classes: Vec<crate::config_classes::ClassConfig>,
}

/// `interface:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceConfig {
    /// TUN interface name (1–15 bytes).
    pub name: Spanned<String>,
    /// Interface addresses in CIDR form, one or a list.
    pub address: Spanned<OneOrMany>,
    /// UDP port to listen on (0 or absent: any).
    #[serde(default)]
    pub listen_port: u16,
    /// File with the Base64 private key.
    pub private_key_file: Spanned<PathBuf>,
    /// Tunnel MTU.
    #[serde(default = "default_mtu")]
    pub mtu: Spanned<usize>,
    /// Serve WireGuard's cross-platform UAPI on `/var/run/wireguard/<name>.sock` (default true).
    #[serde(default = "yes")]
    pub uapi: bool,
    /// Segmentation offloads on the TUN device and the UDP socket where the kernel has them
    /// (default true; false moves one packet per system call, as before them).
    #[serde(default = "yes")]
    pub offload: bool,
    /// Threads that seal and open packets, the packet thread included (default: one per two
    /// cores, at least 1, at most 4; 1: the packet thread alone).
    pub threads: Option<Spanned<usize>>,
    /// Handshake messages per second above which cookies are required (default 512).
    pub handshake_load_threshold: Option<Spanned<u32>>,
    /// Off-spec, tests only: rekey after this many seconds instead of 120.
    pub danger_rekey_after_seconds: Option<Spanned<u64>>,
    /// Off-spec, tests only: refuse sessions after this many seconds instead of 180.
    pub danger_reject_after_seconds: Option<Spanned<u64>>,
    /// This site's ML-DSA-65 private key (`qgw genkey --mldsa`), needed by hybrid peers.
    pub mldsa_private_key_file: Option<Spanned<PathBuf>>,
}

fn yes() -> bool {
    true
}

fn default_mtu() -> Spanned<usize> {
    Spanned::new(
        1420,
        serde_saphyr::Location::UNKNOWN,
        serde_saphyr::Location::UNKNOWN,
    )
}

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

/// Whether a peer uses the hybrid post-quantum + QKD key agreement.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hybrid {
    /// Plain WireGuard.
    #[default]
    Off,
    /// The hybrid post-quantum + QKD key agreement (docs/protocol.md).
    On,
}

/// One entry of `peers:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// A name for logs and status.
    pub name: String,
    /// The peer's Base64 X25519 public key.
    pub public_key: Spanned<String>,
    /// `host:port` (IP literal) of the peer; absent for responder-only peers.
    pub endpoint: Option<Spanned<String>>,
    /// Prefixes routed to this peer and accepted from it.
    #[serde(default)]
    pub allowed_ips: Vec<Spanned<String>>,
    /// Keepalive interval in seconds.
    pub persistent_keepalive: Option<u16>,
    /// File with a Base64 static PSK.
    pub preshared_key_file: Option<Spanned<PathBuf>>,
    /// `off` (plain WireGuard) or `on` (hybrid key agreement).
    #[serde(default)]
    pub hybrid: Hybrid,
    /// The peer's ML-DSA-65 public key (`qgw pubkey --mldsa`), with `hybrid: on`.
    pub mldsa_public_key_file: Option<Spanned<PathBuf>>,
    /// `{peer_sae_id | sources, policy, require, role}`, with `hybrid: on`.
    pub qkd: Option<crate::config_hybrid::PeerQkdConfig>,
    /// Seconds between epochs (5-165, default 120), with `hybrid: on`.
    pub rekey_after_seconds: Option<Spanned<u64>>,
    /// The WAN rate toward this peer (`200mbit`): turns class scheduling on for it.
    pub egress_rate: Option<Spanned<crate::config_classes::NumberOrText>>,
    /// Mark the outer header with the class's DSCP (default false).
    #[serde(default)]
    pub outer_dscp: bool,
}

/// `metrics:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the metrics listener.
    pub listen: SocketAddr,
}

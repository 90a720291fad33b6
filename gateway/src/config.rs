//! The YAML configuration of one `qgw` interface (every key is documented in
//! `configs/README.md`). Parsing is strict: unknown keys are errors, and every validation error names
//! the file, the line, the field and the problem.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_saphyr::Spanned;

pub use crate::config_schema::{
    Config, Hybrid, InterfaceConfig, MetricsConfig, OneOrMany, PeerConfig,
};
use crate::node::{NodeConfig, NodePeer, PeerSpec};
use crate::proto::secret::Secret;

/// A configuration error, ready to print.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A validated configuration with keys loaded: the node's part, and what only the daemon needs.
#[derive(Debug)]
pub struct Validated {
    /// Interface name.
    pub name: String,
    /// Interface addresses.
    pub addresses: Vec<(IpAddr, u8)>,
    /// UDP port.
    pub listen_port: u16,
    /// The node: static key, peers, protocol settings.
    pub node: NodeConfig,
    /// This site's KMEs (ETSI 014 over mutual TLS, one client each), in `qkd:` order.
    pub kmes: Vec<crate::config_hybrid::SiteKme>,
    /// Serve the wg UAPI.
    pub uapi: bool,
    /// Use TUN and UDP segmentation offloads where the kernel has them.
    pub offload: bool,
    /// Threads that seal and open packets, the packet thread included.
    pub threads: usize,
    /// Metrics endpoint address (`metrics.listen`).
    pub metrics: Option<SocketAddr>,
    /// The audit trail (`audit:`); its checkpoints are signed with the node's ML-DSA key.
    pub audit: Option<crate::audit::AuditSettings>,
    /// The file this came from and the SHA-256 of its bytes (set by [`load`], for the audit log's
    /// `config_loaded` record).
    pub source: Option<(PathBuf, [u8; 32])>,
}

/// The most `interface.threads` takes.
const MAX_THREADS: usize = 64;
/// Threads by default: one per two cores, up to this many.
const DEFAULT_THREADS_MAX: usize = 4;

/// `interface.threads` when absent: one per two cores the process may run on (its CPU affinity
/// counts), at least 1 and at most [`DEFAULT_THREADS_MAX`]. The kernel's half of the data path
/// (TUN and UDP copies, softirqs) needs cores too: on 2 cores a second crypto thread made the
/// rig slower (docs/gateway-decisions.md §9).
pub fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    (cores / 2).clamp(1, DEFAULT_THREADS_MAX)
}

/// Reads a 32-byte Base64 key (as `wg genkey` writes it).
pub fn parse_key(text: &str) -> Option<[u8; 32]> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    bytes.try_into().ok()
}

/// Parses `ip/len` (a bare IP means a host route).
pub fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (ip.parse::<IpAddr>().ok()?, len.parse::<u8>().ok()?),
        None => {
            let ip = text.parse::<IpAddr>().ok()?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

struct Ctx<'a>(&'a Path);

impl Ctx<'_> {
    fn err<T>(&self, line: u64, field: &str, problem: impl fmt::Display) -> Result<T, ConfigError> {
        Err(ConfigError(format!(
            "{}:{line}: {field}: {problem}",
            self.0.display()
        )))
    }

    /// Reads a Base64 32-byte secret from a key file that only its owner may access.
    fn key_file(&self, f: &Spanned<PathBuf>, field: &str) -> Result<Secret<32>, ConfigError> {
        let line = f.referenced.line();
        let text = match crate::keyfile::read_private(&f.value) {
            Ok(t) => t,
            Err(e) => return self.err(line, field, e),
        };
        match parse_key(&text) {
            Some(k) => Ok(Secret::new(k)),
            None => self.err(
                line,
                field,
                format_args!("{} does not hold a Base64 32-byte key", f.value.display()),
            ),
        }
    }
}

impl Config {
    /// Parses YAML text from `path` (for messages).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        serde_saphyr::from_str(text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// Checks every value and loads the key files.
    pub fn validate(&self, path: &Path) -> Result<Validated, ConfigError> {
        let cx = Ctx(path);
        let i = &self.interface;
        let name = &i.name.value;
        if name.is_empty()
            || name.len() > 15
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return cx.err(
                i.name.referenced.line(),
                "interface.name",
                "must be 1-15 characters of [A-Za-z0-9-_.]",
            );
        }
        let list = match &i.address.value {
            OneOrMany::One(a) => std::slice::from_ref(a),
            OneOrMany::Many(v) => v.as_slice(),
        };
        let mut addresses = Vec::new();
        for a in list {
            match parse_cidr(a) {
                Some(c) => addresses.push(c),
                None => {
                    return cx.err(
                        i.address.referenced.line(),
                        "interface.address",
                        format_args!("{a:?} is not IP/prefix"),
                    );
                }
            }
        }
        let mtu_line = i.mtu.referenced.line();
        if !(576..=9000).contains(&i.mtu.value) {
            return cx.err(mtu_line, "interface.mtu", "must be between 576 and 9000");
        }
        if i.mtu.value < 1280 && addresses.iter().any(|(a, _)| a.is_ipv6()) {
            return cx.err(
                mtu_line,
                "interface.mtu",
                "IPv6 needs at least 1280 (the kernel disables IPv6 below it)",
            );
        }
        let hybrid_peer = (self.peers.iter().enumerate())
            .find(|(_, p)| p.hybrid == Hybrid::On)
            .map(|(n, p)| format!("peers[{n}] ({})", p.name));
        crate::config_hybrid::check_mtu(path, &i.mtu, hybrid_peer.as_deref())?;
        let load_threshold = match &i.handshake_load_threshold {
            None => crate::proto::ratelimit::DEFAULT_LOAD_THRESHOLD,
            Some(t) if t.value == 0 => {
                let line = t.referenced.line();
                return cx.err(line, "interface.handshake_load_threshold", "must be > 0");
            }
            Some(t) => t.value,
        };
        let threads = match &i.threads {
            None => default_threads(),
            Some(t) if !(1..=MAX_THREADS).contains(&t.value) => {
                let line = t.referenced.line();
                return cx.err(line, "interface.threads", "must be 1-64");
            }
            Some(t) => t.value,
        };
        let danger_rekey_after = match &i.danger_rekey_after_seconds {
            None => None,
            Some(t) if !(1..=120).contains(&t.value) => {
                let line = t.referenced.line();
                let field = "interface.danger_rekey_after_seconds";
                return cx.err(line, field, "must be 1-120 (test-only; omit in production)");
            }
            Some(t) => Some(Duration::from_secs(t.value)),
        };
        let danger_reject_after = match &i.danger_reject_after_seconds {
            None => None,
            Some(t) if !(10..=180).contains(&t.value) => {
                let line = t.referenced.line();
                let field = "interface.danger_reject_after_seconds";
                return cx.err(
                    line,
                    field,
                    "must be 10-180 (test-only; omit in production)",
                );
            }
            Some(t) => Some(Duration::from_secs(t.value)),
        };
        let private_key = cx.key_file(&i.private_key_file, "interface.private_key_file")?;
        let hybrid_site = crate::config_hybrid::validate_site(
            path,
            i.mldsa_private_key_file.as_ref(),
            self.qkd.as_ref(),
        )?;
        let audit = crate::config_audit::validate(path, self.audit.as_ref())?;
        let classes = crate::config_classes::validate_rules(path, &self.classes)?;
        let local_public =
            x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*private_key.expose()))
                .to_bytes();
        let mut peers = Vec::new();
        for (n, p) in self.peers.iter().enumerate() {
            let field = |f: &str| format!("peers[{n}] ({}).{f}", p.name);
            let Some(public_key) = parse_key(&p.public_key.value) else {
                return cx.err(
                    p.public_key.referenced.line(),
                    &field("public_key"),
                    "not a Base64 32-byte key",
                );
            };
            let endpoint = match &p.endpoint {
                None => None,
                Some(e) => match e.value.parse::<SocketAddr>() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        return cx.err(e.referenced.line(), &field("endpoint"), "must be IP:port");
                    }
                },
            };
            let mut allowed_ips = Vec::new();
            for a in &p.allowed_ips {
                match parse_cidr(&a.value) {
                    Some(c) => allowed_ips.push(c),
                    None => {
                        return cx.err(
                            a.referenced.line(),
                            &field("allowed_ips"),
                            format_args!("{:?} is not IP/prefix", a.value),
                        );
                    }
                }
            }
            let psk = match &p.preshared_key_file {
                Some(f) => Some(cx.key_file(f, &field("preshared_key_file"))?),
                None => None,
            };
            let fields = crate::config_hybrid::PeerFields {
                on: p.hybrid == Hybrid::On,
                line: p.public_key.referenced.line(),
                prefix: field(""),
                mldsa_public_key_file: p.mldsa_public_key_file.as_ref(),
                qkd: p.qkd.as_ref(),
                rekey_after_seconds: p.rekey_after_seconds.as_ref(),
                keys: (local_public, public_key),
            };
            let hybrid = crate::config_hybrid::validate_peer(path, &fields, hybrid_site.as_ref())?;
            let persistent_keepalive = p
                .persistent_keepalive
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(s.into()));
            let wg = PeerSpec {
                public_key,
                psk,
                endpoint,
                allowed_ips,
                persistent_keepalive,
            };
            peers.push(NodePeer {
                name: p.name.clone(),
                wg,
                hybrid,
                egress: crate::config_classes::validate_egress(
                    path,
                    &field(""),
                    p.egress_rate.as_ref(),
                    p.outer_dscp,
                )?,
            });
        }
        let (signing_key, kmes) = match hybrid_site {
            Some(site) => (Some(site.signing_key), site.kmes),
            None => (None, Vec::new()),
        };
        let node = NodeConfig {
            private_key,
            mtu: i.mtu.value,
            load_threshold,
            peers,
            signing_key,
            danger_rekey_after,
            danger_reject_after,
            classes: std::sync::Arc::new(classes),
        };
        Ok(Validated {
            name: name.clone(),
            addresses,
            listen_port: i.listen_port,
            node,
            kmes,
            uapi: i.uapi,
            offload: i.offload,
            threads,
            metrics: self.metrics.as_ref().map(|m| m.listen),
            audit,
            source: None,
        })
    }
}

/// Reads, parses and validates `path`.
pub fn load(path: &Path) -> Result<Validated, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    let mut v = Config::parse(path, &text)?.validate(path)?;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes());
    v.source = Some((path.to_path_buf(), digest.into()));
    Ok(v)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

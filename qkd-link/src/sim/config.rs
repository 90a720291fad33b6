//! The simulator's YAML configuration: KMEs (each an ETSI GS QKD 014 server on its own port, with
//! the SAE IDs it serves), QKD links between them, the §6.1 Status limits, request latency and
//! faults, and the QKD network's trusted relay nodes, link lengths and relay latencies
//! (`docs/qkd-network.md`). Unknown fields are rejected; [`SimConfig::validate`] names the file,
//! the field and the fix. See `configs/kme-sim.yaml` (and `kme-sim-madrid.yaml`,
//! `kme-sim-region.yaml` for networks) for commented examples.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::SimError;
use crate::error::parse_yaml;
use crate::ids::SaeId;

/// The whole simulator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Directory holding `ca.pem` and the KME certificates, relative to the config file.
    /// `serve --pki DIR` overrides it.
    #[serde(default)]
    pub pki_dir: Option<PathBuf>,
    /// The CA bundle that client (SAE) certificates must chain to, inside `pki_dir`.
    #[serde(default = "default_ca")]
    pub ca: PathBuf,
    /// Loopback-only admin API for fault injection; absent = no admin API.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// The Status limits every KME announces and enforces (§6.1).
    #[serde(default)]
    pub limits: Limits,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_request")]
    pub max_request_bytes: usize,
    /// The KMEs.
    pub kmes: Vec<KmeConfig>,
    /// KMEs that serve no SAE: trusted nodes that only relay key between links (no listener).
    #[serde(default)]
    pub trusted_nodes: Vec<TrustedNodeConfig>,
    /// The QKD links between KMEs and trusted nodes.
    #[serde(default)]
    pub links: Vec<LinkConfig>,
}

/// A trusted node: a KME of the operator's network that relays key hop by hop and serves no SAE
/// (it has no ETSI 014 listener and needs no certificate). See `docs/qkd-network.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedNodeConfig {
    /// Node ID, in the same namespace as the KME IDs.
    pub id: SaeId,
    /// Fault: start down (no key is relayed through it).
    #[serde(default)]
    pub down: bool,
}

fn default_ca() -> PathBuf {
    PathBuf::from("ca.pem")
}
fn default_max_request() -> usize {
    64 * 1024
}

/// Where the admin API listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// A loopback address (127.0.0.0/8 or ::1); port 0 picks a free port.
    pub listen: SocketAddr,
}

/// Key limits announced in Status and enforced on requests (§6.1, §6.2). Sizes in bits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Default key size.
    pub key_size: u32,
    /// Smallest size a request may ask for.
    pub min_key_size: u32,
    /// Largest size a request may ask for.
    pub max_key_size: u32,
    /// Most keys (or key IDs) per request.
    pub max_key_per_request: u32,
    /// Most `additional_slave_SAE_IDs`; 0 = no multicast.
    pub max_sae_id_count: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            key_size: 256,
            min_key_size: 64,
            max_key_size: 1024,
            max_key_per_request: 128,
            max_sae_id_count: 0,
        }
    }
}

/// One KME.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmeConfig {
    /// KME ID, e.g. `KME_A`.
    pub id: SaeId,
    /// HTTPS listen address; port 0 picks a free port.
    pub listen: SocketAddr,
    /// SAE IDs this KME serves (each SAE is served by exactly one KME).
    pub saes: Vec<SaeId>,
    /// Server certificate inside `pki_dir`; default `<lower-case id>.pem`.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Server key inside `pki_dir`; default `<lower-case id>.key`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Request latency, uniform in `[min, max]` milliseconds.
    #[serde(default)]
    pub latency_ms: Latency,
    /// Fault: start down (connections closed at once).
    #[serde(default)]
    pub down: bool,
    /// Fault: extra delay added to every reply, in milliseconds.
    #[serde(default)]
    pub extra_latency_ms: u64,
}

/// A latency range in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// Lower bound.
    pub min: u64,
    /// Upper bound.
    pub max: u64,
}

/// A QKD link producing shared secret key between two KMEs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// The two KME IDs.
    pub kmes: [SaeId; 2],
    /// Secret key rate in bits per second (metro fibre: 1e4 to 1e6; reference §9).
    pub secret_key_rate_bps: u64,
    /// Store capacity in keys of `limits.key_size` (issued-but-unfetched keys count against it).
    pub max_key_count: u64,
    /// Keys of `limits.key_size` in the store at start.
    #[serde(default)]
    pub initial_key_count: u64,
    /// Quantum bit error rate; above `qber_threshold` the link distils no key.
    #[serde(default = "default_qber")]
    pub qber: f64,
    /// QBER abort threshold (BB84 is secure below about 11%).
    #[serde(default = "default_qber_threshold")]
    pub qber_threshold: f64,
    /// Fault: start down (no new key; stored keys stay deliverable to a directly linked pair, but
    /// no key is relayed across the link).
    #[serde(default)]
    pub down: bool,
    /// Fibre length in km (reported by the admin API; breaks ties between equally short routes).
    #[serde(default)]
    pub length_km: Option<f64>,
    /// Time for a relayed key to cross this link (one-time-pad transfer between the two trusted
    /// nodes), in milliseconds; a relayed key reaches the slave's KME after the sum over its path.
    #[serde(default)]
    pub relay_latency_ms: u64,
}

fn default_qber() -> f64 {
    0.02
}
fn default_qber_threshold() -> f64 {
    0.08
}

/// Hard ceilings that keep a typo from exhausting memory.
const MAX_KEY_BITS: u32 = 65_536;
const MAX_STORE_BITS: u128 = 8 * 1024 * 1024 * 1024; // 1 GiB of key per link
/// Longest link accepted: above the longest fibre QKD demonstrations (~400-800 km, lab).
const MAX_LINK_KM: f64 = 1000.0;
/// Per-link relay latency ceiling: a hop slower than this is a fault, not a link property.
const MAX_RELAY_LATENCY_MS: u64 = 10_000;

impl SimConfig {
    /// Parses YAML; `file` names the source in errors.
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, SimError> {
        let cfg = parse_yaml::<Self, SimError>(text, file)?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// Reads and validates a file; a relative `pki_dir` becomes relative to the file's directory.
    pub fn load(path: &Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| crate::Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Self::from_yaml(&text, &path.display().to_string())?;
        if let (Some(dir), Some(pki)) = (path.parent(), cfg.pki_dir.as_mut())
            && pki.is_relative()
        {
            *pki = dir.join(&*pki);
        }
        Ok(cfg)
    }

    /// Index of a KME by ID.
    pub fn kme_index(&self, id: &SaeId) -> Option<usize> {
        self.kmes.iter().position(|k| &k.id == id)
    }

    /// Index of a network node by ID: the KMEs first, then the trusted nodes.
    pub fn node_index(&self, id: &SaeId) -> Option<usize> {
        self.kme_index(id).or_else(|| {
            let t = self.trusted_nodes.iter().position(|n| &n.id == id)?;
            Some(self.kmes.len() + t)
        })
    }

    /// Checks consistency; errors name the field and the fix.
    pub fn validate(&self, file: &str) -> Result<(), SimError> {
        let bad = |field: String, problem: String| SimError::Config {
            file: file.to_string(),
            field,
            problem,
        };
        self.validate_limits()
            .map_err(|(f, p)| bad(format!("limits.{f}"), p))?;
        if !(1024..=16 * 1024 * 1024).contains(&self.max_request_bytes) {
            return Err(bad(
                "max_request_bytes".into(),
                "must be within 1024..=16777216".into(),
            ));
        }
        if let Some(admin) = &self.admin
            && !admin.listen.ip().is_loopback()
        {
            return Err(bad(
                "admin.listen".into(),
                format!(
                    "{} is not a loopback address; the unauthenticated admin API may only \
                     listen on 127.0.0.0/8 or ::1",
                    admin.listen
                ),
            ));
        }
        if self.kmes.is_empty() {
            return Err(bad("kmes".into(), "at least one KME is required".into()));
        }
        let mut ids = HashSet::new();
        let mut saes = HashSet::new();
        let mut addrs = HashSet::new();
        for (i, k) in self.kmes.iter().enumerate() {
            let f = |name: &str| format!("kmes[{i}].{name}");
            if !ids.insert(&k.id) {
                return Err(bad(f("id"), format!("KME ID {} appears twice", k.id)));
            }
            if k.listen.port() != 0 && !addrs.insert(k.listen) {
                return Err(bad(f("listen"), format!("{} is used twice", k.listen)));
            }
            if k.saes.is_empty() {
                return Err(bad(f("saes"), "list at least one SAE ID".into()));
            }
            for s in &k.saes {
                if !saes.insert(s) {
                    return Err(bad(
                        f("saes"),
                        format!("SAE {s} is listed twice; each SAE is served by exactly one KME"),
                    ));
                }
            }
            if k.latency_ms.min > k.latency_ms.max || k.latency_ms.max > 60_000 {
                return Err(bad(f("latency_ms"), "needs min <= max <= 60000".into()));
            }
            if k.extra_latency_ms > 600_000 {
                return Err(bad(f("extra_latency_ms"), "at most 600000".into()));
            }
        }
        for (i, n) in self.trusted_nodes.iter().enumerate() {
            if !ids.insert(&n.id) {
                return Err(bad(
                    format!("trusted_nodes[{i}].id"),
                    format!("ID {} is already used by a KME or trusted node", n.id),
                ));
            }
        }
        self.validate_links(&bad)
    }

    fn validate_links(&self, bad: &dyn Fn(String, String) -> SimError) -> Result<(), SimError> {
        let mut pairs = HashSet::new();
        for (i, l) in self.links.iter().enumerate() {
            let f = |name: &str| format!("links[{i}].{name}");
            for id in &l.kmes {
                if self.node_index(id).is_none() {
                    return Err(bad(f("kmes"), format!("unknown KME or trusted node {id}")));
                }
            }
            if l.kmes[0] == l.kmes[1] {
                return Err(bad(f("kmes"), "a link joins two different KMEs".into()));
            }
            let mut pair = l.kmes.clone();
            pair.sort();
            if !pairs.insert(pair) {
                return Err(bad(f("kmes"), "these KMEs are already linked".into()));
            }
            if l.secret_key_rate_bps > 100_000_000_000 {
                return Err(bad(
                    f("secret_key_rate_bps"),
                    "above 100 Gbit/s; real links give 1e3..1e7 (reference §9)".into(),
                ));
            }
            let store_bits = u128::from(l.max_key_count) * u128::from(self.limits.key_size);
            if l.max_key_count == 0 || store_bits > MAX_STORE_BITS {
                return Err(bad(
                    f("max_key_count"),
                    "must be positive and hold at most 1 GiB of key".into(),
                ));
            }
            if l.initial_key_count > l.max_key_count {
                return Err(bad(
                    f("initial_key_count"),
                    format!("exceeds max_key_count {}", l.max_key_count),
                ));
            }
            if !(0.0..=0.5).contains(&l.qber) || !(0.0..=0.5).contains(&l.qber_threshold) {
                return Err(bad(
                    f("qber"),
                    "qber and qber_threshold lie in 0..=0.5".into(),
                ));
            }
            if l.length_km
                .is_some_and(|km| !(km > 0.0 && km <= MAX_LINK_KM))
            {
                return Err(bad(
                    f("length_km"),
                    format!("must lie in (0, {MAX_LINK_KM}]; QKD links span 1..~400 km"),
                ));
            }
            if l.relay_latency_ms > MAX_RELAY_LATENCY_MS {
                return Err(bad(
                    f("relay_latency_ms"),
                    format!("at most {MAX_RELAY_LATENCY_MS}"),
                ));
            }
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), (&'static str, String)> {
        let l = &self.limits;
        for (name, v) in [
            ("key_size", l.key_size),
            ("min_key_size", l.min_key_size),
            ("max_key_size", l.max_key_size),
        ] {
            if v == 0 || v % 8 != 0 || v > MAX_KEY_BITS {
                return Err((
                    name,
                    format!("{v} must be a positive multiple of 8 up to {MAX_KEY_BITS}"),
                ));
            }
        }
        if !(l.min_key_size <= l.key_size && l.key_size <= l.max_key_size) {
            return Err((
                "key_size",
                "needs min_key_size <= key_size <= max_key_size".into(),
            ));
        }
        if !(1..=1024).contains(&l.max_key_per_request) {
            return Err(("max_key_per_request", "must be within 1..=1024".into()));
        }
        if l.max_sae_id_count > 16 {
            return Err(("max_sae_id_count", "must be at most 16".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! The hybrid key agreement's part of the configuration (docs/protocol.md §2, §8; every key in
//! `configs/README.md`): the site's ML-DSA-65 key, its KMEs (ETSI 014 over mutual TLS,
//! [`crate::config_hybrid_kme`]), and per peer `hybrid: on`, the peer's ML-DSA-65 public key,
//! `qkd: {peer_sae_id | sources, policy, require, role}` and `rekey_after_seconds`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keymix::mldsa::{SigningKey, VerifyingKey};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::ConfigError;
use crate::config_hybrid_kme::{PeerSourceFields, validate_kmes, validate_sources};
use crate::hybrid::{QkdPolicy, Require, Role};

/// Allowed `rekey_after_seconds` (docs/protocol.md §8).
pub const REKEY_AFTER_RANGE: std::ops::RangeInclusive<u64> = 5..=165;

/// Smallest `interface.mtu` with a `hybrid: on` peer. The tunnel MTU is the largest IP packet in
/// the tunnel; WireGuard carries it in a UDP payload of `mtu + 32` (16-byte transport header,
/// 16-byte tag), so the path must carry `mtu + 80` bytes over IPv6 (+ 8 UDP + 40 IPv6) or
/// `mtu + 60` over IPv4. A hybrid datagram is at most 1232 bytes of UDP payload (docs/protocol.md
/// §4: 1280, IPv6's minimum MTU, − 48). Whatever the underlay, a path sized for the tunnel's
/// full-size packets carries the hybrid datagrams exactly when `1232 ≤ mtu + 32`, i.e.
/// `mtu ≥ 1200`; a smaller MTU says the path is below 1280 bytes (IPv6) or 1260 (IPv4), where the
/// key agreement's datagrams would be fragmented or dropped.
pub const MIN_HYBRID_MTU: usize =
    crate::hybrid::constants::MAX_DATAGRAM - crate::proto::constants::TRANSPORT_MIN_LEN;
const _: () = assert!(MIN_HYBRID_MTU == 1280 - 80);

/// Refuses an `interface.mtu` below [`MIN_HYBRID_MTU`]; `hybrid_peer` names the first
/// `hybrid: on` peer (`peers[n] (name)`), if any.
pub fn check_mtu(
    path: &Path,
    mtu: &Spanned<usize>,
    hybrid_peer: Option<&str>,
) -> Result<(), ConfigError> {
    match hybrid_peer {
        Some(peer) if mtu.value < MIN_HYBRID_MTU => fail(
            path,
            mtu.referenced.line(),
            "interface.mtu",
            format_args!(
                "{} is below {MIN_HYBRID_MTU}, the smallest tunnel MTU whose path carries the \
                 hybrid key agreement's {}-byte datagrams ({peer} has `hybrid: on`; \
                 docs/protocol.md §4); set mtu to {MIN_HYBRID_MTU} or more (1420 for a \
                 1500-byte path)",
                mtu.value,
                crate::hybrid::constants::MAX_DATAGRAM,
            ),
        ),
        _ => Ok(()),
    }
}

pub use crate::config_hybrid_kme::{KmeConfig, QkdSource, SiteKme};

/// `peers[].qkd:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerQkdConfig {
    /// The peer gateway's SAE ID at this site's only KME (the one-source form).
    pub peer_sae_id: Option<Spanned<String>>,
    /// `required`, `preferred` or `off`.
    pub policy: Spanned<PolicyName>,
    /// `all` or `any`: how many `sources` an epoch needs under `required` (default all).
    pub require: Option<Spanned<crate::config_hybrid_kme::RequireName>>,
    /// 1–4 `{kme, peer_sae_id}`, in the order both gateways list them.
    pub sources: Option<Spanned<Vec<crate::config_hybrid_kme::SourceConfig>>>,
    /// `master` or `slave`; default: the side with the lower X25519 public key is master.
    pub role: Option<Spanned<RoleName>>,
}

/// `qkd.policy` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyName {
    /// No epoch without QKD.
    Required,
    /// QKD when available.
    Preferred,
    /// No KME.
    Off,
}

/// `qkd.role` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// Calls `enc_keys`, initiates.
    Master,
    /// Calls `dec_keys`, answers.
    Slave,
}

/// A hybrid peer, validated and with keys loaded.
#[derive(Debug, Clone)]
pub struct HybridPeerSpec {
    /// The peer's ML-DSA-65 public key.
    pub verifying_key: VerifyingKey,
    /// Master or slave.
    pub role: Role,
    /// QKD policy.
    pub policy: QkdPolicy,
    /// The peer's QKD sources, in order (empty with policy off and none named).
    pub sources: Vec<QkdSource>,
    /// `qkd.require`.
    pub require: Require,
    /// New epoch after this.
    pub rekey_after: Duration,
}

/// The interface-wide hybrid settings, validated.
#[derive(Debug, Clone)]
pub struct HybridSite {
    /// This site's ML-DSA-65 key.
    pub signing_key: Arc<SigningKey>,
    /// This site's KMEs (top-level `qkd:`), in order; empty without one.
    pub kmes: Vec<SiteKme>,
}

/// The raw per-peer hybrid fields, as parsed.
#[derive(Debug)]
pub struct PeerFields<'a> {
    /// `hybrid: on`.
    pub on: bool,
    /// Line of the `hybrid` key's peer entry (for errors).
    pub line: u64,
    /// `peers[n] (name).` prefix.
    pub prefix: String,
    /// `mldsa_public_key_file`.
    pub mldsa_public_key_file: Option<&'a Spanned<PathBuf>>,
    /// `qkd`.
    pub qkd: Option<&'a PeerQkdConfig>,
    /// `rekey_after_seconds`.
    pub rekey_after_seconds: Option<&'a Spanned<u64>>,
    /// Our X25519 public key and the peer's, for the default role.
    pub keys: ([u8; 32], [u8; 32]),
}

/// A [`ConfigError`] naming the file, line, field and problem.
pub(crate) fn fail<T>(
    path: &Path,
    line: u64,
    field: &str,
    problem: impl std::fmt::Display,
) -> Result<T, ConfigError> {
    Err(ConfigError(format!(
        "{}:{line}: {field}: {problem}",
        path.display()
    )))
}

/// Validates one peer's hybrid fields. `site` is the interface's hybrid settings (if configured).
pub fn validate_peer(
    path: &Path,
    f: &PeerFields<'_>,
    site: Option<&HybridSite>,
) -> Result<Option<HybridPeerSpec>, ConfigError> {
    let field = |name: &str| format!("{}{name}", f.prefix);
    if !f.on {
        let stray = [
            f.mldsa_public_key_file
                .map(|s| ("mldsa_public_key_file", s.referenced.line())),
            f.qkd.map(|q| ("qkd", q.policy.referenced.line())),
            f.rekey_after_seconds
                .map(|s| ("rekey_after_seconds", s.referenced.line())),
        ];
        if let Some((name, line)) = stray.into_iter().flatten().next() {
            return fail(path, line, &field(name), "only applies with `hybrid: on`");
        }
        return Ok(None);
    }
    let Some(site) = site else {
        return fail(
            path,
            f.line,
            &field("hybrid"),
            "`hybrid: on` needs interface.mldsa_private_key_file",
        );
    };
    let Some(vk_file) = f.mldsa_public_key_file else {
        return fail(
            path,
            f.line,
            &field("mldsa_public_key_file"),
            "required with `hybrid: on` (qgw pubkey --mldsa)",
        );
    };
    let verifying_key = crate::keyfile::load_mldsa_public(&vk_file.value).or_else(|e| {
        fail(
            path,
            vk_file.referenced.line(),
            &field("mldsa_public_key_file"),
            e,
        )
    })?;
    let (policy, sources, require, role) = match f.qkd {
        None => (QkdPolicy::Off, Vec::new(), Require::All, None),
        Some(q) => {
            let policy = match q.policy.value {
                PolicyName::Required => QkdPolicy::Required,
                PolicyName::Preferred => QkdPolicy::Preferred,
                PolicyName::Off => QkdPolicy::Off,
            };
            let fields = PeerSourceFields {
                prefix: &f.prefix,
                line: q.policy.referenced.line(),
                policy,
                peer_sae_id: q.peer_sae_id.as_ref(),
                sources: q.sources.as_ref(),
                require: q.require.as_ref(),
            };
            let (sources, require) = validate_sources(path, &fields, &site.kmes)?;
            (policy, sources, require, q.role.as_ref().map(|r| r.value))
        }
    };
    let role = match role {
        Some(RoleName::Master) => Role::Master,
        Some(RoleName::Slave) => Role::Slave,
        None if f.keys.0 < f.keys.1 => Role::Master,
        None => Role::Slave,
    };
    let rekey_after = match f.rekey_after_seconds {
        None => crate::hybrid::constants::DEFAULT_REKEY_AFTER,
        Some(s) if REKEY_AFTER_RANGE.contains(&s.value) => Duration::from_secs(s.value),
        Some(s) => {
            return fail(
                path,
                s.referenced.line(),
                &field("rekey_after_seconds"),
                "must be 5-165",
            );
        }
    };
    Ok(Some(HybridPeerSpec {
        verifying_key,
        role,
        policy,
        sources,
        require,
        rekey_after,
    }))
}

/// Validates the interface-wide part: the ML-DSA key file and the KME block.
pub fn validate_site(
    path: &Path,
    mldsa_private_key_file: Option<&Spanned<PathBuf>>,
    kme: Option<&Spanned<KmeConfig>>,
) -> Result<Option<HybridSite>, ConfigError> {
    let Some(file) = mldsa_private_key_file else {
        if let Some(k) = kme {
            return fail(
                path,
                k.referenced.line(),
                "qkd",
                "needs interface.mldsa_private_key_file (QKD is only used by hybrid peers)",
            );
        }
        return Ok(None);
    };
    let line = file.referenced.line();
    let signing_key = crate::keyfile::load_mldsa_private(&file.value)
        .or_else(|e| fail(path, line, "interface.mldsa_private_key_file", e))?;
    let kmes = match kme {
        None => Vec::new(),
        Some(k) => validate_kmes(path, k.referenced.line(), &k.value)?,
    };
    Ok(Some(HybridSite {
        signing_key: Arc::new(signing_key),
        kmes,
    }))
}

#[cfg(test)]
#[path = "config_hybrid_tests.rs"]
mod tests;

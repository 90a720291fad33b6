//! This site's KMEs and each peer's QKD sources (docs/protocol.md §6.3; every key in
//! `configs/README.md`). The top-level `qkd:` is either one KME (named `kme`) or `kmes:`, a list
//! of named KMEs; a peer's `qkd:` names one source (`peer_sae_id`, at the site's only KME) or
//! `sources:`, 1–4 `{kme, peer_sae_id}` in an order both gateways share, with `require: all|any`.

use std::path::{Path, PathBuf};

use qkd_link::{ClientConfig, SaeId};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::config::ConfigError;
use crate::config_hybrid::fail;
use crate::hybrid::constants::{KME_ATTEMPTS, KME_CONNECT_TIMEOUT, KME_REQUEST_TIMEOUT};
use crate::hybrid::{MAX_KMES, MAX_SOURCES, QkdPolicy, Require};
use crate::node::KmeId;

/// The name of the KME of the single-KME form.
pub const DEFAULT_KME_NAME: &str = "kme";

/// Top-level `qkd:`: this site's KME (`kme_url`, `sae_id`, … as one mapping) or KMEs (`kmes:`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmeConfig {
    /// Several named KMEs (instead of the fields below).
    pub kmes: Option<Vec<NamedKme>>,
    /// `https://host:port` of the KME.
    pub kme_url: Option<Spanned<String>>,
    /// This gateway's SAE ID (must match its client certificate).
    pub sae_id: Option<Spanned<String>>,
    /// CA bundle that signs the KME's certificate.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM).
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM; must not be group/world readable).
    pub key_file: Option<PathBuf>,
}

/// One entry of `qkd.kmes:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedKme {
    /// `[a-z0-9-]{1,32}`, unique.
    pub name: Spanned<String>,
    /// `https://host:port` of the KME.
    pub kme_url: Spanned<String>,
    /// This gateway's SAE ID at that KME.
    pub sae_id: Spanned<String>,
    /// CA bundle that signs the KME's certificate.
    pub ca_file: PathBuf,
    /// Client certificate (PEM).
    pub cert_file: PathBuf,
    /// Client private key (PEM).
    pub key_file: PathBuf,
}

/// One entry of a peer's `qkd.sources:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The name of one of this site's KMEs.
    pub kme: Spanned<String>,
    /// The peer gateway's SAE ID reached through that KME.
    pub peer_sae_id: Spanned<String>,
}

/// `qkd.require` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequireName {
    /// Every source must deliver.
    All,
    /// One source suffices.
    Any,
}

/// One of this site's KMEs, validated.
#[derive(Debug, Clone)]
pub struct SiteKme {
    /// Its name (`kme` for the single-KME form): the `kme` label of its metrics.
    pub name: String,
    /// The mutual-TLS client configuration.
    pub client: ClientConfig,
}

/// One QKD source of a peer: a KME of this site and the peer's SAE ID behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QkdSource {
    /// The KME.
    pub kme: KmeId,
    /// Its name (status, metrics).
    pub kme_name: String,
    /// The peer gateway's SAE ID.
    pub peer_sae_id: SaeId,
}

fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Validates the top-level `qkd:` (`line`: its line) into the site's KMEs, in order.
pub fn validate_kmes(path: &Path, line: u64, k: &KmeConfig) -> Result<Vec<SiteKme>, ConfigError> {
    let single = [
        k.kme_url.as_ref().map(|s| ("kme_url", s.referenced.line())),
        k.sae_id.as_ref().map(|s| ("sae_id", s.referenced.line())),
        k.ca_file.as_ref().map(|_| ("ca_file", line)),
        k.cert_file.as_ref().map(|_| ("cert_file", line)),
        k.key_file.as_ref().map(|_| ("key_file", line)),
    ];
    let Some(list) = &k.kmes else {
        let missing = |name: &str| {
            fail(
                path,
                line,
                &format!("qkd.{name}"),
                "required (or list the KMEs under `kmes:`)",
            )
        };
        let (Some(url), Some(sae)) = (&k.kme_url, &k.sae_id) else {
            return missing(if k.kme_url.is_none() {
                "kme_url"
            } else {
                "sae_id"
            });
        };
        let (Some(ca), Some(cert), Some(key)) = (&k.ca_file, &k.cert_file, &k.key_file) else {
            let name = [("ca_file", &k.ca_file), ("cert_file", &k.cert_file)]
                .into_iter()
                .find(|(_, f)| f.is_none())
                .map_or("key_file", |(n, _)| n);
            return missing(name);
        };
        let client = client(path, "qkd", url, sae, [ca, cert, key])?;
        return Ok(vec![SiteKme {
            name: DEFAULT_KME_NAME.to_owned(),
            client,
        }]);
    };
    if let Some((name, line)) = single.into_iter().flatten().next() {
        return fail(
            path,
            line,
            &format!("qkd.{name}"),
            "goes into each entry of `kmes:`, not beside it",
        );
    }
    if list.is_empty() || list.len() > MAX_KMES {
        return fail(
            path,
            line,
            "qkd.kmes",
            format_args!("list 1 to {MAX_KMES} KMEs"),
        );
    }
    let mut kmes: Vec<SiteKme> = Vec::with_capacity(list.len());
    for (n, e) in list.iter().enumerate() {
        let field = format!("qkd.kmes[{n}]");
        let (name, at) = (&e.name.value, e.name.referenced.line());
        if !valid_name(name) {
            return fail(
                path,
                at,
                &format!("{field}.name"),
                format_args!("{name:?} is not 1-32 of a-z, 0-9, -"),
            );
        }
        if kmes.iter().any(|k| &k.name == name) {
            return fail(
                path,
                at,
                &format!("{field}.name"),
                format_args!("{name:?} is listed twice"),
            );
        }
        let files = [&e.ca_file, &e.cert_file, &e.key_file];
        let client = client(path, &field, &e.kme_url, &e.sae_id, files)?;
        kmes.push(SiteKme {
            name: name.clone(),
            client,
        });
    }
    Ok(kmes)
}

/// One KME's client configuration, with the exchange's timeouts.
fn client(
    path: &Path,
    field: &str,
    url: &Spanned<String>,
    sae: &Spanned<String>,
    [ca, cert, key]: [&PathBuf; 3],
) -> Result<ClientConfig, ConfigError> {
    let sae_id = SaeId::new(sae.value.as_str())
        .or_else(|e| fail(path, sae.referenced.line(), &format!("{field}.sae_id"), e))?;
    let line = url.referenced.line();
    if !url.value.starts_with("https://") {
        return fail(
            path,
            line,
            &format!("{field}.kme_url"),
            "must be https:// (ETSI 014 requires TLS)",
        );
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let mut cfg = ClientConfig::new(
        url.value.clone(),
        sae_id,
        base.join(ca),
        base.join(cert),
        base.join(key),
    );
    // Every KME call must fit the exchange's QKD budget (protocol.md §6.1 step 2).
    cfg.connect_timeout_ms = KME_CONNECT_TIMEOUT.as_millis() as u64;
    cfg.request_timeout_ms = KME_REQUEST_TIMEOUT.as_millis() as u64;
    cfg.retry.max_attempts = KME_ATTEMPTS;
    cfg.validate(&path.display().to_string())
        .or_else(|e| fail(path, line, field, e))?;
    Ok(cfg)
}

/// A peer's `qkd:` source fields, as parsed.
#[derive(Debug)]
pub struct PeerSourceFields<'a> {
    /// `peers[n] (name).` prefix.
    pub prefix: &'a str,
    /// Line of `qkd.policy`.
    pub line: u64,
    /// The policy.
    pub policy: QkdPolicy,
    /// `qkd.peer_sae_id`.
    pub peer_sae_id: Option<&'a Spanned<String>>,
    /// `qkd.sources`.
    pub sources: Option<&'a Spanned<Vec<SourceConfig>>>,
    /// `qkd.require`.
    pub require: Option<&'a Spanned<RequireName>>,
}

/// Validates a peer's sources against the site's KMEs: its sources (empty with policy off and
/// none named) and `require`.
pub fn validate_sources(
    path: &Path,
    f: &PeerSourceFields<'_>,
    kmes: &[SiteKme],
) -> Result<(Vec<QkdSource>, Require), ConfigError> {
    let field = |name: &str| format!("{}qkd.{name}", f.prefix);
    let off = f.policy == QkdPolicy::Off;
    let sources = match (f.peer_sae_id, f.sources) {
        (Some(s), Some(_)) => {
            return fail(
                path,
                s.referenced.line(),
                &field("peer_sae_id"),
                "goes into each entry of `sources:`, not beside it",
            );
        }
        (None, None) if off => Vec::new(),
        (None, None) => {
            return fail(
                path,
                f.line,
                &field("peer_sae_id"),
                "required unless policy is off (or list `sources:`)",
            );
        }
        (Some(s), None) => {
            let sae = SaeId::new(s.value.as_str())
                .or_else(|e| fail(path, s.referenced.line(), &field("peer_sae_id"), e))?;
            match kmes.len() {
                _ if off || kmes.len() == 1 => vec![QkdSource {
                    kme: KmeId::FIRST,
                    kme_name: (kmes.first())
                        .map_or(DEFAULT_KME_NAME, |k| k.name.as_str())
                        .to_owned(),
                    peer_sae_id: sae,
                }],
                0 => {
                    return fail(
                        path,
                        f.line,
                        &field("policy"),
                        "needs the top-level `qkd:` block (this site's KME)",
                    );
                }
                _ => {
                    return fail(
                        path,
                        s.referenced.line(),
                        &field("peer_sae_id"),
                        "this site has several KMEs: name each source with `sources: [{kme: NAME, peer_sae_id: ...}]`",
                    );
                }
            }
        }
        (None, Some(list)) => sources(path, &field("sources"), list, kmes)?,
    };
    if !off && kmes.is_empty() {
        return fail(
            path,
            f.line,
            &field("policy"),
            "needs the top-level `qkd:` block (this site's KME)",
        );
    }
    let require = match f.require {
        None => Require::All,
        Some(r) if sources.len() < 2 => {
            return fail(
                path,
                r.referenced.line(),
                &field("require"),
                "only applies with two or more `sources:`",
            );
        }
        Some(r) => match r.value {
            RequireName::All => Require::All,
            RequireName::Any => Require::Any,
        },
    };
    Ok((sources, require))
}

fn sources(
    path: &Path,
    field: &str,
    list: &Spanned<Vec<SourceConfig>>,
    kmes: &[SiteKme],
) -> Result<Vec<QkdSource>, ConfigError> {
    let line = list.referenced.line();
    if list.value.is_empty() || list.value.len() > MAX_SOURCES {
        return fail(
            path,
            line,
            field,
            format_args!(
                "list 1 to {MAX_SOURCES} sources (it has {})",
                list.value.len()
            ),
        );
    }
    let mut out: Vec<QkdSource> = Vec::with_capacity(list.value.len());
    for (n, s) in list.value.iter().enumerate() {
        let at = s.kme.referenced.line();
        let position = kmes.iter().position(|k| k.name == s.kme.value);
        let Some(kme) = position.and_then(KmeId::new) else {
            let known: Vec<&str> = kmes.iter().map(|k| k.name.as_str()).collect();
            return fail(
                path,
                at,
                &format!("{field}[{n}].kme"),
                format_args!(
                    "{:?} is not a KME of this site (top-level `qkd:` has {known:?})",
                    s.kme.value
                ),
            );
        };
        let sae_line = s.peer_sae_id.referenced.line();
        let peer_sae_id = SaeId::new(s.peer_sae_id.value.as_str())
            .or_else(|e| fail(path, sae_line, &format!("{field}[{n}].peer_sae_id"), e))?;
        let kme_name = s.kme.value.clone();
        let source = QkdSource {
            kme,
            kme_name,
            peer_sae_id,
        };
        if out.contains(&source) {
            return fail(
                path,
                at,
                &format!("{field}[{n}]"),
                "the same KME and peer_sae_id are listed twice",
            );
        }
        out.push(source);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "config_hybrid_kme_tests.rs"]
mod tests;

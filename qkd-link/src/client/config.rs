//! Client configuration: where the own KME is, who this SAE is, the mutual-TLS material
//! (ETSI GS QKD 014 §4), timeouts, retries and the response size bound.
//!
//! Deserialises from YAML with unknown fields rejected, so the gateway can embed it in its own
//! config file; [`ClientConfig::validate`] names the file, the field and the fix.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, parse_yaml};
use crate::ids::SaeId;
use crate::retry::RetryPolicy;

/// Default TCP connect timeout (reference §9: field clients use 10 s; a gateway wants less).
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 3_000;
/// Default deadline for one whole request, connect to last body byte.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// Default bound on a response body: 1 MiB holds 128 keys of 8 KiB in Base64 with room to spare.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1 << 20;
/// Upper bound accepted for `max_response_bytes`.
pub const MAX_RESPONSE_BYTES_LIMIT: usize = 16 << 20;

/// How to reach and authenticate to the own KME.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Base URL of the KME, `https://host[:port][/prefix]`; calls go to `{base}/api/v1/keys/...`.
    pub kme_url: String,
    /// This SAE's ID; it must match the identity in `cert` as the KME binds it.
    pub sae_id: SaeId,
    /// PEM bundle of CA certificates that sign the KME's server certificate.
    pub ca: PathBuf,
    /// PEM client certificate (leaf first, then any intermediates).
    pub cert: PathBuf,
    /// PEM private key of the client certificate; must be mode 0600 or stricter.
    pub key: PathBuf,
    /// TCP connect timeout in milliseconds.
    #[serde(default = "default_connect")]
    pub connect_timeout_ms: u64,
    /// Deadline for one attempt of one request, in milliseconds.
    #[serde(default = "default_request")]
    pub request_timeout_ms: u64,
    /// Retry policy for connect failures, timeouts and 503.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Largest response body accepted, in bytes.
    #[serde(default = "default_max_response")]
    pub max_response_bytes: usize,
}

fn default_connect() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}
fn default_request() -> u64 {
    DEFAULT_REQUEST_TIMEOUT_MS
}
fn default_max_response() -> usize {
    DEFAULT_MAX_RESPONSE_BYTES
}

impl ClientConfig {
    /// A configuration with default timeouts, retries and limits.
    pub fn new(
        kme_url: impl Into<String>,
        sae_id: SaeId,
        ca: impl Into<PathBuf>,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        Self {
            kme_url: kme_url.into(),
            sae_id,
            ca: ca.into(),
            cert: cert.into(),
            key: key.into(),
            connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            retry: RetryPolicy::default(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// Parses YAML text; `file` names the source in errors. Relative paths are kept as written.
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, Error> {
        let cfg = parse_yaml::<Self, Error>(text, file)?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// Reads a YAML file; relative certificate paths are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Self::from_yaml(&text, &path.display().to_string())?;
        if let Some(dir) = path.parent() {
            cfg.resolve_paths(dir);
        }
        Ok(cfg)
    }

    /// Makes relative `ca`, `cert` and `key` paths relative to `dir`.
    pub fn resolve_paths(&mut self, dir: &Path) {
        for p in [&mut self.ca, &mut self.cert, &mut self.key] {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }

    /// Checks every value; errors name `file`, the field and the fix.
    pub fn validate(&self, file: &str) -> Result<(), Error> {
        let bad = |field: &str, problem: String| Error::Config {
            file: file.to_string(),
            field: field.to_string(),
            problem,
        };
        parse_base_url(&self.kme_url).map_err(|p| bad("kme_url", p))?;
        if !(1..=60_000).contains(&self.connect_timeout_ms) {
            return Err(bad(
                "connect_timeout_ms",
                format!("{} is outside 1..=60000", self.connect_timeout_ms),
            ));
        }
        if !(self.connect_timeout_ms..=300_000).contains(&self.request_timeout_ms) {
            return Err(bad(
                "request_timeout_ms",
                format!(
                    "{} must be at least connect_timeout_ms ({}) and at most 300000",
                    self.request_timeout_ms, self.connect_timeout_ms
                ),
            ));
        }
        if !(1024..=MAX_RESPONSE_BYTES_LIMIT).contains(&self.max_response_bytes) {
            return Err(bad(
                "max_response_bytes",
                format!(
                    "{} is outside 1024..={MAX_RESPONSE_BYTES_LIMIT}",
                    self.max_response_bytes
                ),
            ));
        }
        self.retry
            .validate()
            .map_err(|(field, problem)| bad(field, problem))?;
        for (field, path) in [("ca", &self.ca), ("cert", &self.cert), ("key", &self.key)] {
            if path.as_os_str().is_empty() {
                return Err(bad(field, "path is empty".into()));
            }
        }
        Ok(())
    }
}

/// `scheme://authority` plus an optional path prefix without trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseUrl {
    pub origin: String,
    pub prefix: String,
}

/// Accepts only `https://` URLs with a host, no query or fragment.
pub(crate) fn parse_base_url(url: &str) -> Result<BaseUrl, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "{url:?} must start with https:// (ETSI 014 requires TLS; plain HTTP is never used)"
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{url:?} has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("{url:?} must not carry user info"));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(format!("{url:?} must not have a query or fragment"));
    }
    Ok(BaseUrl {
        origin: format!("https://{authority}"),
        prefix: uri.path().trim_end_matches('/').to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MINIMAL: &str = "kme_url: https://127.0.0.1:8441\nsae_id: SAE_A\nca: ca.pem\n\
                           cert: sae_a.pem\nkey: sae_a.key\n";

    #[test]
    fn minimal_yaml_gets_defaults() {
        let cfg = ClientConfig::from_yaml(MINIMAL, "gw.yaml").unwrap();
        assert_eq!(cfg.sae_id.as_str(), "SAE_A");
        assert_eq!(cfg.request_timeout_ms, DEFAULT_REQUEST_TIMEOUT_MS);
        assert_eq!(cfg.retry, RetryPolicy::default());
    }

    #[test]
    fn unknown_fields_are_rejected_with_the_file_named() {
        let text = format!("{MINIMAL}timeout: 5\n");
        let err = ClientConfig::from_yaml(&text, "gw.yaml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("gw.yaml") && msg.contains("timeout"), "{msg}");
    }

    #[test]
    fn out_of_range_values_name_the_field() {
        let text = format!("{MINIMAL}retry:\n  max_attempts: 50\n");
        let msg = ClientConfig::from_yaml(&text, "gw.yaml")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("retry.max_attempts"), "{msg}");
        let text = format!("{MINIMAL}request_timeout_ms: 1\n");
        let msg = ClientConfig::from_yaml(&text, "gw.yaml")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("request_timeout_ms"), "{msg}");
        let text = MINIMAL.replace("SAE_A", "SAE A");
        assert!(ClientConfig::from_yaml(&text, "gw.yaml").is_err());
    }

    #[test]
    fn only_https_urls_are_accepted() {
        assert_eq!(
            parse_base_url("https://kme.example:8441/qkd/").unwrap(),
            BaseUrl {
                origin: "https://kme.example:8441".into(),
                prefix: "/qkd".into()
            }
        );
        for bad in [
            "http://127.0.0.1:8441",
            "127.0.0.1:8441",
            "https://127.0.0.1:8441/?x=1",
            "https://user@127.0.0.1",
            "",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let mut cfg = ClientConfig::from_yaml(MINIMAL, "x").unwrap();
        cfg.resolve_paths(Path::new("/etc/qgw"));
        assert_eq!(cfg.key, PathBuf::from("/etc/qgw/sae_a.key"));
    }
}

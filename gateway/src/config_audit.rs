//! The audit trail's part of the configuration (docs/audit.md §5; every key in
//! `configs/README.md`): the top-level `audit:` block, validated into [`AuditSettings`]. Errors
//! name the file, the line, the field and the problem, like the rest of the configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::audit::{
    AuditSettings, DEFAULT_CHECKPOINT_RECORDS, DEFAULT_CHECKPOINT_SECONDS, DEFAULT_ROTATE_BYTES,
    MIN_ROTATE_BYTES,
};
use crate::config::ConfigError;

/// Most records between checkpoints.
pub const MAX_CHECKPOINT_RECORDS: u64 = 1_000_000;
/// Longest time between checkpoints (a day).
pub const MAX_CHECKPOINT_SECONDS: u64 = 86_400;

/// Top-level `audit:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The log file (relative: to the configuration file's directory).
    pub path: Spanned<PathBuf>,
    /// Rotate at this size (default 64 MiB, at least 64 KiB).
    pub rotate_bytes: Option<Spanned<u64>>,
    /// Sign a checkpoint after this many records (default 256).
    pub checkpoint_records: Option<Spanned<u64>>,
    /// ... or after this many seconds (default 60).
    pub checkpoint_seconds: Option<Spanned<u64>>,
}

fn fail<T>(path: &Path, line: u64, field: &str, problem: &str) -> Result<T, ConfigError> {
    Err(ConfigError(format!(
        "{}:{line}: {field}: {problem}",
        path.display()
    )))
}

/// Validates `audit:` (from the configuration file at `path`).
pub fn validate(
    path: &Path,
    audit: Option<&AuditConfig>,
) -> Result<Option<AuditSettings>, ConfigError> {
    let Some(a) = audit else {
        return Ok(None);
    };
    let line = a.path.referenced.line();
    let file = &a.path.value;
    if file.as_os_str().is_empty() || file.file_name().is_none() {
        return fail(path, line, "audit.path", "must name a file");
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let file = base.join(file);
    if file.is_dir() {
        return fail(
            path,
            line,
            "audit.path",
            "is a directory; name a file in it",
        );
    }
    let rotate_bytes = match &a.rotate_bytes {
        None => DEFAULT_ROTATE_BYTES,
        Some(r) if r.value >= MIN_ROTATE_BYTES => r.value,
        Some(r) => {
            let line = r.referenced.line();
            return fail(
                path,
                line,
                "audit.rotate_bytes",
                "must be at least 65536 (64 KiB)",
            );
        }
    };
    let checkpoint_records = match &a.checkpoint_records {
        None => DEFAULT_CHECKPOINT_RECORDS,
        Some(c) if (1..=MAX_CHECKPOINT_RECORDS).contains(&c.value) => c.value,
        Some(c) => {
            let line = c.referenced.line();
            return fail(path, line, "audit.checkpoint_records", "must be 1-1000000");
        }
    };
    let seconds = match &a.checkpoint_seconds {
        None => DEFAULT_CHECKPOINT_SECONDS,
        Some(c) if (1..=MAX_CHECKPOINT_SECONDS).contains(&c.value) => c.value,
        Some(c) => {
            let line = c.referenced.line();
            return fail(path, line, "audit.checkpoint_seconds", "must be 1-86400");
        }
    };
    Ok(Some(AuditSettings {
        path: file,
        rotate_bytes,
        checkpoint_records,
        checkpoint_interval: Duration::from_secs(seconds),
    }))
}

#[cfg(test)]
#[path = "config_audit_tests.rs"]
mod tests;

//! Validated identifiers: SAE IDs and key IDs (ETSI GS QKD 014 §6.1–§6.4).
//!
//! The spec leaves the SAE ID format open. qkd-link restricts SAE and KME IDs to 1–64 characters of
//! `[A-Za-z0-9._-]` so they can be placed in a URL path without escaping (some clients do not
//! URL-encode them; see the reference notes §1). Key IDs are UUIDs (§6.3: "key_ID ... UUID format"),
//! accepted only in the 36-character hyphenated form, case-insensitive on input, lower case on output.

use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest SAE or KME ID accepted (implementation limit; the spec sets none).
pub const MAX_ID_LEN: usize = 64;

/// Why a string is not a valid SAE/KME ID or key ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty, too long, or a character outside `[A-Za-z0-9._-]`.
    #[error("invalid ID {0:?}: expected 1-{MAX_ID_LEN} characters of [A-Za-z0-9._-]")]
    BadEntityId(String),
    /// Not a 36-character hyphenated UUID.
    #[error("invalid key_ID {0:?}: expected a UUID like bc490419-7d60-487f-adc1-4ddcc177c139")]
    BadKeyId(String),
}

/// Truncates untrusted text for error messages so a hostile peer cannot make them huge.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(MAX).collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    out
}

fn valid_entity_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The identity of a Secure Application Entity (or, with the same rules, of a KME).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaeId(String);

impl SaeId {
    /// Checks the format; see the module docs.
    pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        if valid_entity_id(&s) {
            Ok(Self(s))
        } else {
            Err(IdError::BadEntityId(excerpt(&s)))
        }
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SaeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SaeId({})", self.0)
    }
}

impl fmt::Display for SaeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::str::FromStr for SaeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Serialize for SaeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SaeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

/// A key ID: a UUID (ETSI 014 §6.3). One type from the KME's reply to the hybrid exchange's wire
/// format and the audit log, with its parser, lives in keymix.
pub use keymix::KeyId;

impl From<keymix::Error> for IdError {
    fn from(e: keymix::Error) -> Self {
        match e {
            keymix::Error::InvalidKeyId(text) => Self::BadKeyId(text),
            other => Self::BadKeyId(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sae_ids_are_restricted_to_url_safe_characters() {
        for ok in ["SAE_A", "sae-b.1", "A", &"x".repeat(MAX_ID_LEN)] {
            assert!(SaeId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "SAE B",
            "SAE/1",
            "SAE%41",
            "é",
            &"x".repeat(MAX_ID_LEN + 1),
        ] {
            assert!(SaeId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn excerpts_are_bounded_and_printable() {
        let long = "a\u{7}".repeat(200);
        let e = excerpt(&long);
        assert!(e.chars().count() <= 81);
        assert!(!e.contains('\u{7}'));
    }
}

//! ETSI GS QKD 014 v1.1.1 data formats (§6) and URL layout (§5, Table 2).
//!
//! Field names are the spec's exactly (`key_ID`, `stored_key_count`, `max_SAE_ID_count`, ...);
//! sizes are in bits. Responses are parsed only through the checked functions in [`parse`]; the
//! structs here are the wire shapes. Unknown members are ignored on input (reference §5: clients
//! and KMEs in the field add members), and output carries only spec members.

pub mod parse;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Path prefix of every ETSI 014 call (§5.1).
pub const API_PREFIX: &str = "/api/v1/keys";

/// The spec's fixed error messages (§6.5 and the notes to Tables 5 and 7).
pub mod msg {
    /// 400: size not a multiple of 8 on a KME that only supports multiples of 8.
    pub const SIZE_MULTIPLE_OF_8: &str = "size shall be a multiple of 8";
    /// 400: an `extension_mandatory` entry the KME does not know.
    pub const EXT_MANDATORY_UNSUPPORTED: &str =
        "not all extension_mandatory parameters are supported";
    /// 400: unknown or already consumed key ID.
    pub const KEYS_NOT_FOUND: &str = "one or more keys specified are not found on KME";
}

/// One of the three ETSI 014 calls, as it appears in the URL (§5.1, Table 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `GET /api/v1/keys/{slave_SAE_ID}/status` (§5.2).
    Status,
    /// `GET|POST /api/v1/keys/{slave_SAE_ID}/enc_keys` (§5.3).
    EncKeys,
    /// `GET|POST /api/v1/keys/{master_SAE_ID}/dec_keys` (§5.4).
    DecKeys,
}

impl Call {
    /// The last path segment.
    pub fn segment(self) -> &'static str {
        match self {
            Call::Status => "status",
            Call::EncKeys => "enc_keys",
            Call::DecKeys => "dec_keys",
        }
    }

    /// Parses the last path segment.
    pub fn from_segment(s: &str) -> Option<Self> {
        match s {
            "status" => Some(Call::Status),
            "enc_keys" => Some(Call::EncKeys),
            "dec_keys" => Some(Call::DecKeys),
            _ => None,
        }
    }
}

/// Status (§6.1), the reply to Get status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// KME ID of the KME answering.
    #[serde(rename = "source_KME_ID")]
    pub source_kme_id: String,
    /// KME ID of the KME serving the slave SAE.
    #[serde(rename = "target_KME_ID")]
    pub target_kme_id: String,
    /// SAE ID of the caller (master).
    #[serde(rename = "master_SAE_ID")]
    pub master_sae_id: String,
    /// SAE ID of the slave given in the URL.
    #[serde(rename = "slave_SAE_ID")]
    pub slave_sae_id: String,
    /// Default key size in bits.
    pub key_size: u32,
    /// Keys of `key_size` available now.
    pub stored_key_count: u64,
    /// Capacity in keys of `key_size`.
    pub max_key_count: u64,
    /// Most keys one request may ask for.
    pub max_key_per_request: u32,
    /// Largest key size in bits.
    pub max_key_size: u32,
    /// Smallest key size in bits.
    pub min_key_size: u32,
    /// Most additional slave SAEs per request; 0 = no multicast.
    #[serde(rename = "max_SAE_ID_count")]
    pub max_sae_id_count: u32,
    /// Vendor extension object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_extension: Option<Map<String, Value>>,
}

/// Key request (§6.2), the body of a POST to `enc_keys`. `{}` is valid.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyRequest {
    /// Number of keys, default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    /// Key size in bits, default the KME's `key_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// Further slaves that may fetch the same keys (multicast).
    #[serde(
        rename = "additional_slave_SAE_IDs",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub additional_slave_sae_ids: Vec<String>,
    /// Extensions the KME must honour, each a single name/value object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension_mandatory: Vec<Map<String, Value>>,
    /// Extensions the KME may ignore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension_optional: Vec<Map<String, Value>>,
}

/// One entry of a Key IDs body (§6.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyIdEntry {
    /// The key ID (UUID text; validated by the receiver).
    #[serde(rename = "key_ID")]
    pub key_id: String,
    /// Vendor extension object.
    #[serde(
        rename = "key_ID_extension",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub key_id_extension: Option<Map<String, Value>>,
}

/// Key IDs (§6.4), the body of a POST to `dec_keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyIds {
    /// The requested IDs.
    #[serde(rename = "key_IDs")]
    pub key_ids: Vec<KeyIdEntry>,
    /// Vendor extension object.
    #[serde(
        rename = "key_IDs_extension",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub key_ids_extension: Option<Map<String, Value>>,
}

/// Error (§6.5): `{"message": "...", "details": [{"name": value}]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Human-readable message.
    pub message: String,
    /// Optional name/value objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Value>,
}

impl ErrorBody {
    /// An error body with a message and no details.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            details: Vec::new(),
        }
    }
}

/// One key on the wire (§6.3): `key` is standard Base64 with padding.
#[derive(Serialize)]
pub struct KeyOut<'a> {
    /// The key ID.
    #[serde(rename = "key_ID")]
    pub key_id: String,
    /// Base64 of the key bytes, wiped after serialisation.
    pub key: &'a str,
}

/// Key container (§6.3) as the simulator writes it.
#[derive(Serialize)]
pub struct KeyContainerOut<'a> {
    /// The keys.
    pub keys: Vec<KeyOut<'a>>,
}

impl core::fmt::Debug for KeyContainerOut<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "KeyContainerOut({} keys, <redacted>)", self.keys.len())
    }
}

impl core::fmt::Debug for KeyOut<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "KeyOut({}, <redacted>)", self.key_id)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn key_request_serialises_only_what_is_set() {
        assert_eq!(serde_json::to_string(&KeyRequest::default()).unwrap(), "{}");
        let req = KeyRequest {
            number: Some(20),
            size: Some(512),
            additional_slave_sae_ids: vec!["SAE_C".into()],
            ..KeyRequest::default()
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"number":20,"size":512,"additional_slave_SAE_IDs":["SAE_C"]}"#
        );
    }

    #[test]
    fn spec_example_key_request_parses() {
        let body = r#"{"number":20,"size":512,"additional_slave_SAE_IDs":["SAE_C"],
            "extension_mandatory":[{"abc_route_type":"direct"}],
            "extension_optional":[{"abc_max_age":30000}]}"#;
        let req: KeyRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.number, Some(20));
        assert_eq!(req.extension_mandatory.len(), 1);
        assert!(req.extension_mandatory[0].contains_key("abc_route_type"));
    }

    #[test]
    fn key_ids_tolerate_unknown_members() {
        // QURSA's QuKayDee build adds master_SAE_ID to each entry (reference §5).
        let body = r#"{"key_IDs":[{"key_ID":"bc490419-7d60-487f-adc1-4ddcc177c139",
            "master_SAE_ID":"SAE_A"}]}"#;
        let ids: KeyIds = serde_json::from_str(body).unwrap();
        assert_eq!(ids.key_ids.len(), 1);
    }

    #[test]
    fn calls_round_trip_through_their_segment() {
        for c in [Call::Status, Call::EncKeys, Call::DecKeys] {
            assert_eq!(Call::from_segment(c.segment()), Some(c));
        }
        assert_eq!(Call::from_segment("keys"), None);
    }
}

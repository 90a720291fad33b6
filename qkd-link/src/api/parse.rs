//! Checked parsing of every KME response body (ETSI GS QKD 014 §6.1 Status, §6.3 Key container,
//! §6.5 Error). These are pure functions over untrusted bytes: a malformed reply is an
//! [`Error::MalformedResponse`], never a panic. The fuzz targets (`fuzz/fuzz_targets/qkd_*.rs`)
//! call exactly these functions.
//!
//! A key container is accepted only if (reference §5, §10.6): it has exactly the requested number
//! of keys, every `key_ID` is a 36-character UUID, no ID repeats, every `key` is canonical
//! standard Base64 with padding, every key decodes to `size / 8` bytes (or, when the size was left
//! to the KME, all keys have the same non-zero length up to [`MAX_KEY_BYTES`]), and for `dec_keys`
//! the IDs are exactly the ones asked for.
//!
//! Key text never passes through serde_json's own buffers: a key is taken as the raw JSON text
//! borrowed from the (zeroizing) body, unescaped here into a zeroizing buffer (a `/` may come as
//! `\/`, which serde_json would otherwise unescape into a scratch buffer it frees unwiped) and
//! decoded into another.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use zeroize::Zeroizing;

use super::{ErrorBody, Status};
use crate::error::Error;
use crate::ids::{KeyId, SaeId, excerpt};
use crate::key::QkdKey;

/// Largest key accepted from a KME: keymix's limit for one epoch's QKD material (8192 bits; the
/// spec example's maximum is 1024 bits), so no key is fetched that the key schedule would refuse.
pub const MAX_KEY_BYTES: usize = keymix::MAX_QKD_KEY_LEN;
/// Most `details` entries kept from an error body.
pub const MAX_ERROR_DETAILS: usize = 16;
/// Longest error message kept from an error body, in characters.
pub const MAX_ERROR_MESSAGE: usize = 200;

/// What the caller asked for, so the container can be checked against it.
#[derive(Debug, Clone, Copy)]
pub struct KeyExpectation<'a> {
    /// Exact number of keys expected.
    pub number: usize,
    /// Requested size in bits, if the request named one.
    pub size_bits: Option<u32>,
    /// For `dec_keys`: the IDs asked for; the reply must hold exactly these.
    pub ids: Option<&'a [KeyId]>,
}

#[derive(Deserialize)]
struct ContainerIn<'a> {
    #[serde(borrow)]
    keys: Vec<KeyIn<'a>>,
}

#[derive(Deserialize)]
struct KeyIn<'a> {
    #[serde(rename = "key_ID")]
    key_id: String,
    /// The JSON string as it is in the body, quotes and escapes included.
    #[serde(borrow)]
    key: &'a RawValue,
}

fn json_error(what: &str, e: &serde_json::Error) -> Error {
    Error::malformed(format!("{what}: {}", excerpt(&e.to_string())))
}

/// Parses and checks a Status body (§6.1).
pub fn parse_status(body: &[u8]) -> Result<Status, Error> {
    let status: Status = serde_json::from_slice(body).map_err(|e| json_error("status", &e))?;
    for (field, value) in [
        ("source_KME_ID", &status.source_kme_id),
        ("target_KME_ID", &status.target_kme_id),
        ("master_SAE_ID", &status.master_sae_id),
        ("slave_SAE_ID", &status.slave_sae_id),
    ] {
        SaeId::new(value.as_str())
            .map_err(|e| Error::malformed(format!("status: {field}: {e}")))?;
    }
    if status.key_size == 0 || status.min_key_size == 0 {
        return Err(Error::malformed("status: key sizes must be positive"));
    }
    if !(status.min_key_size <= status.key_size && status.key_size <= status.max_key_size) {
        return Err(Error::malformed(format!(
            "status: key_size {} outside min_key_size {}..=max_key_size {}",
            status.key_size, status.min_key_size, status.max_key_size
        )));
    }
    if status.stored_key_count > status.max_key_count {
        return Err(Error::malformed(format!(
            "status: stored_key_count {} > max_key_count {}",
            status.stored_key_count, status.max_key_count
        )));
    }
    if status.max_key_per_request == 0 {
        return Err(Error::malformed("status: max_key_per_request is 0"));
    }
    Ok(status)
}

/// The text of the JSON string `raw` (quotes included), unescaped into a zeroizing buffer that
/// never grows. Escapes of ASCII characters only: anything else cannot be Base64.
fn unescape_key(raw: &str, index: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
    let bad = |what: &str| Error::malformed(format!("keys[{index}].key: {what}"));
    let inner = (raw.strip_prefix('"'))
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(|| bad("not a string"))?
        .as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(inner.len()));
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let unescaped = match bytes.next() {
            Some(b'u') => {
                let hex: [u8; 4] = std::array::from_fn(|_| bytes.next().copied().unwrap_or(b'x'));
                std::str::from_utf8(&hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h.strip_prefix("00")?, 16).ok())
                    .filter(u8::is_ascii)
                    .ok_or_else(|| bad("escape of a character that is not Base64"))?
            }
            Some(&c @ (b'/' | b'\\' | b'"')) => c,
            _ => return Err(bad("escape of a character that is not Base64")),
        };
        out.push(unescaped);
    }
    Ok(out)
}

fn decode_key(b64: &[u8], index: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
    if b64.is_empty() || !b64.len().is_multiple_of(4) {
        return Err(Error::malformed(format!(
            "keys[{index}].key: Base64 length {} is not a positive multiple of 4",
            b64.len()
        )));
    }
    let max_len = b64.len() / 4 * 3;
    if max_len > MAX_KEY_BYTES + 2 {
        return Err(Error::malformed(format!(
            "keys[{index}].key: longer than {MAX_KEY_BYTES} bytes"
        )));
    }
    let mut buf = Zeroizing::new(vec![0u8; max_len]);
    let n = STANDARD
        .decode_slice(b64, &mut buf[..])
        .map_err(|e| Error::malformed(format!("keys[{index}].key: invalid Base64: {e}")))?;
    buf.truncate(n);
    if buf.is_empty() || buf.len() > MAX_KEY_BYTES {
        return Err(Error::malformed(format!(
            "keys[{index}].key: decoded length {} outside 1..={MAX_KEY_BYTES}",
            buf.len()
        )));
    }
    Ok(buf)
}

/// Parses and checks a Key container (§6.3) against what was requested.
pub fn parse_key_container(body: &[u8], expect: &KeyExpectation<'_>) -> Result<Vec<QkdKey>, Error> {
    let container: ContainerIn<'_> =
        serde_json::from_slice(body).map_err(|e| json_error("key container", &e))?;
    if container.keys.len() != expect.number {
        return Err(Error::malformed(format!(
            "key container holds {} keys, {} were requested",
            container.keys.len(),
            expect.number
        )));
    }
    let expected_bytes = match expect.size_bits {
        Some(bits) if bits % 8 != 0 || bits == 0 => {
            return Err(Error::InvalidArgument(format!(
                "size {bits} is not a positive multiple of 8"
            )));
        }
        Some(bits) => Some(bits as usize / 8),
        None => None,
    };
    let mut seen = HashSet::with_capacity(container.keys.len());
    let mut keys = Vec::with_capacity(container.keys.len());
    let mut common_len = expected_bytes;
    for (i, k) in container.keys.into_iter().enumerate() {
        let id = KeyId::parse(&k.key_id)
            .map_err(|e| Error::malformed(format!("keys[{i}].key_ID: {e}")))?;
        if !seen.insert(id) {
            return Err(Error::malformed(format!("keys[{i}].key_ID {id} repeats")));
        }
        let secret = decode_key(&unescape_key(k.key.get(), i)?, i)?;
        match common_len {
            Some(len) if len != secret.len() => {
                return Err(Error::malformed(format!(
                    "keys[{i}].key: {} bits, expected {}",
                    secret.len() * 8,
                    len * 8
                )));
            }
            Some(_) => {}
            None => common_len = Some(secret.len()),
        }
        keys.push(QkdKey::new(id, secret));
    }
    if let Some(wanted) = expect.ids {
        return reorder_to_request(keys, wanted);
    }
    Ok(keys)
}

/// Checks that a `dec_keys` reply holds exactly the requested IDs and returns them in request order.
fn reorder_to_request(mut keys: Vec<QkdKey>, wanted: &[KeyId]) -> Result<Vec<QkdKey>, Error> {
    let mut out = Vec::with_capacity(wanted.len());
    for id in wanted {
        let pos = keys
            .iter()
            .position(|k| k.id() == *id)
            .ok_or_else(|| Error::malformed(format!("reply lacks requested key_ID {id}")))?;
        out.push(keys.swap_remove(pos));
    }
    if let Some(extra) = keys.first() {
        return Err(Error::malformed(format!(
            "reply holds key_ID {} that was not requested",
            extra.id()
        )));
    }
    Ok(out)
}

/// Reads an Error body (§6.5) tolerantly: non-JSON or empty bodies (seen in the field, reference
/// §5) yield an excerpt of the text as the message. Never fails.
pub fn parse_error_body(body: &[u8]) -> ErrorBody {
    let text_excerpt = || {
        let text = String::from_utf8_lossy(body);
        let t = text.trim();
        if t.is_empty() {
            "(empty body)".to_string()
        } else {
            excerpt(t)
        }
    };
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(body) else {
        return ErrorBody::new(text_excerpt());
    };
    let message = match map.remove("message") {
        Some(Value::String(m)) => m
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_ERROR_MESSAGE)
            .collect(),
        _ => text_excerpt(),
    };
    let details = match map.remove("details") {
        Some(Value::Array(d)) => d.into_iter().take(MAX_ERROR_DETAILS).collect(),
        _ => Vec::new(),
    };
    ErrorBody { message, details }
}

#[cfg(test)]
mod tests;
